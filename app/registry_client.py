"""The demo registry, asked over HTTP for its instances (the /registry page shows them)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from app.analysis.registry import parse_instances

FETCH_TIMEOUT_S = 2.0
MAX_BODY = 5 * 1024 * 1024


class RegistryUnavailableError(RuntimeError):
    """The registry could not be reached or answered something unusable."""


def fetch_instances(base_url: str, timeout_s: float = FETCH_TIMEOUT_S) -> list[dict[str, Any]]:
    """``GET {base_url}/instances``; raises RegistryUnavailableError saying why not."""
    url = base_url.rstrip("/") + "/instances"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (URL from settings)
            body = response.read(MAX_BODY + 1)
    except urllib.error.HTTPError as err:
        raise RegistryUnavailableError(f"the registry at {url} answered {err.code} {err.reason}") from err
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise RegistryUnavailableError(f"the registry at {url} is unreachable: {reason}") from err
    if len(body) > MAX_BODY:
        raise RegistryUnavailableError(f"the registry at {url} sent more than {MAX_BODY} bytes")
    try:
        return parse_instances(json.loads(body))
    except ValueError as err:
        raise RegistryUnavailableError(f"the registry at {url} sent an unusable answer: {err}") from err
