"""``spyglass chaos``: list and run the chaos lab's scenarios against a running dashboard.

Exit codes: 0 when the hypothesis held (or the run was started without ``--wait``), 1 when
it did not, 2 for bad input (an unknown scenario, no dashboard at the URL, no control
token), always with one line saying why.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, NoReturn

import click
import requests

from app.post_guard import CONTROL_TOKEN_VARIABLE, read_control_token
from app.settings import Settings
from demo_services.protocol import CONTROL_TOKEN_HEADER

WAIT_LIMIT_S = 300.0
POLL_S = 1.0


def _default_ui_url() -> str:
    return "http://" + os.environ.get("SPYGLASS_UI_ADDR", Settings().ui_addr)


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"spyglass chaos: {message}", err=True)
    sys.exit(code)


def _session(data_dir: str | None) -> requests.Session:
    session = requests.Session()
    token = os.environ.get("SPYGLASS_AUTH_TOKEN", "")
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    control = os.environ.get(CONTROL_TOKEN_VARIABLE, "").strip() or read_control_token(
        data_dir or os.environ.get("SPYGLASS_DATA_DIR", Settings().data_dir)
    )
    if control:
        session.headers[CONTROL_TOKEN_HEADER] = control
    return session


def _call(session: requests.Session, method: str, url: str, **kwargs: Any) -> requests.Response:
    try:
        return session.request(method, url, timeout=15, **kwargs)
    except requests.RequestException as err:
        _fail(f"nothing answers at {url.split('/api/', 1)[0]} ({type(err).__name__}); is `spyglass demo` running?")


def _error_of(response: requests.Response) -> str:
    try:
        doc = response.json()
        return str(doc["errors"][0]["msg"])
    except (ValueError, KeyError, IndexError, TypeError):
        return f"HTTP {response.status_code}"


@click.group()
def chaos() -> None:
    """Run the chaos lab's scenarios against a running dashboard (`spyglass demo`)."""


@chaos.command("list")
@click.option("--ui-url", default=None, help="the dashboard's base URL [default: http://$SPYGLASS_UI_ADDR]")
def list_scenarios(ui_url: str | None) -> None:
    """List the scenarios with their hypotheses."""
    base = (ui_url or _default_ui_url()).rstrip("/")
    response = _call(_session(None), "GET", f"{base}/api/v1/scenarios")
    if response.status_code != 200:
        _fail(f"{base} answered {_error_of(response)}")
    for scenario in response.json()["scenarios"]:
        click.echo(f"{scenario['name']:<26} {scenario['hypothesis']}")


@chaos.command("run")
@click.argument("name")
@click.option("--wait", is_flag=True, help="wait for the verdict (exit 0 held, 1 did not)")
@click.option("--json", "as_json", is_flag=True, help="print the experiment as JSON")
@click.option("--ui-url", default=None, help="the dashboard's base URL [default: http://$SPYGLASS_UI_ADDR]")
@click.option("--data-dir", default=None, help="where the demo keeps its control token [default: $SPYGLASS_DATA_DIR]")
def run(name: str, wait: bool, as_json: bool, ui_url: str | None, data_dir: str | None) -> None:
    """Start scenario NAME; with --wait, print its progress and verdict."""
    base = (ui_url or _default_ui_url()).rstrip("/")
    session = _session(data_dir)
    if CONTROL_TOKEN_HEADER not in session.headers:
        _fail(f"no control token: set {CONTROL_TOKEN_VARIABLE} or --data-dir to the demo's data directory")
    started = _call(session, "POST", f"{base}/api/v1/experiments", json={"scenario": name})
    if started.status_code != 202:
        _fail(_error_of(started), 2)
    body = started.json()
    if not wait:
        click.echo(json.dumps(body) if as_json else f"started {name}: {body['url']}")
        return
    if not as_json:
        click.echo(f"running {name} ({body['id']}) ...")
    deadline = time.monotonic() + WAIT_LIMIT_S
    while True:
        response = _call(session, "GET", f"{base}/api/v1/experiments/{body['id']}")
        if response.status_code != 200:
            _fail(_error_of(response))
        result = response.json()
        if result["status"] == "done":
            break
        if time.monotonic() > deadline:
            _fail(f"no verdict after {WAIT_LIMIT_S:.0f} s: {body['url']}", 1)
        time.sleep(POLL_S)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        for check in result["checks"]:
            click.echo(f"  {'ok  ' if check['passed'] else 'FAIL'} {check['name']}: {check['detail']}")
        click.echo(f"{result['verdict']}: {result['hypothesis']}")
        click.echo(result["url"])
    sys.exit(0 if result["verdict"] == "passed" else 1)
