"""``spyglass demo`` at the console: run the demo until Ctrl-C or SIGTERM, say where the
dashboard and the gateway are and what to try, and open the dashboard in a browser when
asked. ``python -m demo_services.launcher`` (or this module) runs it standalone."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import webbrowser
from collections.abc import Mapping
from types import FrameType
from typing import IO

from demo_services.launcher import Demo, DemoStartupError
from demo_services.protocol import DEMO_PASSWORD, LOGIN_PATH

WHAT_TO_TRY = """\
What to try:
  log in (users ada, alan, grace, edsger, barbara; password {password}) and keep the token:
  TOKEN=$(curl -s -H 'Content-Type: application/json' -d '{{"username": "ada", "password": "{password}"}}' \\
          {gateway}{login} | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  curl -H "Authorization: Bearer $TOKEN" {gateway}/api/products
  curl -H "Authorization: Bearer $TOKEN" {gateway}/api/users/1     (REST in, gRPC to users)
  curl -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
       -d '{{"user_id": 1, "items": [{{"product_id": 1, "quantity": 1}}]}}' {gateway}/api/orders
  the same order with "card": "4000000000000002" -> payment declined, the saga compensates
  make payment fail and watch its breaker open (error_rate 0 heals it):
  curl -H "X-Spyglass-Control-Token: $(cat {control})" -H 'Content-Type: application/json' \\
       -d '{{"error_rate": 1}}' {payment}/control
  hold the next order's saga before its pivot, order, kill orders (the demo restarts it) and watch
  the new orders compensate it ({ui}/sagas; hold at "confirm_shipping" and it carries it forward):
  curl -H "X-Spyglass-Control-Token: $(cat {control})" -H 'Content-Type: application/json' \
       -d '{{"hold_at": "capture_payment"}}' {orders}/control
  kill -9 $(pgrep -f demo_services.orders)
  {ui}/chaos: set faults and run the named scenarios (spyglass chaos list / run NAME --wait)
  {ui}/traces, {ui}/services, {ui}/breakers, {ui}/sagas: watch the patterns react
Press Ctrl-C to stop everything."""


def run_demo(
    *,
    ui_addr: str,
    otlp_http_addr: str,
    data_dir: str,
    traffic: bool = True,
    rate: float = 1.0,
    base_port: int = 9000,
    open_browser: bool = False,
    settings_env: Mapping[str, str] | None = None,
) -> int:
    """Run the demo until Ctrl-C or SIGTERM; return the process exit code."""
    stop = threading.Event()
    demo = Demo(
        data_dir=data_dir,
        ui_addr=ui_addr,
        otlp_http_addr=otlp_http_addr,
        base_port=base_port,
        traffic=traffic,
        rate=rate,
        settings_env=settings_env,
    )

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        demo.interrupt()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            demo.start()
        except DemoStartupError as err:
            print(f"spyglass demo: {err}", file=sys.stderr)
            return 130 if stop.is_set() else 1
        print(f"\nDashboard: {demo.ui_url}\nGateway:   {demo.gateway_url} (log in at {LOGIN_PATH})\n")
        print(
            WHAT_TO_TRY.format(
                password=DEMO_PASSWORD,
                login=LOGIN_PATH,
                gateway=demo.gateway_url,
                ui=demo.ui_url,
                control=demo.control_token_path,
                payment=demo.url("payment"),
                orders=demo.url("orders"),
            ),
            flush=True,
        )
        if open_browser:
            open_dashboard(demo.ui_url)
        stop.wait()
        print("\nStopping the demo ...", flush=True)
    finally:
        demo.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("Stopped.", flush=True)
    return 0


def open_dashboard(url: str, out: IO[str] | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Open ``url`` in a browser; when none can be opened, print one line saying where to go.

    On Linux without ``DISPLAY`` or ``WAYLAND_DISPLAY`` no browser is tried (a text-mode
    browser would take over the terminal the demo reports in). Returns whether one opened.
    """
    environ = os.environ if environ is None else environ
    headless = sys.platform.startswith("linux") and not (environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))
    opened = False
    if not headless:
        try:
            opened = webbrowser.open(url)
        except webbrowser.Error:
            opened = False
    if not opened:
        why = "no display here" if headless else "no browser could be opened"
        print(f"Open {url} in a browser ({why}).", file=out or sys.stdout, flush=True)
    return opened


def main(argv: list[str] | None = None) -> int:
    """Run the demo standalone: ``python -m demo_services.launcher``."""
    parser = argparse.ArgumentParser(description="Run Spyglass with the demo services.")
    parser.add_argument("--ui-addr", default=os.environ.get("SPYGLASS_UI_ADDR", "127.0.0.1:8080"))
    parser.add_argument("--otlp-http-addr", default=os.environ.get("SPYGLASS_OTLP_HTTP_ADDR", "127.0.0.1:4318"))
    parser.add_argument("--data-dir", default=os.environ.get("SPYGLASS_DATA_DIR", "./data"))
    parser.add_argument("--no-traffic", action="store_true", help="do not generate traffic")
    parser.add_argument("--rate", type=float, default=1.0, help="traffic, requests per second")
    parser.add_argument("--base-port", type=int, default=9000)
    parser.add_argument("--open-browser", action="store_true")
    args = parser.parse_args(argv)
    return run_demo(
        ui_addr=args.ui_addr,
        otlp_http_addr=args.otlp_http_addr,
        data_dir=args.data_dir,
        traffic=not args.no_traffic,
        rate=args.rate,
        base_port=args.base_port,
        open_browser=args.open_browser,
    )


if __name__ == "__main__":
    raise SystemExit(main())
