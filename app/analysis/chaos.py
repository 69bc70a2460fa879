"""Judging a chaos experiment from the spans it caused: pure functions, no I/O.

Each ``check_*`` function takes the experiment's traces (``{trace_id: [Span, ...]}``) and
returns :class:`Check` objects, each a claim of the hypothesis with the figure behind it.
Facts are read only from the stored spans and their DESIGN.md attributes (``saga.*``,
``circuit_breaker.*``, ``http.response.status_code``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from collectors.model import KIND_CLIENT, KIND_CONSUMER, KIND_PRODUCER, KIND_SERVER, STATUS_ERROR, Span

Traces = Mapping[str, Sequence[Span]]
FAST_REJECTION_NS = 100_000_000
"""A call refused by an open breaker must end within 100 ms: it never waits on the network."""
SERVICES_IN_A_FULL_ORDER = 5


@dataclass(frozen=True)
class Check:
    """One claim of a hypothesis: whether it held, and the figure that says so."""

    name: str
    passed: bool
    detail: str

    def public(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class SagaRun:
    """One saga instance as its spans tell it."""

    saga_id: str
    trace_id: str
    outcome: str | None
    actions: list[tuple[str, bool]] = field(default_factory=list)
    """(step, succeeded) in start order"""
    compensations: list[tuple[str, bool]] = field(default_factory=list)
    forward_only: set[str] = field(default_factory=set)
    """Steps whose ``saga.step.kind`` is ``pivot`` or ``retriable``: never compensated."""

    @property
    def failed_step(self) -> str | None:
        """The first action that failed, if any."""
        return next((name for name, ok in self.actions if not ok), None)

    @property
    def expected_compensations(self) -> list[str]:
        """The completed compensatable actions, newest first: what a correct saga undoes."""
        return [name for name, ok in reversed(self.actions) if ok and name not in self.forward_only]

    def public(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "saga_id": self.saga_id,
            "trace_id": self.trace_id,
            "outcome": self.outcome,
            "failed_step": self.failed_step,
            "completed": [n for n, ok in self.actions if ok],
            "compensated": [n for n, _ok in self.compensations],
        }


def status_of(span: Span) -> int | None:
    """The HTTP status a span recorded, if any."""
    for key in ("http.response.status_code", "http.status_code"):
        value = span.attributes.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def entry_span(spans: Sequence[Span], service: str = "gateway") -> Span | None:
    """The trace's server span in ``service`` that has no parent (the request entering)."""
    for s in spans:
        if s.service == service and s.kind == KIND_SERVER and not s.parent_span_id:
            return s
    return None


def gateway_statuses(traces: Traces) -> list[int | None]:
    """The status the gateway answered, per trace that entered through it."""
    out = []
    for spans in traces.values():
        entry = entry_span(spans)
        if entry is not None:
            out.append(status_of(entry))
    return out


def sagas(traces: Traces) -> list[SagaRun]:
    """Every saga instance in the traces, in start order."""
    runs: dict[str, SagaRun] = {}
    starts: dict[str, int] = {}
    steps: dict[str, list[Span]] = {}
    for trace_id, spans in traces.items():
        for s in spans:
            saga_id = s.attributes.get("saga.id")
            if not isinstance(saga_id, str):
                continue
            run = runs.setdefault(saga_id, SagaRun(saga_id, trace_id, None))
            if "saga.step" not in s.attributes:
                outcome = s.attributes.get("saga.outcome")
                run.outcome = str(outcome) if outcome is not None else None
                starts[saga_id] = s.start_ns
            else:
                steps.setdefault(saga_id, []).append(s)
    for saga_id, found in steps.items():
        run = runs[saga_id]
        for s in sorted(found, key=lambda x: (x.start_ns, x.span_id)):
            entry = (str(s.attributes["saga.step"]), s.status_code != STATUS_ERROR)
            if s.attributes.get("saga.phase") == "compensation":
                run.compensations.append(entry)
            else:
                run.actions.append(entry)
                if s.attributes.get("saga.step.kind") in ("pivot", "retriable"):
                    run.forward_only.add(entry[0])
    return sorted(runs.values(), key=lambda r: starts.get(r.saga_id, 0))


def breaker_calls(traces: Traces, name: str) -> list[tuple[Span, list[Span]]]:
    """Client spans that went through breaker ``name``, each with its child spans."""
    out = []
    for spans in traces.values():
        children: dict[str, list[Span]] = {}
        for s in spans:
            children.setdefault(s.parent_span_id, []).append(s)
        for s in spans:
            if s.kind == KIND_CLIENT and s.attributes.get("circuit_breaker.name") == name:
                out.append((s, children.get(s.span_id, [])))
    return out


def count_check(name: str, found: int, wanted: int) -> Check:
    """``found`` of ``wanted`` things were seen."""
    return Check(name, found == wanted and wanted > 0, f"{found} of {wanted}")


def check_traces_stored(traces: Traces, sent: int) -> Check:
    """Every request sent left a trace entering through the gateway."""
    entered = len(gateway_statuses(traces))
    passed = entered == sent and sent > 0
    return Check("every request left a trace in Spyglass", passed, f"{entered} of {sent} traces")


def check_statuses(traces: Traces, wanted: Iterable[int], what: str) -> Check:
    """Every gateway answer had one of the ``wanted`` statuses."""
    allowed = set(wanted)
    statuses = gateway_statuses(traces)
    good = sum(1 for s in statuses if s in allowed)
    others = sorted({str(s) for s in statuses if s not in allowed})
    detail = f"{good} of {len(statuses)}" + (f"; others: {', '.join(others)}" if others else "")
    return Check(what, bool(statuses) and good == len(statuses), detail)


def check_outcomes(runs: Sequence[SagaRun], outcome: str, sent: int) -> Check:
    """Every order's saga ended with ``outcome``."""
    found = sum(1 for r in runs if r.outcome == outcome)
    passed = found == sent == len(runs)
    return Check(f"every saga ended {outcome}", passed, f"{found} of {sent} sagas {outcome}")


def check_reverse_compensation(runs: Sequence[SagaRun], failed_step: str) -> list[Check]:
    """Each saga failed at ``failed_step`` and compensated exactly its completed steps,
    newest first, each compensation succeeding."""
    at_step = sum(1 for r in runs if r.failed_step == failed_step)
    exact = [r for r in runs if [n for n, _ok in r.compensations] == r.expected_compensations]
    clean = sum(1 for r in runs if r.compensations and all(ok for _n, ok in r.compensations))
    wrong = next((r for r in runs if r not in exact), None)
    detail = f"{len(exact)} of {len(runs)}"
    if wrong is not None:
        detail += (
            f"; saga {wrong.saga_id[:12]} completed {[n for n, ok in wrong.actions if ok]} "
            f"but compensated {[n for n, _ok in wrong.compensations]}"
        )
    elif runs:
        detail += f"; e.g. compensated {[n for n, _ok in runs[0].compensations]}"
    return [
        Check(f"every saga failed at {failed_step}", bool(runs) and at_step == len(runs), f"{at_step} of {len(runs)}"),
        Check(
            "each compensated exactly its completed steps, in reverse", bool(runs) and len(exact) == len(runs), detail
        ),
        Check("every compensation succeeded", bool(runs) and clean == len(runs), f"{clean} of {len(runs)}"),
    ]


def check_full_orders(runs: Sequence[SagaRun], traces: Traces) -> list[Check]:
    """A completed order ran each step once, in order, with nothing compensated, and its
    trace crossed every service an order needs."""
    ordered = sum(1 for r in runs if r.actions and all(ok for _n, ok in r.actions) and not r.compensations)
    widest = max((len({s.service for s in spans}) for spans in traces.values()), default=0)
    return [
        Check(
            "every step succeeded, none compensated", bool(runs) and ordered == len(runs), f"{ordered} of {len(runs)}"
        ),
        Check(
            f"one trace crosses {SERVICES_IN_A_FULL_ORDER}+ services",
            widest >= SERVICES_IN_A_FULL_ORDER,
            f"widest trace: {widest} services",
        ),
    ]


def check_no_errors(traces: Traces) -> Check:
    """No span of any trace ended in error."""
    errors = [s for spans in traces.values() for s in spans if s.status_code == STATUS_ERROR]
    first = f"; first: {errors[0].service} {errors[0].name}" if errors else ""
    return Check("no span ended in error", not errors, f"{len(errors)} error spans{first}")


def check_fast_rejections(traces: Traces, breaker: str) -> list[Check]:
    """Calls refused by the open breaker ended fast and reached no service."""
    calls = breaker_calls(traces, breaker)
    rejected = [(s, kids) for s, kids in calls if s.attributes.get("circuit_breaker.rejected") is True]
    slowest = max(((s.end_ns - s.start_ns) for s, _k in rejected), default=0)
    reached = sum(1 for _s, kids in rejected if kids)
    return [
        Check(f"calls were refused while {breaker} was open", bool(rejected), f"{len(rejected)} refused calls"),
        Check(
            "refused calls failed fast",
            bool(rejected) and slowest < FAST_REJECTION_NS,
            f"slowest {slowest / 1e6:.1f} ms (limit {FAST_REJECTION_NS / 1e6:.0f} ms)",
        ),
        Check("refused calls made no downstream span", bool(rejected) and reached == 0, f"{reached} with a child span"),
    ]


def check_breaker_cycle(transitions: Sequence[tuple[int, str, str]]) -> list[Check]:
    """From ``(time_ns, from, to)`` state changes: it opened, then half-opened, then closed."""
    opened = next((t for t, _f, to in transitions if to == "open"), None)
    half = next((t for t, f, to in transitions if f == "open" and to == "half_open" and opened and t >= opened), None)
    closed = next((t for t, f, to in transitions if f == "half_open" and to == "closed" and half and t >= half), None)
    shown = ", ".join(f"{f}→{to}" for _t, f, to in transitions[:8]) or "none"
    return [
        Check("the breaker opened", opened is not None, f"transitions: {shown}"),
        Check(
            "it half-opened after its reset timeout",
            half is not None,
            f"{(half - opened) / 1e9:.1f} s after opening" if half and opened else "no open→half_open",
        ),
        Check(
            "and closed again",
            closed is not None,
            f"{(closed - half) / 1e9:.2f} s after half-opening" if closed and half else "no half_open→closed",
        ),
    ]


def check_cascade(traces: Traces, caller: str, callee: str, waited_ns: int) -> list[Check]:
    """Without breakers: ``caller``'s calls to ``callee`` were all made (none refused) and
    each waited at least ``waited_ns``; every span above such a call lasted at least as
    long as it (the wait climbs up the chain)."""
    calls, refused, climbed, waits = 0, 0, 0, []
    for spans in traces.values():
        by_id = {s.span_id: s for s in spans}
        for s in spans:
            if s.kind != KIND_CLIENT or s.service != caller or s.attributes.get("peer.service") != callee:
                continue
            calls += 1
            refused += s.attributes.get("circuit_breaker.rejected") is True
            waits.append(s.end_ns - s.start_ns)
            ancestors, parent = [], by_id.get(s.parent_span_id)
            while parent is not None:
                ancestors.append(parent)
                parent = by_id.get(parent.parent_span_id)
            span_ns = s.end_ns - s.start_ns
            if ancestors and all(a.end_ns - a.start_ns >= span_ns for a in ancestors):
                climbed += 1
    shortest = min(waits, default=0)
    return [
        Check(f"no call from {caller} to {callee} was refused", calls > 0 and refused == 0, f"{refused} of {calls}"),
        Check(
            f"every call to {callee} waited",
            calls > 0 and shortest >= waited_ns,
            f"shortest wait {shortest / 1e9:.2f} s (at least {waited_ns / 1e9:g} s)",
        ),
        Check(
            "each caller up the chain waited at least as long",
            calls > 0 and climbed == calls,
            f"{climbed} of {calls} calls",
        ),
    ]


MESSAGE_ID = "messaging.message.id"


def published_messages(traces: Traces) -> dict[str, Span]:
    """The PRODUCER spans in the traces, by message id."""
    out = {}
    for spans in traces.values():
        for s in spans:
            mid = s.attributes.get(MESSAGE_ID)
            if s.kind == KIND_PRODUCER and isinstance(mid, str):
                out[mid] = s
    return out


def consumer_spans(traces: Traces, service: str | None = None) -> dict[str, list[Span]]:
    """The CONSUMER spans in the traces (only ``service``'s when given: a topic may have
    several subscribers, each processing every message once), by message id."""
    out: dict[str, list[Span]] = {}
    for spans in traces.values():
        for s in spans:
            mid = s.attributes.get(MESSAGE_ID)
            if s.kind == KIND_CONSUMER and isinstance(mid, str) and service in (None, s.service):
                out.setdefault(mid, []).append(s)
    return out


def check_outbox_waited(
    produced: Mapping[str, Span], consumed: Mapping[str, Sequence[Span]], back_ns: int
) -> list[Check]:
    """Every published event was processed, exactly once, and only after the consumer came
    back at ``back_ns``."""
    delivered = [mid for mid in produced if consumed.get(mid)]
    once = [mid for mid in produced if len(consumed.get(mid, ())) == 1]
    waited = [mid for mid in delivered if min(s.start_ns for s in consumed[mid]) >= back_ns]
    total = len(produced)

    def all_of(found: list[str]) -> bool:
        return bool(total) and len(found) == total

    return [
        Check("events were published while the consumer was down", total > 0, f"{total} events"),
        Check("every event waited until the consumer was back", all_of(waited), f"{len(waited)} of {total}"),
        Check("every event was delivered once it was back", all_of(delivered), f"{len(delivered)} of {total}"),
        Check("each was processed exactly once", all_of(once), f"{len(once)} of {total}"),
    ]


def check_limited(traces: Traces) -> list[Check]:
    """A burst got 429s that reached no service, and nothing answered 5xx."""
    limited = [spans for spans in traces.values() if (e := entry_span(spans)) is not None and status_of(e) == 429]
    leaked = sum(1 for spans in limited if any(s.service != "gateway" for s in spans))
    statuses = gateway_statuses(traces)
    server_errors = sum(1 for s in statuses if s is not None and s >= 500)
    return [
        Check("the burst was rate limited (429)", bool(limited), f"{len(limited)} of {len(statuses)} answered 429"),
        Check("limited requests never reached a service", bool(limited) and leaked == 0, f"{leaked} reached one"),
        Check("nothing answered 5xx", bool(statuses) and server_errors == 0, f"{server_errors} answered 5xx"),
    ]


RETRY_AFTER = "http.response.header.retry_after"
"""The ``Retry-After`` answer header as a server span records it (OpenTelemetry's
``http.response.header.<name>``, a list of strings)."""


def check_retry_after(traces: Traces) -> Check:
    """Every request the gateway answered 429 said when to retry: its entry span recorded
    a non-empty ``Retry-After`` answer header."""
    limited = [e for spans in traces.values() if (e := entry_span(spans)) is not None and status_of(e) == 429]
    said = sum(1 for e in limited if any(str(v).strip() for v in _as_list(e.attributes.get(RETRY_AFTER))))
    return Check(
        "every 429 said when to retry (Retry-After)",
        bool(limited) and said == len(limited),
        f"{said} of {len(limited)} limited requests' spans recorded {RETRY_AFTER}",
    )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def instances_serving(traces: Traces, service: str) -> dict[str, int]:
    """Requests of ``service`` each instance handled (server spans that did not answer
    5xx: a stopped instance's 503 handled nothing), per instance id."""
    out: dict[str, int] = {}
    for spans in traces.values():
        for s in spans:
            status = status_of(s)
            if s.service == service and s.kind == KIND_SERVER and (status is None or status < 500):
                instance = str(s.resource.attributes.get("service.instance.id", ""))
                out[instance] = out.get(instance, 0) + 1
    return out


def first_failing_trace(traces: Traces) -> str | None:
    """The earliest trace with an error span, for the result page's link."""
    failing = [
        (min(s.start_ns for s in spans), tid)
        for tid, spans in traces.items()
        if spans and any(s.status_code == STATUS_ERROR for s in spans)
    ]
    return min(failing)[1] if failing else None
