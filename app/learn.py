"""The /learn page: each topic of the microservice patterns, what it is, and the live view
and chaos scenario that show it."""

from __future__ import annotations

from flask import Blueprint, render_template

from app.scenarios import SCENARIOS
from app.topics import TOPICS

bp = Blueprint("learn", __name__)


@bp.get("/learn")
def index() -> str:
    """Every topic, in the order a newcomer would read them."""
    return render_template("learn/index.html", topics=list(TOPICS.values()), scenarios=SCENARIOS)
