"""The demo launcher's control endpoint: stop and start one demo instance's process.

``spyglass demo`` serves it on a loopback port of its own (``base_port + 9``, passed to
its Spyglass as ``SPYGLASS_LAUNCHER_URL``), so the chaos lab can really stop an instance
rather than make it answer 503. Every request needs the demo's control token in
``X-Spyglass-Control-Token`` and must come from loopback; answers are JSON:

- ``GET /instances``: ``{"instances": [{"instance_id", "service", "state"}]}``, the state
  ``running``, ``stopped`` (on purpose, through this endpoint) or ``down`` (exited; the
  launcher restarts a crashed child).
- ``POST /instances/<id>/stop``: ends the instance's process (SIGTERM, so it deregisters
  from the registry; SIGKILL after a few seconds) and keeps the launcher from restarting
  it; answers once it has exited.
- ``POST /instances/<id>/start``: starts it again and answers once it is healthy and
  registered (504 when that takes too long). Starting a running instance changes nothing.

An unknown instance is a 404, a GET to a POST route a 405, a wrong token a 403.
"""

from __future__ import annotations

import hmac
import json
import socket
import threading
from typing import Any, Protocol

from werkzeug.exceptions import Forbidden, HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from demo_services.protocol import CONTROL_TOKEN_HEADER

LOOPBACK = ("127.0.0.1", "::1")
RUNNING = "running"
STOPPED = "stopped"
DOWN = "down"


class UnknownInstance(KeyError):
    """No instance of the demo has this id (or it may not be stopped: the registry)."""


class StartTimeout(RuntimeError):
    """A started instance did not become healthy and registered in time."""


class DemoStopping(RuntimeError):
    """The demo is stopping: nothing is started or stopped any more."""


class Processes(Protocol):
    """What the endpoint asks of the launcher."""

    def instance_states(self) -> list[dict[str, str]]:
        """Each controllable instance: ``instance_id``, ``service`` and ``state``."""

    def stop_instance(self, instance_id: str) -> None:
        """End the instance's process and keep it stopped; UnknownInstance if there is none."""

    def start_instance(self, instance_id: str) -> None:
        """Start a stopped instance and wait until it serves; StartTimeout, UnknownInstance."""


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without its access log: ``spyglass demo``'s output is for people."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


_ROUTES = Map(
    [
        Rule("/instances", methods=["GET"], endpoint="list"),
        Rule("/instances/<instance_id>/stop", methods=["POST"], endpoint="stop"),
        Rule("/instances/<instance_id>/start", methods=["POST"], endpoint="start"),
    ]
)


class ProcessControl:
    """The endpoint as a WSGI app with its own server thread (``start`` / ``stop``)."""

    def __init__(self, processes: Processes, control_token: str, port: int) -> None:
        self._processes = processes
        self._token = control_token
        # Bound here: a port in use is then an OSError for the launcher to report (werkzeug,
        # binding it itself, would print and exit the process).
        with socket.create_server(("127.0.0.1", port)) as listener:
            self._server: BaseWSGIServer = make_server(
                "127.0.0.1", port, self, threaded=True, request_handler=_QuietHandler, fd=listener.fileno()
            )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The endpoint's base URL."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="process-control", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except HTTPException as err:
            response = _json(err.code or 500, {"error": err.description})
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        endpoint, args = _ROUTES.bind_to_environ(request.environ).match()
        if request.remote_addr not in LOOPBACK:
            raise Forbidden("the launcher's control endpoint is available on loopback only")
        if not hmac.compare_digest(request.headers.get(CONTROL_TOKEN_HEADER, ""), self._token):
            raise Forbidden(f"missing or wrong {CONTROL_TOKEN_HEADER}")
        if endpoint == "list":
            return _json(200, {"instances": self._processes.instance_states()})
        instance_id = str(args["instance_id"])
        try:
            if endpoint == "stop":
                self._processes.stop_instance(instance_id)
            else:
                self._processes.start_instance(instance_id)
        except UnknownInstance as err:
            raise NotFound(f"the demo has no instance {instance_id[:100]!r} to stop or start") from err
        except StartTimeout as err:
            return _json(504, {"error": str(err)})
        except DemoStopping as err:
            return _json(409, {"error": str(err)})
        state = STOPPED if endpoint == "stop" else RUNNING
        return _json(200, {"instance_id": instance_id, "state": state})


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")
