"""The chaos lab's pages: /chaos (fault settings and scenarios) and the experiments.

Every change is a POST checked by :mod:`app.post_guard`; fault changes are forwarded to
the target instance's /control only after the registry lists it on loopback, and a stop
or start goes to the demo launcher only for an instance it lists.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from htmx_flask import make_response as htmx_response
from werkzeug.exceptions import BadRequest, Conflict

from app import demo_control, demo_processes
from app.analysis import phases as red_phases
from app.demo_control import Target
from app.experiment_runner import ExperimentRunner, ExperimentRunningError
from app.htmx import is_htmx, render_page_or_fragment
from app.params import parse_name
from app.post_guard import client_address, guard
from app.registry_client import RegistryUnavailableError
from app.scenarios import SCENARIOS
from app.views import start_run
from collectors.store import SpanStore

bp = Blueprint("chaos", __name__)
_CHECKBOXES = demo_control.FLAGS
RECENT = 10
PHASE_S = 30
"""Seconds of traffic shown before a run started and after its faults were restored."""


def store() -> SpanStore:
    """The app's store."""
    return current_app.extensions["spyglass.store"]


def runner() -> ExperimentRunner:
    """The app's experiment runner."""
    return current_app.extensions["spyglass.chaos_runner"]


def registry_url() -> str:
    """Where the demo's registry is asked."""
    return current_app.config["SPYGLASS_SETTINGS"].registry_url


def launcher_url() -> str:
    """Where the demo launcher is asked to stop and start instances."""
    return current_app.config["SPYGLASS_SETTINGS"].launcher_url


def demo_state() -> tuple[list[demo_control.Target], str | None]:
    """The controllable instances, or why there are none (no demo running). Each carries
    its process state when the demo launcher can be asked; an instance stopped through it
    has left the registry and is listed from the launcher."""
    token = guard().control_token
    if not token:
        return [], "no control token: the demo's services are not running with this dashboard"
    try:
        targets = demo_control.list_targets(registry_url(), token)
    except RegistryUnavailableError as err:
        return [], str(err)
    try:
        processes = demo_processes.states(launcher_url(), token)
    except demo_processes.ProcessError:
        processes = {}
    if not targets and not processes:
        return [], f"the registry at {registry_url()} lists no services on loopback"
    listed = {t.instance_id for t in targets}
    found = [replace(t, state=processes[t.instance_id].state) if t.instance_id in processes else t for t in targets]
    unlisted = [p for p in processes.values() if p.instance_id not in listed]
    found += [Target(p.service, p.instance_id, "", False, state=p.state) for p in unlisted]
    found.sort(key=lambda t: (t.service, t.instance_id))
    return found, None


@bp.get("/chaos")
def index() -> str:
    """Fault settings per instance, the scenarios, and the latest experiments."""
    targets, problem = demo_state()
    return render_template(
        "chaos/index.html",
        targets=targets,
        problem=problem,
        scenarios=list(SCENARIOS.values()),
        experiments=store().list_experiments(RECENT),
        csrf=guard().csrf_token,
    )


@bp.post("/chaos/control")
def control() -> Any:
    """Change one instance's faults (form fields as on the page; unticked boxes are off)."""
    guard().check()
    instance_id = request.form.get("instance_id", "")
    if not instance_id:
        raise BadRequest("instance_id is required")
    form = {key: "off" for key in _CHECKBOXES} | request.form.to_dict()
    try:
        changes = demo_control.parse_changes(form)
    except ValueError as err:
        raise BadRequest(str(err)) from err
    target = _target(instance_id)
    # A switch the service has no use for is not sent (its form has no box for it).
    unused = [f for f in demo_control.BUSINESS_FAULTS.values() if f != target.business_fault]
    if not target.has_breakers:
        unused.append("bypass_breakers")
    changes = {k: v for k, v in changes.items() if k not in unused}
    settings = _apply(target, changes)
    runner().record_manual(client_address(), [{"instance_id": instance_id, "service": target.service, **changes}])
    return _after_change(
        "chaos/_row.html", t=demo_control.Target(**{**target.__dict__, "settings": settings}), csrf=guard().csrf_token
    )


@bp.post("/chaos/stop")
def stop() -> Any:
    """Stop an instance's process (the demo launcher does, and keeps it stopped)."""
    return _power("stop")


@bp.post("/chaos/start")
def start() -> Any:
    """Start a stopped instance again; answers once it is healthy and registered."""
    return _power("start")


@bp.post("/chaos/reset")
def reset() -> Any:
    """Start every stopped instance again, then clear every fault of every instance."""
    guard().check()
    token = guard().control_token
    try:
        started = demo_processes.start_stopped(launcher_url(), token)
    except demo_processes.ProcessError as err:
        raise BadRequest(f"not every stopped instance could be started again: {err}") from err
    try:
        cleared = demo_control.reset_all(registry_url(), token)
    except (RegistryUnavailableError, demo_control.ControlError) as err:
        raise BadRequest(f"nothing was reset: {err}") from err
    changes = [{"instance_id": i, "stopped": False} for i in started]
    changes += [{"instance_id": i, **demo_control.CLEAR} for i in cleared]
    runner().record_manual(client_address(), changes)
    return _back_to_index()


@bp.post("/chaos/experiments")
def run() -> Any:
    """Start a scenario from the page; go to its result page."""
    guard().check()
    experiment = start_run(request.form.get("scenario"))
    target = url_for("chaos.experiment", experiment_id=experiment.id)
    if is_htmx():
        return htmx_response("", 200, redirect=target)
    return redirect(target, code=303)


@bp.post("/chaos/tour")
def tour() -> Any:
    """Run every scenario in turn; go to the list of experiments, which follows them."""
    guard().check()
    try:
        runner().start_tour(list(SCENARIOS.values()), client_address())
    except ExperimentRunningError as err:
        raise Conflict(f"{err}; wait for it to finish") from err
    target = url_for("chaos.experiments")
    if is_htmx():
        return htmx_response("", 200, redirect=target)
    return redirect(target, code=303)


@bp.get("/chaos/experiments")
def experiments() -> str:
    """Past experiments, newest first; the list refreshes itself while one runs."""
    found = store().list_experiments(200)
    return render_page_or_fragment(
        "chaos/experiments.html",
        "chaos/_live_list.html",
        experiments=found,
        running=any(e.status == "running" for e in found),
    )


@bp.get("/chaos/experiments/<experiment_id>")
def experiment(experiment_id: str) -> str:
    """One experiment's verdict, checks, traces, saga outcomes and breaker transitions."""
    found = store().get_experiment(parse_name("experiment id", experiment_id[:64]) or "")
    if found is None:
        abort(404, f"no experiment {experiment_id[:64]!r}")
    windows, red = _red_by_phase(found)
    return render_page_or_fragment(
        "chaos/experiment.html",
        "chaos/_experiment.html",
        e=found,
        scenario=SCENARIOS.get(found.scenario),
        red=red,
        phase_s=PHASE_S,
        collecting=bool(windows) and not windows[-1].complete,
    )


def _red_by_phase(found: Any) -> tuple[list[red_phases.Phase], dict[str, list[red_phases.PhaseRed]]]:
    """Each affected service's RED before, during and after a finished run: the services
    its traces touched, in the order the runner kept (entry first; see
    :func:`app.analysis.phases.affected_services`); for a manual change, which sent no
    traffic (and a run stored before the runner kept them), the services whose faults it
    changed, and the gateway for a run."""
    if found.finished_ns is None:
        return [], {}
    kept = found.findings.get("services")
    if isinstance(kept, list):
        ordered = [str(s) for s in kept]
    else:
        changed = {str(c["service"]) for c in found.changes if isinstance(c.get("service"), str)}
        ordered = sorted(changed | ({"gateway"} if found.scenario != "manual" else set()))
    if not ordered:
        return [], {}
    restored = found.findings.get("restored_ns")
    restored_ns = restored if isinstance(restored, int) else found.finished_ns
    windows = red_phases.phases(found.started_ns, restored_ns, time.time_ns(), PHASE_S * red_phases.NS)
    calls = store().entry_calls(ordered, windows[0].start_ns, windows[-1].end_ns)
    return windows, red_phases.red_by_phase(calls, ordered, windows)


def _power(action: str) -> Any:
    guard().check()
    instance_id = request.form.get("instance_id", "")
    if not instance_id:
        raise BadRequest("instance_id is required")
    token = guard().control_token
    try:
        known = demo_processes.states(launcher_url(), token)
    except demo_processes.ProcessError as err:
        raise BadRequest(f"nothing was done: {err}") from err
    process = known.get(instance_id)
    if process is None:
        raise BadRequest(f"instance {instance_id[:100]!r} is not one the demo launcher can stop or start")
    try:
        if action == "stop":
            demo_processes.stop(launcher_url(), token, instance_id)
        else:
            demo_processes.start(launcher_url(), token, instance_id)
    except demo_processes.ProcessError as err:
        raise BadRequest(str(err)) from err
    change = {"instance_id": instance_id, "service": process.service, "stopped": action == "stop"}
    runner().record_manual(client_address(), [change])
    return _back_to_index()


def _back_to_index() -> Any:
    if is_htmx():
        return htmx_response("", 200, redirect=url_for("chaos.index"))
    return redirect(url_for("chaos.index"), code=303)


def _target(instance_id: str) -> demo_control.Target:
    try:
        return demo_control.find_target(registry_url(), instance_id)
    except demo_control.TargetError as err:
        raise BadRequest(str(err)) from err


def _apply(target: demo_control.Target, changes: dict[str, Any]) -> dict[str, Any]:
    try:
        return demo_control.apply(target, guard().control_token, changes)
    except demo_control.ControlError as err:
        raise BadRequest(str(err)) from err


def _after_change(fragment: str, **context: Any) -> Any:
    if is_htmx():
        return render_template(fragment, **context)
    return redirect(url_for("chaos.index"), code=303)
