"""SPYGLASS_AUTH_TOKEN on the pages, the JSON API and the OTLP/HTTP receiver (Flask's client).

The same rules on a real `spyglass serve`, with the gRPC receiver and the headers of every
response, are in tests/test_security.py.
"""

from __future__ import annotations

import pytest

from app import create_app
from tests.helpers import pb_request

TOKEN = "s3cret-token"
PB = {"Content-Type": "application/x-protobuf"}


@pytest.fixture
def guarded(settings, store):
    return create_app(settings.replace(auth_token=TOKEN), store=store).test_client()


def _batch() -> bytes:
    span = {"trace_id": "ab" * 16, "span_id": "cd" * 8, "name": "op", "start": 1_000, "end": 2_000}
    return pb_request([{"service": "svc", "spans": [span]}]).SerializeToString()


def test_refusals_are_401_with_a_bearer_challenge(guarded):
    r = guarded.get("/api/services")
    assert r.status_code == 401 and "bearer token" in r.json["errors"][0]["msg"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    page = guarded.get("/")
    assert page.status_code == 401 and page.mimetype == "text/html"
    assert page.headers["WWW-Authenticate"].startswith("Bearer")
    assert guarded.get("/health").status_code == 200
    assert guarded.get("/static/app.css").status_code == 200


@pytest.mark.parametrize("value", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}", f"  Bearer   {TOKEN} "])
def test_the_bearer_scheme_is_case_insensitive(guarded, value):
    assert guarded.get("/api/services", headers={"Authorization": value}).status_code == 200


@pytest.mark.parametrize(
    "value",
    [TOKEN, "Bearer nope", f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer", "Bearer ", f"Token {TOKEN}", ""],
)
def test_anything_but_the_bearer_token_is_refused(guarded, value):
    assert guarded.get("/api/services", headers={"Authorization": value}).status_code == 401


def test_token_in_the_address_logs_in_and_is_taken_out_of_the_url(guarded):
    r = guarded.get(f"/traces?service=a%20b&token={TOKEN}&limit=5")
    assert r.status_code == 303
    assert r.headers["Location"] == "/traces?service=a+b&limit=5"
    assert r.headers["Cache-Control"] == "no-store"
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(f"spyglass_token={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    page = guarded.get(r.headers["Location"])
    assert page.status_code == 200
    assert TOKEN not in page.get_data(as_text=True)  # no link on the page carries it


def test_login_keeps_encoded_slashes_and_never_leaves_the_site(guarded):
    r = guarded.get(f"/sagas/..%2F..%2Fapi%2Fservices?token={TOKEN}")
    assert r.status_code == 303 and r.headers["Location"] == "/sagas/..%2F..%2Fapi%2Fservices"
    # What a raw request line can hold: a Location of "//host" or "/\\host" would leave the site.
    for raw, expected in (("//evil.example/x", "/evil.example/x"), ("/\\evil.example/x", "/%5Cevil.example/x")):
        uri = f"{raw}?token={TOKEN}"
        r = guarded.get("/x", query_string={"token": TOKEN}, environ_overrides={"RAW_URI": uri, "REQUEST_URI": uri})
        assert (r.status_code, r.headers["Location"]) == (303, expected)


def test_login_cookie_is_secure_over_https(guarded):
    r = guarded.get(f"/?token={TOKEN}", base_url="https://localhost")
    assert r.status_code == 303 and "Secure" in r.headers["Set-Cookie"]


def test_a_wrong_token_in_the_address_is_refused_and_sets_no_cookie(guarded):
    r = guarded.get("/?token=wrong")
    assert r.status_code == 401 and "Set-Cookie" not in r.headers
    assert guarded.get("/").status_code == 401


def test_the_cookie_alone_is_enough_but_not_beside_a_bad_header(guarded):
    guarded.set_cookie("spyglass_token", TOKEN)
    assert guarded.get("/api/services").status_code == 200
    assert guarded.get("/api/services", headers={"Authorization": "Bearer nope"}).status_code == 401
    guarded.set_cookie("spyglass_token", "nope")
    assert guarded.get("/api/services").status_code == 401


def test_receiver_takes_the_bearer_scheme_in_any_case_and_nothing_else(guarded, store):
    for value in (None, TOKEN, "Bearer nope", f"Basic {TOKEN}"):
        headers = {**PB, **({"Authorization": value} if value else {})}
        r = guarded.post("/v1/traces", data=_batch(), headers=headers)
        assert r.status_code == 401, value
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert store.get_trace("ab" * 16) == []
    accepted = guarded.post("/v1/traces", data=_batch(), headers={**PB, "Authorization": f"bearer {TOKEN}"})
    assert accepted.status_code == 200
    assert len(store.get_trace("ab" * 16)) == 1
