"""The ``spyglass`` command: ``serve`` runs the collector and dashboard.

Every option has a ``SPYGLASS_*`` environment variable of the same name; a bad value
stops the command with one line naming it and exit code 2.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from app.settings import ENV_PREFIX, Settings, SettingsError, split_addr
from collectors.store import SpanStore, StoreError

_CLICK_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _settings_options(func: Any) -> Any:
    """Add one option per Settings field, documented with its environment variable."""
    for f in reversed(dataclasses.fields(Settings)):
        env = ENV_PREFIX + f.name.upper()
        flag = "--" + f.name.replace("_", "-")
        kind = _CLICK_TYPES.get(f.type, str) if isinstance(f.type, str) else f.type
        help_text = f"{f.metadata['help']} [env {env}; default {f.default!r}]"
        if kind is bool:
            func = click.option(flag + "/--no-" + f.name.replace("_", "-"), f.name, default=None, help=help_text)(func)
        else:
            func = click.option(flag, f.name, type=kind, default=None, help=help_text)(func)
    return func


def load_settings(options: dict[str, Any]) -> Settings:
    """Settings from the environment with command-line options on top; exits on a bad value."""
    try:
        return Settings.from_env(**options)
    except SettingsError as err:
        raise click.UsageError(str(err)) from err


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Spyglass: see microservice patterns work, through their traces."""


@main.command()
@_settings_options
def serve(**options: Any) -> None:
    """Run the OTLP collector and the dashboard (gunicorn, --workers N)."""
    settings = load_settings(options)
    if not settings.database_url:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    try:
        SpanStore.from_url(settings.store_url).close()
    except StoreError as err:
        click.echo(f"spyglass: {err}", err=True)
        sys.exit(1)
    from app.server import run

    sys.exit(run(settings))


if __name__ == "__main__":
    main()
