"""The app factory: the Spyglass dashboard and collector as one Flask app.

``create_app(settings)`` opens the store, registers the receiver and every blueprint in
URL order, and installs error handlers and Jinja filters. Nothing happens at import time.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask
from htmx_flask import Htmx

from app import auth, converters, errors, filters
from app.headers import SecurityHeaders
from app.settings import Settings
from collectors.otlp import Limits
from collectors.receiver import ReceiverConfig
from collectors.store import SpanStore

ROOT = Path(__file__).resolve().parent.parent


def receiver_limits(settings: Settings) -> Limits:
    """The per-span ingest limits from the settings."""
    return Limits(
        max_attributes=settings.max_attributes,
        max_value_length=settings.max_value_length,
        max_events=settings.max_events,
        max_links=settings.max_links,
        max_depth=settings.max_value_depth,
    )


def create_app(
    settings: Settings | None = None,
    *,
    store: SpanStore | None = None,
    migrate: bool = True,
    background_checkpoints: bool = True,
) -> Flask:
    """Build the WSGI app; reads the environment only when no settings are given."""
    settings = settings or Settings.from_env()
    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    app.config["SPYGLASS_SETTINGS"] = settings
    Htmx(app)
    app.wsgi_app = SecurityHeaders(app.wsgi_app)
    converters.register(app)  # before the blueprints: their rules look converters up when added
    if store is None:
        if not settings.database_url:
            Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        store = SpanStore.from_url(settings.store_url, migrate=migrate, background_checkpoints=background_checkpoints)
    app.extensions["spyglass.store"] = store
    app.extensions["spyglass.receiver"] = ReceiverConfig(
        max_body_bytes=settings.max_body_bytes,
        limits=receiver_limits(settings),
        max_inflight=settings.max_inflight,
        auth_token=settings.auth_token,
    )

    from app import (
        api,
        api_v1,
        breakers,
        chaos,
        chaos_api,
        compare,
        learn,
        overview,
        registry,
        sagas,
        services,
        traces,
    )
    from app.experiment_runner import ExperimentRunner
    from app.post_guard import load_guard

    guard = load_guard(settings.data_dir)
    app.extensions["spyglass.post_guard"] = guard
    app.extensions["spyglass.chaos_runner"] = ExperimentRunner(
        store, settings.registry_url, guard.control_token, settings.launcher_url
    )
    from collectors import receiver

    # In URL order, so the URL map reads top to bottom.
    app.register_blueprint(overview.bp)  # / and /health
    app.register_blueprint(traces.bp)  # /traces
    app.register_blueprint(compare.bp)  # /traces/compare
    app.register_blueprint(services.bp)  # /services
    app.register_blueprint(breakers.bp)  # /breakers
    app.register_blueprint(sagas.bp)  # /sagas
    app.register_blueprint(registry.bp)  # /registry
    app.register_blueprint(chaos.bp)  # /chaos
    app.register_blueprint(learn.bp)  # /learn
    app.register_blueprint(api.bp)  # /api (Jaeger)
    app.register_blueprint(api_v1.bp)  # /api/v1
    app.register_blueprint(chaos_api.bp)  # /api/v1/scenarios, /api/v1/experiments
    app.register_blueprint(receiver.bp)  # /v1/traces
    auth.register(app, settings.auth_token)
    errors.register(app)
    filters.register(app)
    logging.getLogger("app").setLevel(logging.INFO)
    return app
