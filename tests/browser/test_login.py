"""Logging a browser in with ?token= on a real `spyglass serve` that requires a token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import ServeProcess

pytestmark = pytest.mark.browser

TOKEN = "browser-login-token"


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    server = ServeProcess(tmp_path_factory.mktemp("login") / "data", env={"SPYGLASS_AUTH_TOKEN": TOKEN})
    try:
        yield server
    finally:
        server.stop()


def test_token_in_the_address_logs_in_and_leaves_no_trace_of_itself(page, guarded_server) -> None:
    ui = guarded_server.ui
    refused = page.goto(ui + "/services")
    assert refused.status == 401
    answer = page.goto(f"{ui}/traces?range=6h&token={TOKEN}")
    assert answer.status == 200
    assert page.url == f"{ui}/traces?range=6h"  # the 303 replaced the address
    html = page.content()
    assert TOKEN not in html
    cookie = next(c for c in page.context.cookies() if c["name"] == "spyglass_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script can read it
    # Later pages, and the fragments htmx fetches from them, need no token in any URL.
    page.goto(ui + "/services")
    assert page.locator("#graph").count() == 1
    page.go_back()
    assert page.url == f"{ui}/traces?range=6h"
