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

from app.chaos_cli import chaos
from app.settings import ENV_PREFIX, Settings, SettingsError
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
    """Settings from the environment with command-line options on top; exits on a bad value,
    and with one line and exit code 2 when a listener would be open beyond loopback
    without a token (see :meth:`Settings.exposed_without_auth`)."""
    try:
        settings = Settings.from_env(**options)
    except SettingsError as err:
        raise click.UsageError(str(err)) from err
    exposed = settings.exposed_without_auth()
    if exposed:
        click.echo(
            f"spyglass: refusing to listen beyond loopback without SPYGLASS_AUTH_TOKEN ({', '.join(exposed)}): "
            "set a token, or pass --insecure-no-auth to serve everyone who can reach the port",
            err=True,
        )
        sys.exit(2)
    return settings


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


DEMO_FIXED = {
    "registry_url": "the demo runs its own registry and points the /registry page at it",
    "launcher_url": "the demo serves its own launcher control endpoint and points /chaos at it",
}
"""Settings `spyglass demo` refuses, and why; every other one is forwarded to its Spyglass."""

_DEMO_PASSED_AS_ARGUMENTS = ("ui_addr", "otlp_http_addr", "data_dir")


def demo_settings_env(options: dict[str, Any]) -> dict[str, str]:
    """The ``SPYGLASS_*`` variables that carry the options given to `spyglass demo` to the
    Spyglass it starts (in the environment, not on a command line, since a database URL or
    a token must not show in a process listing). Refuses what the demo decides itself."""
    for name, why in DEMO_FIXED.items():
        if options.get(name) is not None:
            flag = "--" + name.replace("_", "-")
            raise click.UsageError(f"{flag} cannot be used with `spyglass demo`: {why}")
    env = {}
    for name, value in options.items():
        if value is None or name in _DEMO_PASSED_AS_ARGUMENTS:
            continue
        env[ENV_PREFIX + name.upper()] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return env


@main.command()
@click.option("--traffic/--no-traffic", default=True, help="run the gentle background traffic generator")
@click.option("--rate", type=float, default=1.0, show_default=True, help="orders per second of background traffic")
@click.option("--base-port", type=int, default=9000, show_default=True, help="first port of the demo services")
@click.option("--open/--no-open", "open_browser", default=False, help="open the dashboard in a browser once ready")
@_settings_options
def demo(traffic: bool, rate: float, base_port: int, open_browser: bool, **options: Any) -> None:
    """Start Spyglass and every demo service, with background traffic; Ctrl-C stops them all.

    The Spyglass options are those of `spyglass serve` and go to the Spyglass the demo
    starts, except --registry-url and --launcher-url (the demo's own are used).
    """
    settings = load_settings(options)
    settings_env = demo_settings_env(options)
    if rate <= 0:
        raise click.UsageError(f"--rate must be a positive number of orders per second, got {rate}")
    from demo_services.demo_console import run_demo

    sys.exit(
        run_demo(
            ui_addr=settings.ui_addr,
            otlp_http_addr=settings.otlp_http_addr,
            data_dir=settings.data_dir,
            traffic=traffic,
            rate=rate,
            base_port=base_port,
            open_browser=open_browser,
            settings_env=settings_env,
        )
    )


main.add_command(chaos)

if __name__ == "__main__":
    main()
