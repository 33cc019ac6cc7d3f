"""Does the tracking store answer? Asked without importing MLflow.

The sidebar and ``jupyter mlops status`` ask this often; importing MLflow costs about
3 s, so the probe speaks to each kind of store with the standard library only: it
opens a SQLite file read-only, looks at a folder, or calls a server's ``/health`` and then
one small read with the credentials MLflow's client would send
(``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` or ``MLFLOW_TRACKING_TOKEN``): MLflow's basic-auth
app answers ``/health`` to anyone, so only that read tells that it refuses the credentials.
The credentials go in a header, never into a message.

``server_problem`` is the quick question the writer asks before it talks to a server that
failed or was idle: MLflow's own HTTP client retries a refused connection for minutes.
"""

from __future__ import annotations

import base64
import http.client
import os
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from jupyter_mlops.core.settings import (
    ENV_ALLOW_FILE_STORE,
    TrackingLocation,
    redact_uri,
    sqlite_path,
)

DEFAULT_TIMEOUT_S = 2.0
#: HTTP answers of /health that mean the server (or the proxy in front of it) is down.
DOWN_STATUSES = frozenset({502, 503, 504})
#: HTTP answers that mean the server refused the request's credentials (or wants some).
REFUSED_STATUSES = frozenset({401, 403})
#: A read that any authenticated user may make; basic auth answers 401 to bad credentials.
CREDENTIALS_PROBE_PATH = "/api/2.0/mlflow/experiments/search?max_results=1"
ENV_USERNAME = "MLFLOW_TRACKING_USERNAME"
ENV_PASSWORD = "MLFLOW_TRACKING_PASSWORD"  # noqa: S105 (a variable's name)
ENV_TOKEN = "MLFLOW_TRACKING_TOKEN"  # noqa: S105 (a variable's name)


@dataclass(frozen=True)
class StoreHealth:
    """Whether the store answers, and a sentence saying what was found."""

    ok: bool
    kind: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _probe_sqlite(uri: str) -> StoreHealth:
    path = sqlite_path(uri)
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


def file_store_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """Whether MLflow accepts a folder store here (it reads ``MLFLOW_ALLOW_FILE_STORE``)."""
    env = os.environ if environ is None else environ
    return env.get(ENV_ALLOW_FILE_STORE, "").strip().lower() in ("true", "1")


def _probe_folder(uri: str, environ: Mapping[str, str] | None = None) -> StoreHealth:
    path = Path(unquote(urlsplit(uri).path)) if urlsplit(uri).scheme else Path(uri)
    if not file_store_allowed(environ):
        return StoreHealth(
            False,
            "file",
            f"MLflow refuses the folder store {path} unless {ENV_ALLOW_FILE_STORE}=true is set",
        )
    if path.is_dir():
        return StoreHealth(True, "file", f"folder store {path} exists")
    if path.exists():
        return StoreHealth(False, "file", f"{path} is not a folder")
    return StoreHealth(True, "file", f"folder store {path} not created yet")


def _server_url(uri: str, path: str) -> str:
    """``path`` on the server, without any ``user:password@`` (urllib cannot send those)."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    path, _, query = path.partition("?")
    return parts._replace(
        netloc=host, path=parts.path.rstrip("/") + path, query=query, fragment=""
    ).geturl()


def _health_url(uri: str) -> str:
    """The server's ``/health``, without any ``user:password@``."""
    return _server_url(uri, "/health")


def _credentials(environ: Mapping[str, str] | None) -> tuple[str | None, str]:
    """The ``Authorization`` header MLflow's client sends, and which variables it comes from.

    Same precedence as MLflow's REST client: a username *and* a password (basic), else a
    token (bearer), else nothing.
    """
    env = os.environ if environ is None else environ
    username, password = env.get(ENV_USERNAME, ""), env.get(ENV_PASSWORD, "")
    if username and password:
        pair = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        return f"Basic {pair}", f"{ENV_USERNAME} and {ENV_PASSWORD}"
    if env.get(ENV_TOKEN):
        return f"Bearer {env[ENV_TOKEN]}", ENV_TOKEN
    return None, f"{ENV_USERNAME} and {ENV_PASSWORD} (or {ENV_TOKEN})"


def _refused(shown: str, code: int, header: str | None, variables: str) -> StoreHealth:
    """The server refused our credentials, or asks for some: say which variables to check."""
    if header is None:
        message = f"tracking server {shown} asks for credentials (HTTP {code}): set {variables}"
    else:
        message = (
            f"tracking server {shown} refused the credentials (HTTP {code}): check {variables}"
        )
    return StoreHealth(False, "http", message)


def _get(url: str, header: str | None, timeout: float) -> int:
    """The HTTP status of ``GET url`` (an ``HTTPError`` for 4xx and 5xx answers)."""
    request = urllib.request.Request(url)  # noqa: S310 (http(s) only: the URI's kind is http)
    if header is not None:
        request.add_header("Authorization", header)
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return int(response.status)


def _probe_http(uri: str, timeout: float, environ: Mapping[str, str] | None = None) -> StoreHealth:
    shown = redact_uri(uri)
    header, variables = _credentials(environ)
    try:
        status = _get(_health_url(uri), header, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code in REFUSED_STATUSES:  # a proxy in front that checks every path
            return _refused(shown, exc.code, header, variables)
        return StoreHealth(False, "http", f"tracking server {shown} answered HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        return StoreHealth(False, "http", f"tracking server {shown} does not answer: {reason}")
    if status != 200:
        return StoreHealth(False, "http", f"tracking server {shown} answers (HTTP {status})")
    # /health is open to anyone on MLflow's basic-auth app: ask something that is not.
    try:
        _get(_server_url(uri, CREDENTIALS_PROBE_PATH), header, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code in REFUSED_STATUSES:
            return _refused(shown, exc.code, header, variables)
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException):
        pass  # it answered /health a moment ago; MLflow's client will say what is wrong
    return StoreHealth(True, "http", f"tracking server {shown} answers (HTTP {status})")


def server_problem(uri: str, timeout: float = DEFAULT_TIMEOUT_S) -> str | None:
    """What keeps the tracking server at ``uri`` from answering, or None when it answers.

    Any HTTP answer but a gateway's "down" (502, 503, 504) counts as answering: a server
    behind an authenticating proxy may well refuse ``/health`` and still take our writes.
    """
    shown = redact_uri(uri)
    try:
        with urllib.request.urlopen(_health_url(uri), timeout=timeout):  # noqa: S310
            return None
    except urllib.error.HTTPError as exc:
        if exc.code in DOWN_STATUSES:
            return f"tracking server {shown} answered HTTP {exc.code}"
        return None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        return f"tracking server {shown} does not answer: {reason}"
    except ValueError:  # a URI urllib cannot ask; MLflow's own client will say what is wrong
        return None


def probe_store(
    location: TrackingLocation,
    timeout: float = DEFAULT_TIMEOUT_S,
    environ: Mapping[str, str] | None = None,
) -> StoreHealth:
    """Ask the store at ``location`` whether it answers, within ``timeout`` seconds."""
    kind = location.kind
    if kind == "sqlite":
        return _probe_sqlite(location.uri)
    if kind == "file":
        return _probe_folder(location.uri, environ)
    if kind == "http":
        return _probe_http(location.uri, timeout, environ)
    return StoreHealth(
        True, kind, f"{redact_uri(location.uri)}: not probed (MLflow connects on first use)"
    )
