"""Does the tracking store answer? Asked without importing MLflow.

The sidebar and ``jupyter mlops status`` ask this often; importing MLflow costs about
3 s, so the probe speaks to each kind of store with the standard library only: it
opens a SQLite file read-only, looks at a folder, or calls a server's ``/health``.
"""

from __future__ import annotations

import sqlite3
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from jupyter_mlops.core.settings import TrackingLocation, redact_uri

DEFAULT_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class StoreHealth:
    """Whether the store answers, and a sentence saying what was found."""

    ok: bool
    kind: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _sqlite_path(uri: str) -> Path:
    return Path(unquote(uri[len("sqlite:///") :]))


def _probe_sqlite(uri: str) -> StoreHealth:
    path = _sqlite_path(uri)
    if not path.exists():
        return StoreHealth(
            True,
            "sqlite",
            f"SQLite database {path} not created yet; it is created on the first run",
        )
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=DEFAULT_TIMEOUT_S) as db:
            tables = {
                row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
    except sqlite3.Error as exc:
        return StoreHealth(False, "sqlite", f"SQLite database {path} cannot be read: {exc}")
    if "experiments" not in tables:
        return StoreHealth(False, "sqlite", f"{path} is a SQLite file but not an MLflow database")
    return StoreHealth(True, "sqlite", f"SQLite database {path} answers")


def _probe_folder(uri: str) -> StoreHealth:
    path = Path(unquote(urlsplit(uri).path)) if urlsplit(uri).scheme else Path(uri)
    if path.is_dir():
        return StoreHealth(True, "file", f"folder store {path} exists")
    if path.exists():
        return StoreHealth(False, "file", f"{path} is not a folder")
    return StoreHealth(True, "file", f"folder store {path} not created yet")


def _probe_http(uri: str, timeout: float) -> StoreHealth:
    health_url = uri.rstrip("/") + "/health"
    shown = redact_uri(uri)
    try:
        with urllib.request.urlopen(health_url, timeout=timeout) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        return StoreHealth(False, "http", f"tracking server {shown} answered HTTP {exc.code}")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return StoreHealth(False, "http", f"tracking server {shown} does not answer: {reason}")
    return StoreHealth(status == 200, "http", f"tracking server {shown} answers (HTTP {status})")


def probe_store(location: TrackingLocation, timeout: float = DEFAULT_TIMEOUT_S) -> StoreHealth:
    """Ask the store at ``location`` whether it answers, within ``timeout`` seconds."""
    kind = location.kind
    if kind == "sqlite":
        return _probe_sqlite(location.uri)
    if kind == "file":
        return _probe_folder(location.uri)
    if kind == "http":
        return _probe_http(location.uri, timeout)
    return StoreHealth(
        True, kind, f"{redact_uri(location.uri)}: not probed (MLflow connects on first use)"
    )
