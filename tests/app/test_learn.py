"""/learn: every topic, its live views and chaos scenarios, its drawing; every link answers."""

from __future__ import annotations

from urllib.parse import urlsplit

from bs4 import BeautifulSoup

from app.scenarios import SCENARIOS
from app.topics import TOPICS


def learn_page(client) -> BeautifulSoup:
    r = client.get("/learn")
    assert r.status_code == 200
    return BeautifulSoup(r.get_data(as_text=True), "html.parser")


GUIDE_TOPICS = [
    "Monolith or microservices",
    "API gateway",
    "Service discovery",
    "Circuit breaker",
    "Saga",
    "Synchronous or asynchronous",
    "REST, gRPC or events",
    "Database per service",
    "API composition",
    "CQRS",
    "Event sourcing",
    "Distributed tracing",
    "The challenges",
]


def test_every_topic_of_the_guide_has_a_section_with_its_live_view_and_scenario(client):
    soup = learn_page(client)
    sections = soup.select("section.topic")
    assert [s.h2.get_text() for s in sections] == GUIDE_TOPICS
    assert [a["href"] for a in soup.select("nav.toc a")] == [f"#{s['id']}" for s in sections]
    for section in sections:
        topic = TOPICS[section["data-topic"]]
        assert section.select("a.view"), f"{topic.key} links no live view"
        scenarios = [a["href"] for a in section.select("a.scenario")]
        assert scenarios == [f"/chaos#scenario-{name}" for name in topic.scenarios]
        assert all(name in SCENARIOS for name in topic.scenarios)
    challenges = soup.select_one("#topic-challenges")
    assert [a["href"] for a in challenges.select("a.view")] == ["/chaos", "/chaos/experiments"]
    discovery = soup.select_one("#topic-service-discovery")
    assert [a.get_text() for a in discovery.select("a.scenario")] == ["Inventory instance down"]


def test_every_link_on_the_page_answers_200_and_every_anchor_exists(client):
    """Without the demo running, as a newcomer first opens the page."""
    soup = learn_page(client)
    ids = {"": {tag["id"] for tag in soup.select("[id]")}}
    hrefs = {a["href"] for a in soup.select("a[href]")}
    assert len(hrefs) > 20
    for href in sorted(hrefs):
        parts = urlsplit(href)
        assert not parts.scheme and not parts.netloc, f"{href} leaves the dashboard"
        if parts.path not in ids:
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            r = client.get(target)
            assert r.status_code == 200, f"{href} answered {r.status_code}"
            ids[parts.path] = {t["id"] for t in BeautifulSoup(r.get_data(as_text=True), "html.parser").select("[id]")}
        if parts.fragment:
            assert parts.fragment in ids[parts.path], f"{href}: no #{parts.fragment} there"


def test_the_drawings_are_accessible_images_with_a_title_and_a_description(client):
    soup = learn_page(client)
    drawings = soup.select("svg.drawing")
    drawn = {d.find_parent("section")["data-topic"] for d in drawings}
    assert drawn == {"microservices", "api-gateway", "service-discovery", "circuit-breaker", "saga", "sync-async"}
    for svg in drawings:
        assert svg["role"] == "img"
        title_id, desc_id = svg["aria-labelledby"].split()
        assert svg.select_one(f"title#{title_id}").get_text()
        assert len(svg.select_one(f"desc#{desc_id}").get_text()) > 40
    ids = [tag["id"] for tag in soup.select("[id]")]
    assert len(ids) == len(set(ids)), "ids repeat on the page"


def test_learn_is_in_the_nav_of_every_page(client):
    for path in ("/", "/learn", "/traces", "/sagas"):
        soup = BeautifulSoup(client.get(path).get_data(as_text=True), "html.parser")
        assert [a["href"] for a in soup.select("header.top nav a") if a.get_text() == "Learn"] == ["/learn"]
