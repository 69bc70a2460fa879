"""Outbound calls between demo services: discovery, a breaker per target, a CLIENT span.

Every call goes: CLIENT span -> circuit breaker (``caller->service``) -> discovery
(round-robin, fail-over on refused connections) -> HTTP with a timeout and the trace
context in its headers. A 5xx answer or a timeout counts as a breaker failure; a 4xx
answer is a business answer (e.g. a declined card) and is returned to the caller.

The call's span stands for the call as the caller sees it: its status and
``http.response.status_code`` are the answer the caller got, and its ``url.full`` names
the first instance tried. When discovery fails over, each further attempt is a CLIENT
span of its own under the call's span, with ``http.request.resend_count``, so the
instance that answered is a child of the attempt that reached it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import requests
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from demo_services.patterns.breaker import CircuitBreaker, CircuitOpenError
from demo_services.patterns.discovery import INSTANCE_ID, DiscoveryClient, Instance, NoHealthyInstanceError
from demo_services.protocol import OUT_OF_SERVICE_HEADER
from demo_services.telemetry import inject_headers

PEER_SERVICE = "peer.service"
HTTP_METHOD = "http.request.method"
HTTP_STATUS = "http.response.status_code"
URL_FULL = "url.full"
SERVER_PORT = "server.port"
MAX_REASON = 200
"""Characters of an error answer's reason kept in the client span's status message."""
RESEND_COUNT = "http.request.resend_count"

_tracer = trace.get_tracer(__name__)


class UpstreamError(Exception):
    """The called service failed: 5xx, timeout, no instance, or breaker open."""

    def __init__(self, service: str, message: str, status: int = 503, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.service = service
        self.status = status
        self.retry_after_s = retry_after_s


class BreakerFailure(Exception):
    """Raised inside a breaker by a call of another protocol (gRPC) to count as a failure."""


class _ServerError(Exception):
    """A 5xx answer, raised inside the breaker so it counts as a failure."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"{response.status_code} from {response.url}")
        self.response = response


class InstanceOutOfService(_ServerError):
    """The 503 of a stopped instance: nothing was handled, so discovery tries the next one."""


class ServiceClient:
    """Make calls from ``caller`` to other services, each through its own breaker.

    While ``bypass()`` is true (the ``bypass_breakers`` fault switch), calls skip the
    breakers: a slow or failing service is waited for every time, as without the pattern.
    """

    def __init__(
        self,
        caller: str,
        discovery: DiscoveryClient,
        *,
        timeout_s: float,
        failure_threshold: int,
        reset_after_s: float,
        bypass: Callable[[], bool] = lambda: False,
    ) -> None:
        self._caller = caller
        self._bypass = bypass
        self._discovery = discovery
        self._timeout_s = timeout_s
        self._failure_threshold = failure_threshold
        self._reset_after_s = reset_after_s
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()
        self._session = requests.Session()

    def breaker(self, service: str) -> CircuitBreaker:
        """Return the breaker guarding calls to ``service``."""
        with self._lock:
            if service not in self._breakers:
                self._breakers[service] = CircuitBreaker(
                    f"{self._caller}->{service}",
                    failure_threshold=self._failure_threshold,
                    reset_after_s=self._reset_after_s,
                    failure_types=(_ServerError, requests.Timeout, NoHealthyInstanceError, BreakerFailure),
                )
            return self._breakers[service]

    def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> requests.Response:
        """Call ``service`` (with extra ``headers``) and return its (2xx-4xx) response;
        raise ``UpstreamError``. ``attributes`` are added to the call's span (e.g.
        ``retry.attempt`` of a retried call)."""
        with _tracer.start_as_current_span(
            f"{method} {service}",
            kind=SpanKind.CLIENT,
            attributes={PEER_SERVICE: service, HTTP_METHOD: method, **(attributes or {})},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            attempts = itertools.count()

            def send(instance: Instance) -> requests.Response:
                attempt = next(attempts)
                if attempt == 0:
                    return self._send(span, instance, method, path, json, params, headers)
                with _tracer.start_as_current_span(
                    f"{method} {service}",
                    kind=SpanKind.CLIENT,
                    attributes={PEER_SERVICE: service, HTTP_METHOD: method, RESEND_COUNT: attempt},
                    record_exception=False,
                    set_status_on_exception=False,
                ) as retry:
                    try:
                        return self._send(retry, instance, method, path, json, params, headers)
                    except (_ServerError, requests.RequestException) as err:
                        _fail(retry, err)
                        raise

            try:
                if self._bypass():
                    response = self._discovery.call(service, send)
                else:
                    response = self.breaker(service).call(lambda: self._discovery.call(service, send))
            except CircuitOpenError as err:
                raise UpstreamError(service, str(err)) from err
            except _ServerError as err:
                span.set_attribute(HTTP_STATUS, err.response.status_code)
                _fail(span, err)
                raise UpstreamError(service, str(err), 502, retry_after(err.response)) from err
            except (requests.RequestException, NoHealthyInstanceError) as err:
                _fail(span, err)
                status = 504 if isinstance(err, requests.Timeout) else 503
                raise UpstreamError(service, f"{service} unavailable: {err}", status) from err
            span.set_attribute(HTTP_STATUS, response.status_code)
            if response.status_code >= 400:
                span.set_status(Status(StatusCode.ERROR, _answer_text(response)))
            return response

    def _send(
        self,
        span: trace.Span,
        instance: Instance,
        method: str,
        path: str,
        json: Any,
        params: dict[str, str] | None,
        headers: dict[str, str] | None,
    ) -> requests.Response:
        """Send one attempt to ``instance`` with extra ``headers``, recorded on ``span`` (the
        current span)."""
        sent = dict(headers or {})
        inject_headers(sent)
        span.set_attribute(URL_FULL, f"{instance.url}{path}")
        span.set_attribute(INSTANCE_ID, instance.instance_id)
        span.set_attribute(SERVER_PORT, int(instance.url.rsplit(":", 1)[1]))
        response = self._session.request(
            method,
            f"{instance.url}{path}",
            json=json,
            params=params,
            headers=sent,
            timeout=self._timeout_s,
        )
        span.set_attribute(HTTP_STATUS, response.status_code)
        if response.status_code == 503 and response.headers.get(OUT_OF_SERVICE_HEADER):
            raise InstanceOutOfService(response)
        if response.status_code >= 500:
            raise _ServerError(response)
        return response


def failure_reason(err: BaseException) -> str:
    """A short reason an attempt was not handled, for a fail-over event: ``503 out of
    service``, or the operating system's words for a failed connection (e.g.
    ``connection refused``), found down the exception's chain."""
    if isinstance(err, InstanceOutOfService):
        return f"{err.response.status_code} out of service"
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror.lower()
        nested = [a for a in current.args if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)
        todo += [current.__cause__, current.__context__, *nested, reason if isinstance(reason, BaseException) else None]
    return type(err).__name__


def _answer_text(response: requests.Response) -> str:
    """``HTTP 402: card declined``: the status and the ``error`` of a JSON error body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    reason = body.get("error") if isinstance(body, dict) else None
    if isinstance(reason, str) and reason:
        return f"HTTP {response.status_code}: {reason[:MAX_REASON]}"
    return f"HTTP {response.status_code}"


def retry_after(response: requests.Response) -> float | None:
    """The seconds a ``Retry-After`` header asks to wait (the delay form), or None."""
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _fail(span: trace.Span, err: BaseException) -> None:
    span.record_exception(err)
    span.set_status(Status(StatusCode.ERROR, str(err)))
