"""Settings: the one configuration object, read from ``SPYGLASS_*`` environment variables.

Every field has a type, a default and a one-line help text; the README documents each
(a test checks it), and ``spyglass serve --help`` shows the matching option.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "SPYGLASS_"


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names it."""


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """Spyglass configuration. Build with ``Settings.from_env()`` at entry points only."""

    otlp_http_addr: str = _setting("127.0.0.1:4318", "host:port of the OTLP/HTTP receiver")
    otlp_grpc_addr: str = _setting("127.0.0.1:4317", "host:port of the OTLP/gRPC receiver, when enabled")
    otlp_grpc_enabled: bool = _setting(False, "also receive OTLP over gRPC")
    ui_addr: str = _setting("127.0.0.1:8080", "host:port of the dashboard and the JSON API")
    data_dir: str = _setting("./data", "directory for the SQLite database and other state")
    database_url: str = _setting("", "SQLAlchemy URL of the store; empty means an SQLite file in the data directory")
    max_body_mb: int = _setting(20, "largest accepted OTLP request body in MiB, after decompression")
    retention_hours: float = _setting(72.0, "delete traces received longer ago than this (0 keeps them)")
    max_spans: int = _setting(10_000_000, "keep at most this many spans, deleting the oldest received traces first (0: no cap)")
    prune_interval_s: float = _setting(30.0, "seconds between background retention passes (0: none)")
    auth_token: str = _setting("", "bearer token required for OTLP (HTTP and gRPC), the JSON API and the pages; empty: no auth")
    insecure_no_auth: bool = _setting(False, "allow listening beyond loopback without an auth token")
    workers: int = _setting(1, "gunicorn worker processes for `spyglass serve`")
    max_inflight: int = _setting(16, "concurrent ingest requests per process; a request that finds no slot within 2 s gets 503")
    max_attributes: int = _setting(
        256, "attributes kept per span, event, link or resource; the rest are dropped and counted"
    )
    max_value_length: int = _setting(32768, "characters kept of a span name or string value")
    max_events: int = _setting(512, "events kept per span")
    max_links: int = _setting(512, "links kept per span")
    max_value_depth: int = _setting(16, "deepest nesting of array and map values; deeper spans are rejected")
    registry_url: str = _setting("http://127.0.0.1:9001", "base URL of the service registry the /registry page asks")
    launcher_url: str = _setting(
        "http://127.0.0.1:9009", "base URL of the demo launcher's endpoint that /chaos asks to stop and start instances"
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every field from ``SPYGLASS_<FIELD>``; ``overrides`` win over the environment.

        Raises SettingsError naming the variable, the value and the expected form.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = ENV_PREFIX + f.name.upper()
            if f.name in overrides and overrides[f.name] is not None:
                values[f.name] = overrides[f.name]
            elif name in environ:
                values[f.name] = _parse(name, environ[name], f.type)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise SettingsError for values no parser can catch (ranges, addresses)."""
        for name in ("otlp_http_addr", "otlp_grpc_addr", "ui_addr"):
            split_addr(getattr(self, name), ENV_PREFIX + name.upper())
        for name in (
            "max_body_mb",
            "workers",
            "max_inflight",
            "max_attributes",
            "max_value_length",
            "max_events",
            "max_links",
            "max_value_depth",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be at least 1, got {getattr(self, name)}")
        for name in ("retention_hours", "max_spans", "prune_interval_s"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{ENV_PREFIX}{name.upper()} must not be negative, got {getattr(self, name)}")

    def exposed_without_auth(self) -> list[str]:
        """The listeners bound beyond loopback while no auth token is set and the open
        mode was not asked for (``insecure_no_auth``): what the commands refuse to start."""
        if self.auth_token or self.insecure_no_auth:
            return []
        listeners = [("OTLP/HTTP", self.otlp_http_addr), ("dashboard", self.ui_addr)]
        if self.otlp_grpc_enabled:
            listeners.append(("OTLP/gRPC", self.otlp_grpc_addr))
        return [f"{what} on {addr}" for what, addr in listeners if not is_loopback(split_addr(addr)[0])]

    @property
    def store_url(self) -> str:
        """The database URL in force: ``database_url`` or the SQLite file in ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir).resolve() / 'spyglass.db'}"

    @property
    def max_body_bytes(self) -> int:
        """``max_body_mb`` in bytes."""
        return self.max_body_mb * 1024 * 1024

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def help_texts() -> dict[str, str]:
    """Environment variable name to help text, for the test that the README documents every
    setting (``spyglass serve --help`` builds its options from the same field metadata)."""
    return {ENV_PREFIX + f.name.upper(): f.metadata["help"] for f in fields(Settings)}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, as in a bind address) is this machine's
    loopback only: ``localhost``, 127.0.0.0/8 or ::1. ``0.0.0.0``, ``::`` and every other
    address or name reach beyond it."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_addr(addr: str, name: str = "address") -> tuple[str, int]:
    """Split ``host:port``; raises SettingsError for anything else."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(f"{name} must be host:port (e.g. 127.0.0.1:8080), got {addr!r}")
    return host.strip("[]"), int(port)


def _parse(name: str, raw: str, kind: Any) -> Any:
    kind = {"str": str, "int": int, "float": float, "bool": bool}.get(kind, kind)
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise SettingsError(f"{name} must be true or false, got {raw!r}")
    if kind is int:
        try:
            return int(raw.strip().replace("_", ""))
        except ValueError:
            raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if kind is float:
        try:
            return float(raw.strip())
        except ValueError:
            raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    return raw
