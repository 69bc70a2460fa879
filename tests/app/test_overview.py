"""The landing page and health check."""

from __future__ import annotations

from bs4 import BeautifulSoup

from tests.collectors.test_store import checkout, res, span


def test_overview_lists_services_and_recent_traces(client, store):
    store.write_spans(checkout(1, error=True))
    store.write_spans([span(2, 1, None, res("<img src=x onerror=alert(1)>"), "<script>x</script>")])
    r = client.get("/")
    assert r.status_code == 200
    soup = BeautifulSoup(r.data, "html.parser")
    assert [li.get_text() for li in soup.select("ul.services li")] == [
        "<img src=x onerror=alert(1)>",
        "backend",
        "frontend",
    ]
    assert soup.find("script", string="x") is None
    marked = {
        row.select_one("a")["href"].rsplit("/", 1)[-1]: "has-error" in row.get("class", [])
        for row in soup.select("table.traces tbody tr")
    }
    assert marked == {f"{1:032x}": True, f"{2:032x}": False}


def test_overview_fragment_for_htmx(client, store):
    r = client.get("/", headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert b"<html" not in r.data
    assert b"No service has sent spans yet." in r.data


def test_health(client):
    assert client.get("/health").json == {"status": "ok"}
