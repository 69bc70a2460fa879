"""Names and ids in links: one encoded path segment or the query string, and routed back whole."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from app.converters import fits_in_path, path_segment
from tests.app import pattern_spans


def test_a_path_segment_encodes_every_slash_and_reserved_character():
    assert path_segment("../../api/services") == "..%2F..%2Fapi%2Fservices"
    assert path_segment("a b?c#d%2F'\"<>") == "a%20b%3Fc%23d%252F%27%22%3C%3E"
    assert [fits_in_path(v) for v in ("x", "..x", "a/b", "", ".", "..", "/x")] == [True] * 3 + [False] * 4


@pytest.mark.parametrize(
    ("saga_id", "href"),
    [
        ("../../api/v1/sagas", "/sagas/..%2F..%2Fapi%2Fv1%2Fsagas"),
        ("s%2F?x=1#h", "/sagas/s%252F%3Fx%3D1%23h"),
        ("..", "/sagas/?id=.."),
        ("/lead", "/sagas/?id=/lead"),
    ],
)
def test_saga_links_carry_the_id_whole_and_open_it(client, tracer_provider_factory, saga_id, href):
    pattern_spans.saga(tracer_provider_factory, saga_id, ["create", "pay"], None)
    soup = BeautifulSoup(client.get("/sagas").get_data(as_text=True), "html.parser")
    [link] = [a for a in soup.select("table.sagas a") if a.get_text() == saga_id]
    assert link["href"] == href
    page = BeautifulSoup(client.get(href).get_data(as_text=True), "html.parser")
    assert page.select_one("h1 code").get_text() == saga_id


def test_saga_page_by_query_needs_an_id(client):
    r = client.get("/sagas/")
    assert r.status_code == 400 and "id is required" in r.get_data(as_text=True)


def test_node_page_takes_its_name_from_the_query_string(client, tracer_provider_factory):
    pattern_spans.order_flow(tracer_provider_factory)
    r = client.get("/services/node?name=payment")
    assert r.status_code == 200 and "POST /charge" in r.get_data(as_text=True)
    assert client.get("/services/node").status_code == 400


def test_jaeger_operations_route_takes_an_encoded_slash(client, tracer_provider_factory):
    tracer = pattern_spans.tracer(tracer_provider_factory, "team/payments")
    with tracer.start_as_current_span("charge"):
        pass
    assert client.get("/api/services/team%2Fpayments/operations").json["data"] == ["charge"]
