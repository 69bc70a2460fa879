"""The chaos lab against the real demo: every listed scenario runs and its hypothesis holds,
fault changes reach the services, and every unsafe or bad request is refused."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from demo_services.launcher import Demo
from demo_services.protocol import CONTROL_TOKEN_HEADER
from tests.demo.helpers import NO_FAULTS, TEST_ENV
from tests.helpers import wait_until

pytestmark = [pytest.mark.demo, pytest.mark.timeout(300)]
SCENARIOS = [
    "happy-order",
    "payment-declined",
    "inventory-slow",
    "no-breaker-cascade",
    "rate-limit-storm",
    "inventory-instance-down",
    "notifications-down",
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """Spyglass and every demo service, once for the module."""
    data_dir = tmp_path_factory.mktemp("chaos")
    with Demo(data_dir=data_dir, env=TEST_ENV, out=io.StringIO()) as running:
        yield running


@pytest.fixture(scope="module")
def script(demo: Demo) -> requests.Session:
    """A script's session: the control token, no browser headers."""
    session = requests.Session()
    session.headers[CONTROL_TOKEN_HEADER] = demo.control_token
    return session


def csrf_of(demo: Demo) -> str:
    page = requests.get(f"{demo.ui_url}/chaos", timeout=10)
    assert page.status_code == 200
    marker = 'name="csrf_token" value="'
    start = page.text.index(marker) + len(marker)
    return page.text[start : page.text.index('"', start)]


def browser_post(demo: Demo, path: str, data: dict[str, Any], **headers: str) -> requests.Response:
    """A form POST as a page of the dashboard sends it (same origin, CSRF token)."""
    return requests.post(
        f"{demo.ui_url}{path}",
        data=data,
        headers={"Origin": demo.ui_url, **headers},
        allow_redirects=False,
        timeout=10,
    )


def row_of(demo: Demo, instance_id: str) -> str:
    """The /chaos page's table row of one instance."""
    page = requests.get(f"{demo.ui_url}/chaos", timeout=10).text
    row = page[page.index(f'data-instance="{instance_id}"') :]
    return row[: row.index("</tr>")]


def registered(demo: Demo) -> set[str]:
    listed = requests.get(f"{demo.registry_url}/instances", timeout=5).json()["instances"]
    return {i["instance_id"] for i in listed}


def settings_of(demo: Demo, name: str) -> dict[str, Any]:
    response = requests.get(f"{demo.url(name)}/control", headers={CONTROL_TOKEN_HEADER: demo.control_token}, timeout=5)
    return response.json()


def run_scenario(demo: Demo, script: requests.Session, name: str) -> dict[str, Any]:
    started = script.post(f"{demo.ui_url}/api/v1/experiments", json={"scenario": name}, timeout=10)
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["url"].endswith(f"/chaos/experiments/{body['id']}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        result = requests.get(f"{demo.ui_url}/api/v1/experiments/{body['id']}", timeout=10).json()
        if result["status"] == "done":
            return result
        time.sleep(0.5)
    raise AssertionError(f"{name} did not finish within 120 s")


def test_payment_declined_shows_the_compensations_in_reverse(demo: Demo, script: requests.Session):
    result = run_scenario(demo, script, "payment-declined")
    sagas = result["findings"]["sagas"]
    assert sagas and all(s["outcome"] == "compensated" for s in sagas)
    assert all(s["compensated"] == list(reversed(s["completed"])) for s in sagas)
    page = requests.get(result["url"], timeout=10).text
    first = result["findings"]["first_failing_trace"]
    assert first in result["trace_ids"] and f"/traces/{first}" in page
    # The services its traces touched, as the orders met them: the gateway, then users (its
    # check of the customer, over gRPC, comes first) and orders, then payment (whose faults
    # changed) before inventory (asked for prices first), and the registry last when a
    # discovery lookup (a cache miss) asked it; each before / during / after; just done, so
    # "after" is still collecting and the page refreshes itself.
    services = result["findings"]["services"]
    assert services[:5] == ["gateway", "users", "orders", "payment", "inventory"]
    assert services[5:] in ([], ["registry"])
    shown = [part.split('"', 1)[0] for part in page.split('data-service="')[1:]]
    assert shown == services
    assert "still collecting" in page and "data-live" in page


def test_a_saga_that_skips_its_compensations_fails_payment_declined(demo: Demo, script: requests.Session):
    # Orders' saga is broken on purpose: it leaves its completed steps undone. The scenario
    # restores only the faults it set itself, so the switch holds for the whole run.
    demo.control("orders", skip_compensation=True)
    try:
        broken = run_scenario(demo, script, "payment-declined")
        assert settings_of(demo, "orders")["skip_compensation"] is True
    finally:
        demo.control("orders", skip_compensation=False)
    checks = {c["name"]: c for c in broken["checks"]}
    assert broken["verdict"] == "failed", broken["checks"]
    assert not checks["every saga ended compensated"]["passed"]
    assert checks["every saga ended compensated"]["detail"] == "0 of 2 sagas compensated"
    assert not checks["each compensated exactly its completed steps, in reverse"]["passed"]
    assert "but compensated []" in checks["each compensated exactly its completed steps, in reverse"]["detail"]
    assert checks["every saga failed at reserve_payment"]["passed"]
    sagas = broken["findings"]["sagas"]
    assert sagas and all(s["outcome"] == "failed" and s["compensated"] == [] for s in sagas)
    page = requests.get(broken["url"], timeout=10)
    assert page.status_code == 200 and "the hypothesis did not hold" in page.text

    repaired = run_scenario(demo, script, "payment-declined")
    assert repaired["verdict"] == "passed", [c for c in repaired["checks"] if not c["passed"]]


def test_a_second_experiment_while_one_runs_is_refused(demo: Demo, script: requests.Session):
    first = script.post(f"{demo.ui_url}/api/v1/experiments", json={"scenario": "happy-order"}, timeout=10)
    second = script.post(f"{demo.ui_url}/api/v1/experiments", json={"scenario": "happy-order"}, timeout=10)
    assert first.status_code == 202
    assert second.status_code == 409 and "still running" in second.text
    wait_until(
        lambda: requests.get(f"{demo.ui_url}/api/v1/experiments/{first.json()['id']}", timeout=5).json()["status"]
        == "done",
        timeout=60,
    )


def test_the_page_changes_an_instances_faults_and_resets_them_all(demo: Demo):
    token = csrf_of(demo)
    page = requests.get(f"{demo.ui_url}/chaos", timeout=10).text
    for instance in ("gateway", "orders", "inventory-1", "inventory-2", "payment"):
        assert f'data-instance="{instance}"' in page
    changed = browser_post(
        demo,
        "/chaos/control",
        {
            "csrf_token": token,
            "instance_id": "inventory-2",
            "error_rate": "25",
            "latency_ms": "40",
            "out_of_stock": "on",
        },
        **{"HX-Request": "true"},
    )
    assert changed.status_code == 200, changed.text
    assert settings_of(demo, "inventory-2") == {**NO_FAULTS, "error_rate": 0.25, "latency_ms": 40, "out_of_stock": True}
    assert 'value="25"' in changed.text and "checked" in changed.text
    reset = browser_post(demo, "/chaos/reset", {"csrf_token": token})
    assert reset.status_code == 303
    assert settings_of(demo, "inventory-2")["error_rate"] == 0.0
    assert not settings_of(demo, "inventory-2")["out_of_stock"]
    listed = requests.get(f"{demo.ui_url}/api/v1/experiments", timeout=10).json()["experiments"]
    manual = [e for e in listed if e["scenario"] == "manual"]
    changes = [c for e in manual for c in e["changes"]]
    assert any(c.get("instance_id") == "inventory-2" and c.get("error_rate") == 0.25 for c in changes)
    assert all(e["address"] == "127.0.0.1" for e in manual)


def test_latency_with_jitter_delays_each_request_by_latency_plus_or_minus_jitter(demo: Demo):
    latency, jitter = 0.120, 0.100
    token = csrf_of(demo)
    changed = browser_post(
        demo,
        "/chaos/control",
        {"csrf_token": token, "instance_id": "inventory-2", "latency_ms": "120", "jitter_ms": "100"},
        **{"HX-Request": "true"},
    )
    assert changed.status_code == 200, changed.text
    assert settings_of(demo, "inventory-2") == {**NO_FAULTS, "latency_ms": 120, "jitter_ms": 100}
    row = row_of(demo, "inventory-2")
    assert 'name="latency_ms"' in row and 'value="120"' in row
    assert 'name="jitter_ms"' in row and 'value="100"' in row
    took = []
    try:
        for _ in range(24):
            began = time.perf_counter()
            answer = requests.get(f"{demo.url('inventory-2')}/products", timeout=10)
            took.append(time.perf_counter() - began)
            assert answer.status_code == 200
    finally:
        reset = browser_post(demo, "/chaos/reset", {"csrf_token": token})
    assert reset.status_code == 303
    assert settings_of(demo, "inventory-2") == NO_FAULTS
    # Each delay is drawn from latency +- jitter: never below its floor, and spread across
    # the range (with a fixed latency, no request would take less than 120 ms). A slow
    # machine can only add time, so the upper bound has a second of slack.
    assert min(took) >= latency - jitter, took
    assert max(took) <= latency + jitter + 1.0, took
    assert any(t < latency for t in took), took
    assert any(t > latency + jitter / 4 for t in took), took


def test_stop_ends_an_instances_process_until_start_or_reset_all_starts_it_again(demo: Demo):
    token = csrf_of(demo)
    before = demo.pids()
    assert 'data-state="running"' in row_of(demo, "inventory-1") and "Stop</button>" in row_of(demo, "inventory-1")
    for instance in ("inventory-1", "payment"):
        stopped = browser_post(demo, "/chaos/stop", {"csrf_token": token, "instance_id": instance})
        assert stopped.status_code == 303, stopped.text
    try:
        # Both processes are gone (and reaped), so their heartbeats stopped: the registry
        # dropped them. The launcher, which restarts a crashed child within half a second,
        # leaves them stopped.
        for instance in ("inventory-1", "payment"):
            with pytest.raises(ProcessLookupError):
                os.kill(before[instance], 0)
        assert not {"inventory-1", "payment"} & registered(demo)
        time.sleep(1.5)
        assert not {"inventory-1", "payment"} & set(demo.pids())
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{demo.url('inventory-1')}/health", timeout=2)
        row = row_of(demo, "inventory-1")
        assert 'data-state="stopped"' in row and "Start</button>" in row and "not registered" in row
        assert 'name="error_rate"' not in row
        started = browser_post(demo, "/chaos/start", {"csrf_token": token, "instance_id": "inventory-1"})
        assert started.status_code == 303, started.text
        # A start answers once the instance is healthy and registered again.
        assert "inventory-1" in registered(demo) and demo.pids()["inventory-1"] != before["inventory-1"]
        assert 'data-state="running"' in row_of(demo, "inventory-1")
        assert 'data-state="stopped"' in row_of(demo, "payment")
    finally:
        reset = browser_post(demo, "/chaos/reset", {"csrf_token": token})
    assert reset.status_code == 303, reset.text
    assert {"inventory-1", "payment"} <= registered(demo)
    assert settings_of(demo, "payment") == NO_FAULTS
    assert 'data-state="running"' in row_of(demo, "payment")
    listed = requests.get(f"{demo.ui_url}/api/v1/experiments", timeout=10).json()["experiments"]
    changes = [c for e in listed if e["scenario"] == "manual" for c in e["changes"]]
    assert {"instance_id": "payment", "service": "payment", "stopped": True} in changes
    assert {"instance_id": "payment", "stopped": False} in changes


def test_stop_and_start_are_refused_for_unknown_instances_and_without_the_token(demo: Demo):
    token = csrf_of(demo)
    for instance, message in (("registry", "not one the demo launcher can stop"), ("nowhere", "not one the")):
        refused = browser_post(demo, "/chaos/stop", {"csrf_token": token, "instance_id": instance})
        assert refused.status_code == 400 and message in refused.text
    assert browser_post(demo, "/chaos/stop", {"instance_id": "payment"}).status_code == 403
    assert requests.get(f"{demo.ui_url}/chaos/stop", timeout=10).status_code == 405
    # The launcher's own endpoint: loopback, the control token, POST only.
    launcher = f"{demo.launcher_url}/instances"
    assert requests.post(f"{launcher}/payment/stop", timeout=5).status_code == 403
    wrong = requests.post(f"{launcher}/payment/stop", headers={CONTROL_TOKEN_HEADER: "wrong"}, timeout=5)
    assert wrong.status_code == 403 and "wrong" in wrong.json()["error"]
    good = {CONTROL_TOKEN_HEADER: demo.control_token}
    assert requests.get(f"{launcher}/payment/stop", headers=good, timeout=5).status_code == 405
    unknown = requests.post(f"{launcher}/registry/stop", headers=good, timeout=5)
    assert unknown.status_code == 404 and "no instance" in unknown.json()["error"]
    listed = requests.get(launcher, headers=good, timeout=5).json()["instances"]
    assert {i["instance_id"]: i["state"] for i in listed}["payment"] == "running"
    assert "payment" in demo.pids()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"error_rate": "150"}, "between 0 and 100"),
        ({"latency_ms": "-1"}, "latency_ms must be a whole number"),
        ({"jitter_ms": "-5"}, "jitter_ms must be a whole number"),
        ({"jitter_ms": "2.5"}, "jitter_ms must be a whole number"),
        ({"jitter_ms": "lots"}, "jitter_ms must be a number"),
        ({"latency_ms": "ten"}, "latency_ms must be a number"),
        ({"hang": "maybe"}, "hang must be true or false"),
        ({"colour": "red"}, "unknown setting"),
    ],
)
def test_bad_values_are_refused_with_a_message(demo: Demo, fields: dict[str, str], message: str):
    before = settings_of(demo, "payment")
    response = browser_post(demo, "/chaos/control", {"csrf_token": csrf_of(demo), "instance_id": "payment", **fields})
    assert response.status_code == 400 and message in response.text
    assert settings_of(demo, "payment") == before


def test_unsafe_posts_are_refused(demo: Demo, script: requests.Session):
    token = csrf_of(demo)
    form = {"instance_id": "payment", "error_rate": "100"}
    no_csrf = browser_post(demo, "/chaos/control", form)
    wrong_csrf = browser_post(demo, "/chaos/control", {**form, "csrf_token": "0" * 64})
    cross = browser_post(demo, "/chaos/control", {**form, "csrf_token": token}, Origin="http://evil.example")
    no_origin = requests.post(f"{demo.ui_url}/chaos/control", data={**form, "csrf_token": token}, timeout=10)
    wrong_token = requests.post(
        f"{demo.ui_url}/api/v1/experiments",
        json={"scenario": "happy-order"},
        headers={CONTROL_TOKEN_HEADER: "wrong"},
        timeout=10,
    )
    for response in (no_csrf, wrong_csrf, cross, no_origin, wrong_token):
        assert response.status_code == 403, response.text
    assert "CSRF" in no_csrf.text and "cross-origin" in cross.text and "wrong" in wrong_token.text
    assert settings_of(demo, "payment")["error_rate"] == 0.0
    for path in ("/chaos/control", "/chaos/reset", "/chaos/start"):
        assert requests.get(f"{demo.ui_url}{path}", timeout=10).status_code == 405
    unknown = script.post(f"{demo.ui_url}/api/v1/experiments", json={"scenario": "meteor-strike"}, timeout=10)
    assert unknown.status_code == 404 and "unknown scenario" in unknown.text and "happy-order" in unknown.text
    bad_json = script.post(
        f"{demo.ui_url}/api/v1/experiments",
        data="{not json",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert bad_json.status_code == 400 and "JSON object" in bad_json.text


def test_only_loopback_instances_in_the_registry_can_be_targeted(demo: Demo):
    token = csrf_of(demo)
    registered = requests.post(
        f"{demo.registry_url}/register",
        json={"service": "payment", "instance_id": "payment-far", "url": "http://10.20.30.40:9006", "depends_on": []},
        timeout=5,
    )
    assert registered.status_code in (200, 201)
    far = browser_post(demo, "/chaos/control", {"csrf_token": token, "instance_id": "payment-far", "error_rate": "50"})
    unknown = browser_post(demo, "/chaos/control", {"csrf_token": token, "instance_id": "nowhere", "error_rate": "50"})
    requests.delete(f"{demo.registry_url}/instances/payment-far", timeout=5)
    assert far.status_code == 400 and "not a loopback address" in far.text
    assert unknown.status_code == 400 and "not in the registry" in unknown.text
    assert 'data-instance="payment-far"' not in requests.get(f"{demo.ui_url}/chaos", timeout=10).text


def test_the_control_token_is_kept_in_the_data_directory_readable_by_its_owner_only(demo: Demo):
    path = Path(demo.data_dir) / "demo" / "control-token"
    assert path.read_text().strip() == demo.control_token
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert demo.control_token not in requests.get(f"{demo.ui_url}/chaos", timeout=10).text


def spyglass_chaos(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("SPYGLASS_DEMO_CONTROL_TOKEN", "SPYGLASS_AUTH_TOKEN")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "chaos", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**environ, **(env or {})},
    )


def test_the_command_line_lists_runs_and_reports_a_verdict(demo: Demo):
    listed = spyglass_chaos("list", "--ui-url", demo.ui_url)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == SCENARIOS
    ran = spyglass_chaos("run", "payment-declined", "--wait", "--ui-url", demo.ui_url, "--data-dir", str(demo.data_dir))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "passed:" in ran.stdout and "/chaos/experiments/" in ran.stdout
    as_json = spyglass_chaos(
        "run", "happy-order", "--wait", "--json", "--ui-url", demo.ui_url, "--data-dir", str(demo.data_dir)
    )
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["verdict"] == "passed"


def test_the_command_line_exits_1_when_the_hypothesis_does_not_hold(demo: Demo):
    # Cards are declined by hand, outside the scenario: happy-order's orders cannot complete.
    demo.control("payment", decline=True)
    try:
        ran = spyglass_chaos(
            "run",
            "happy-order",
            "--wait",
            "--ui-url",
            demo.ui_url,
            env={"SPYGLASS_DEMO_CONTROL_TOKEN": demo.control_token},
        )
    finally:
        demo.control("payment", decline=False)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "FAIL every saga ended completed: 0 of 3" in ran.stdout
    assert ran.stdout.rstrip().splitlines()[-2].startswith("failed:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "meteor-strike"], "unknown scenario 'meteor-strike'"),
        (["run", "happy-order", "--ui-url", "http://127.0.0.1:9"], "nothing answers at http://127.0.0.1:9"),
        (["list", "--ui-url", "http://127.0.0.1:9"], "nothing answers at http://127.0.0.1:9"),
    ],
)
def test_the_command_line_exits_2_with_one_line_for_bad_input(demo: Demo, args: list[str], message: str):
    if "--ui-url" not in args:
        args = [*args, "--ui-url", demo.ui_url]
    ran = spyglass_chaos(*args, "--data-dir", str(demo.data_dir)) if args[0] == "run" else spyglass_chaos(*args)
    assert ran.returncode == 2
    assert len(ran.stderr.strip().splitlines()) == 1 and message in ran.stderr


def test_the_command_line_without_a_control_token_exits_2(demo: Demo, tmp_path: Path):
    ran = spyglass_chaos("run", "happy-order", "--ui-url", demo.ui_url, "--data-dir", str(tmp_path))
    assert ran.returncode == 2 and "no control token" in ran.stderr


def test_the_tour_runs_every_scenario_in_turn_and_each_holds(demo: Demo):
    """Every scenario's hypothesis holds on the real demo (each run once, by the tour)."""
    before = {e["id"] for e in requests.get(f"{demo.ui_url}/api/v1/experiments", timeout=10).json()["experiments"]}
    started = browser_post(demo, "/chaos/tour", {"csrf_token": csrf_of(demo)})
    assert started.status_code == 303 and started.headers["Location"].endswith("/chaos/experiments")
    assert "data-live" in requests.get(f"{demo.ui_url}/chaos/experiments", timeout=10).text

    def finished() -> list[dict[str, Any]]:
        listed = requests.get(f"{demo.ui_url}/api/v1/experiments", timeout=10).json()["experiments"]
        new = [e for e in listed if e["id"] not in before]
        done = len(new) == len(SCENARIOS) and all(e["status"] == "done" for e in new)
        return new if done else []

    new = wait_until(finished, timeout=150, interval=0.5)
    assert sorted(e["scenario"] for e in new) == sorted(SCENARIOS)
    assert [e["scenario"] for e in sorted(new, key=lambda e: e["started_ns"])] == SCENARIOS
    assert "data-live" not in requests.get(f"{demo.ui_url}/chaos/experiments", timeout=10).text
    for result in new:
        name = result["scenario"]
        failed = [c for c in result["checks"] if not c["passed"]]
        assert result["verdict"] == "passed", f"{name} failed: {failed}\n{demo.logs(15)}"
        assert result["hypothesis"] and result["trace_ids"], f"{name} found no trace of its own"
        # The services its traces touched, from the entry outwards.
        assert result["findings"]["services"][0] == "gateway", name
        # Its traces are found by the baggage copied into every span.
        search = requests.get(
            f"{demo.ui_url}/api/traces",
            params={"tags": f'{{"chaos.experiment_id":"{result["id"]}"}}', "limit": 1500, "lookback": "1h"},
            timeout=10,
        ).json()
        assert {t["traceID"] for t in search["data"]} == set(result["trace_ids"]), name
        page = requests.get(result["url"], timeout=10)
        assert page.status_code == 200 and "the hypothesis held" in page.text, name
    # Every fault a scenario set was cleared again, and every instance it stopped runs.
    for child in ("gateway", "orders", "payment", "inventory-1", "inventory-2", "notifications"):
        assert settings_of(demo, child) == NO_FAULTS, child
    assert {"inventory-1", "inventory-2", "notifications"} <= registered(demo)
