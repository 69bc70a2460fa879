"""Helpers for the dashboard tests: post fixture traces through the real receiver."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest


@pytest.fixture
def post_trace(client, load_trace) -> Callable[[str], None]:
    """POST ``tests/fixtures/traces/<name>.json`` to /v1/traces and check it was accepted whole."""

    def post(name: str) -> None:
        response = client.post("/v1/traces", data=load_trace(name), content_type="application/json")
        assert response.status_code == 200, response.get_data(as_text=True)
        assert "partialSuccess" not in json.loads(response.get_data()), response.get_data(as_text=True)

    return post
