"""The baseline for bench/ingest.py: the same receiver, gunicorn set-up and decoding, with a
store that turns spans into rows and discards them. Run by the benchmark, not by hand."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app  # noqa: E402
from app.server import GunicornServer, PortDispatcher  # noqa: E402
from app.settings import Settings, split_addr  # noqa: E402
from collectors.model import Span  # noqa: E402
from collectors.store import WriteResult  # noqa: E402
from collectors.store.rows import span_values  # noqa: E402


class DiscardStore:
    """Builds every span's row, then drops it."""

    def write_spans(self, batch: Iterable[Span], received_ns: int | None = None) -> WriteResult:
        keys: dict[str, int] = {}
        for s in batch:
            for k in s.attributes:
                keys.setdefault(k, len(keys))
        rows = [span_values(s, 0, keys) for s in batch]
        return WriteResult(len(rows), 0)

    def list_services(self) -> list[str]:
        """Answer the health check."""
        return []


def _load(settings: Settings) -> Callable:
    app = create_app(settings, store=DiscardStore())  # type: ignore[arg-type]
    return PortDispatcher(app, split_addr(settings.otlp_http_addr)[1])


if __name__ == "__main__":
    settings = Settings.from_env(otlp_http_addr=sys.argv[1], ui_addr=sys.argv[2], workers=int(sys.argv[3]))
    sys.argv = sys.argv[:1]
    GunicornServer(settings, _load).run()
