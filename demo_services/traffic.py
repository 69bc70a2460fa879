"""A gentle traffic generator: a mix of browsing, orders and order look-ups via the gateway.

``spyglass demo`` runs it in its own process; ``python -m demo_services.traffic`` runs it
alone (the compose deployment's ``traffic`` container)."""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
from collections.abc import Mapping

import requests

from demo_services.protocol import AccessToken, LoginError, log_in

DECLINED_CARD = "4000000000000002"
GOOD_CARD = "4242424242424242"


class TrafficGenerator:
    """Send about ``rate`` requests per second to the gateway from a daemon thread.

    Mix: product listings, orders (one in twenty with a card that is declined, so
    compensations show up), order-details compositions and user look-ups. It logs in as
    ``username`` first, and again before its token expires or when the gateway refuses
    it. Failures are expected (that is what the demo injects) and only counted.
    """

    def __init__(self, gateway_url: str, username: str, rate: float, rng: random.Random | None = None) -> None:
        self._url = gateway_url
        self._username = username
        self._rate = rate
        self._rng = rng or random.Random()
        self._session = requests.Session()
        self._token: AccessToken | None = None
        self._stop = threading.Event()
        self._orders: list[str] = []
        self.sent = 0
        self.failed = 0

    def start(self) -> None:
        """Start sending in a daemon thread."""
        threading.Thread(target=self._loop, name="traffic", daemon=True).start()

    def stop(self) -> None:
        """Stop sending."""
        self._stop.set()

    def send_one(self) -> int:
        """Send one request of the mix and return its status code (0 if it failed)."""
        roll = self._rng.random()
        try:
            if self._token is None or self._token.due():
                self._token = log_in(self._url, self._username)
                self._session.headers["Authorization"] = self._token.header
        except LoginError:
            self.failed += 1
            return 0
        try:
            if roll < 0.4:
                response = self._session.get(f"{self._url}/api/products", timeout=10)
            elif roll < 0.7:
                response = self._session.post(f"{self._url}/api/orders", json=self._random_order(), timeout=10)
                if response.status_code == 201:
                    self._orders = (self._orders + [response.json()["order_id"]])[-20:]
            elif roll < 0.9 and self._orders:
                order_id = self._rng.choice(self._orders)
                response = self._session.get(f"{self._url}/api/order-details/{order_id}", timeout=10)
            else:
                user_id = self._rng.randint(1, 5)
                response = self._session.get(f"{self._url}/api/users/{user_id}", timeout=10)
        except requests.RequestException:
            self.failed += 1
            return 0
        self.sent += 1
        if response.status_code == 401:
            self._token = None
        return response.status_code

    def _random_order(self) -> dict:
        items = [
            {"product_id": self._rng.randint(1, 5), "quantity": self._rng.randint(1, 3)}
            for _ in range(self._rng.randint(1, 3))
        ]
        card = DECLINED_CARD if self._rng.random() < 0.05 else GOOD_CARD
        return {"user_id": self._rng.randint(1, 5), "items": items, "card": card}

    def _loop(self) -> None:
        interval = 1.0 / self._rate if self._rate > 0 else 1.0
        while not self._stop.wait(self._rng.expovariate(1.0 / interval)):
            self.send_one()


def main(environ: Mapping[str, str] | None = None) -> int:
    """Run the generator on its own until SIGTERM or SIGINT (a container of the compose
    deployment): ``SPYGLASS_DEMO_GATEWAY_URL`` (default http://127.0.0.1:9000) and
    ``SPYGLASS_DEMO_TRAFFIC_RATE`` (requests per second, default 1)."""
    environ = os.environ if environ is None else environ
    url = environ.get("SPYGLASS_DEMO_GATEWAY_URL", "http://127.0.0.1:9000")
    try:
        rate = float(environ.get("SPYGLASS_DEMO_TRAFFIC_RATE", "1"))
    except ValueError:
        rate = 0.0
    if rate <= 0:
        print("traffic: SPYGLASS_DEMO_TRAFFIC_RATE must be a positive number of requests per second", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    generator = TrafficGenerator(url, environ.get("SPYGLASS_DEMO_TRAFFIC_USER", "barbara"), rate)
    generator.start()
    print(f"traffic: about {rate:g} request(s) per second to {url}", flush=True)
    stop.wait()
    generator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
