"""Where tracking data goes, decided once for the kernel, the CLI and the server.

Precedence (first that applies wins):

1. an explicit argument (``--tracking-uri``, a magic flag, server config);
2. in a kernel of JupyterLab, the JupyterLab setting ``trackingUri`` as the server
   resolved it, which the labextension puts in ``JUPYTER_MLOPS_LAB_TRACKING`` before a
   tracked cell runs (so the kernel tracks where the sidebar looks);
3. the ``MLFLOW_TRACKING_URI`` environment variable;
4. ``[tool.jupyter-mlops] tracking_uri`` in the project's ``pyproject.toml``;
5. the embedded default: a SQLite database and an artifact folder under
   ``.mlops/`` in the project root.

The project root is the nearest folder, from the working directory upward, that holds
``.git`` or ``pyproject.toml``; when there is none, the working directory itself.
A project's ``pyproject.toml`` is therefore only ever the one at its root.

This module reads files and the environment but imports nothing heavy: it is on the
path of ``%load_ext`` and of ``jupyter mlops --help``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import tomllib

from jupyter_mlops.core.errors import ConfigError, UsageError

#: Every environment variable we read, declared once with what it means.
ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
ENV_ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"
ENV_HOME = "JUPYTER_MLOPS_HOME"
ENV_RUN_ID = "JUPYTER_MLOPS_RUN_ID"
ENV_NOTEBOOK = "JUPYTER_MLOPS_NOTEBOOK"
ENV_KERNEL_NAME = "JUPYTER_MLOPS_KERNEL_NAME"
ENV_SESSION_NAME = "JPY_SESSION_NAME"
ENV_HEARTBEAT = "JUPYTER_MLOPS_HEARTBEAT"
ENV_SPOOL = "JUPYTER_MLOPS_SPOOL"
ENV_FORK_KERNELS = "JUPYTER_MLOPS_FORK_KERNELS"
ENV_LAB_TRACKING = "JUPYTER_MLOPS_LAB_TRACKING"
ENVIRONMENT_VARIABLES: dict[str, str] = {
    ENV_TRACKING_URI: "MLflow tracking location; overrides pyproject.toml and the default",
    ENV_ALLOW_FILE_STORE: "MLflow refuses a plain-folder store unless this is 'true'",
    ENV_HOME: "folder for the embedded default store instead of <project root>/.mlops",
    ENV_RUN_ID: "set by our runner in a kernel: the run the notebook's tracking writes into",
    ENV_NOTEBOOK: "set by our runner in a kernel: the notebook it executes",
    ENV_KERNEL_NAME: "set by our runner in a kernel: the kernel's name, for the run's tags",
    ENV_SESSION_NAME: "set by jupyter_server in a kernel: the notebook's path",
    ENV_HEARTBEAT: "how often a live run tags mlops.heartbeat (default 60s; 30s, 2m...)",
    ENV_SPOOL: "folder of the offline spool instead of <project root>/.mlops/spool",
    ENV_FORK_KERNELS: "'0': batch workers start each kernel as a new process, not a fork",
    ENV_LAB_TRACKING: "set by JupyterLab in a kernel: the trackingUri setting, resolved (JSON)",
}

DEFAULT_DIRNAME = ".mlops"
DEFAULT_DB_NAME = "mlflow.db"
DEFAULT_ARTIFACTS_DIRNAME = "artifacts"
SPOOL_DIRNAME = "spool"
PYPROJECT_TABLE = "jupyter-mlops"

Source = Literal["argument", "setting", "environment", "pyproject", "default"]
StoreKind = Literal["sqlite", "file", "http", "database", "other"]


@dataclass(frozen=True)
class TrackingLocation:
    """A resolved tracking location and how it was chosen.

    ``artifact_uri`` is set only where we choose the artifact root ourselves (the
    embedded default and relative SQLite paths from ``pyproject.toml``); a server
    chooses its own.
    """

    uri: str
    source: Source
    detail: str
    project_root: Path
    artifact_uri: str | None = None

    @property
    def kind(self) -> StoreKind:
        return store_kind(self.uri)

    @property
    def sqlite_path(self) -> Path | None:
        """The database file of a SQLite store (None for other stores)."""
        return sqlite_path(self.uri) if self.kind == "sqlite" else None

    def store_missing(self) -> bool:
        """Whether this is a SQLite store whose database was never created."""
        path = self.sqlite_path
        return path is not None and not path.is_file()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["project_root"] = str(self.project_root)
        data["kind"] = self.kind
        return data


def store_kind(uri: str) -> StoreKind:
    """Classify a tracking URI by the MLflow store that serves it."""
    scheme = urlsplit(uri).scheme.lower()
    if uri == "databricks" or scheme == "databricks":
        return "other"
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("", "file"):
        return "file"
    if scheme in ("http", "https"):
        return "http"
    if scheme.split("+")[0] in ("postgresql", "mysql", "mssql"):
        return "database"
    return "other"


def sqlite_path(uri: str) -> Path:
    """The file a ``sqlite:///`` URI names."""
    return Path(unquote(uri[len("sqlite:///") :]))


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder from ``start`` upward holding ``.git`` or ``pyproject.toml``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists() or (folder / "pyproject.toml").is_file():
            return folder
    return here


def load_project_config(project_root: Path) -> dict[str, Any]:
    """The ``[tool.jupyter-mlops]`` table of the project's ``pyproject.toml`` (empty if none)."""
    pyproject = project_root / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    try:
        with pyproject.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {pyproject}: {exc}") from exc
    table = data.get("tool", {}).get(PYPROJECT_TABLE, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{pyproject}: [tool.{PYPROJECT_TABLE}] must be a table")
    return table


def default_location(project_root: Path, environ: Mapping[str, str]) -> TrackingLocation:
    """The embedded default: SQLite plus an artifact folder, no server needed."""
    home_override = environ.get(ENV_HOME)
    home = (
        Path(home_override).expanduser().resolve()
        if home_override
        else project_root / DEFAULT_DIRNAME
    )
    detail = f"embedded default under {home}"
    if home_override:
        detail += f" (from {ENV_HOME})"
    return TrackingLocation(
        uri=f"sqlite:///{home / DEFAULT_DB_NAME}",
        artifact_uri=(home / DEFAULT_ARTIFACTS_DIRNAME).as_uri(),
        source="default",
        detail=detail,
        project_root=project_root,
    )


def _anchor_relative(uri: str, base: Path) -> tuple[str, str | None]:
    """Make a relative SQLite or folder URI from ``pyproject.toml`` absolute against ``base``.

    A team commits ``tracking_uri = "sqlite:///.mlops/team.db"`` and expects it to mean
    the same file from every subfolder, so relative paths are relative to the project
    root, not to the working directory.
    """
    kind = store_kind(uri)
    if kind == "sqlite":
        path = uri[len("sqlite:///") :]
        if path and not path.startswith("/"):
            db = (base / path).resolve()
            return f"sqlite:///{db}", (db.parent / DEFAULT_ARTIFACTS_DIRNAME).as_uri()
        return uri, None
    if kind == "file" and not urlsplit(uri).scheme:
        folder = Path(uri).expanduser()
        if not folder.is_absolute():
            folder = (base / folder).resolve()
        return folder.as_uri(), None
    return uri, None


def resolve_tracking_location(
    explicit: str | None = None,
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> TrackingLocation:
    """Apply the precedence documented in this module and say which rule won."""
    env = os.environ if environ is None else environ
    root = find_project_root(cwd)
    if explicit:
        uri, artifacts = _anchor_relative(explicit, (cwd or Path.cwd()).resolve())
        return TrackingLocation(uri, "argument", "given explicitly", root, artifacts)
    from_lab = lab_setting(env, root)
    if from_lab is not None:
        return from_lab
    from_env = env.get(ENV_TRACKING_URI, "").strip()
    if from_env:
        uri, artifacts = _anchor_relative(from_env, (cwd or Path.cwd()).resolve())
        return TrackingLocation(uri, "environment", ENV_TRACKING_URI, root, artifacts)
    configured = load_project_config(root).get("tracking_uri")
    if configured is not None:
        if not isinstance(configured, str) or not configured.strip():
            raise ConfigError(
                f"{root / 'pyproject.toml'}: [tool.{PYPROJECT_TABLE}] tracking_uri must be "
                "a non-empty string"
            )
        uri, artifacts = _anchor_relative(configured.strip(), root)
        return TrackingLocation(uri, "pyproject", str(root / "pyproject.toml"), root, artifacts)
    return default_location(root, env)


def lab_setting(env: Mapping[str, str], root: Path) -> TrackingLocation | None:
    """The JupyterLab setting as the labextension told this kernel, or None.

    The frontend asks its server to resolve the setting (the server anchors a relative
    store at the folder it serves and refuses what it does not accept) and hands the
    result over as JSON: ``{"uri", "artifact_uri", "detail"}``, or ``{"error"}`` when the
    server refused the setting. A refusal is an error here too, not a silent fallback to
    another store than the one the sidebar is set to.
    """
    text = env.get(ENV_LAB_TRACKING, "").strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ConfigError(f"{ENV_LAB_TRACKING} is not what JupyterLab sets: {text[:100]!r}")
    if isinstance(data.get("error"), str):
        raise ConfigError(
            f"the JupyterLab setting Tracking URI was refused: {data['error']}",
            hint="fix it in Settings → MLOps, or give --tracking-uri",
        )
    uri, artifacts, detail = data.get("uri"), data.get("artifact_uri"), data.get("detail")
    if (
        not isinstance(uri, str)
        or not uri.strip()
        or not isinstance(artifacts, (str, type(None)))
        or not isinstance(detail, str)
    ):
        raise ConfigError(f"{ENV_LAB_TRACKING} is not what JupyterLab sets: {text[:100]!r}")
    return TrackingLocation(uri.strip(), "setting", detail, root, artifacts)


MAX_OVERRIDE_LENGTH = 2048
SQLITE_MAGIC = b"SQLite format 3\x00"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _inside_root(text: str, path: Path, root: Path) -> Path:
    """``path`` (absolute, or relative to ``root``) if it stays in ``root``, else a UsageError.

    Checked as written (``..`` folded, nothing outside the root is looked at), then once
    resolved (a symlink inside the root that points out of it is refused too).
    """
    lexical = Path(os.path.normpath(root / path))
    resolved = lexical.resolve() if lexical.is_relative_to(root) else None
    if resolved is None or not resolved.is_relative_to(root):
        raise UsageError(f"tracking location {text!r} is outside the folder this server serves")
    return resolved


def check_tracking_override(text: str, root: Path) -> str:
    """A tracking location a JupyterLab user chose, checked against the server's ``root``.

    Accepted: an ``http(s)://`` URL without credentials in it; ``sqlite:///PATH`` naming an
    existing database file, and a folder store (a plain path or ``file:///PATH``) naming an
    existing folder, both inside ``root`` (relative paths are relative to ``root``). Local
    stores come back as a ``root``-relative URI (``sqlite:///rel/db``, ``rel/folder``) that
    :func:`resolve_tracking_location` anchors at ``root`` with the artifacts beside the
    database, in the server and in a batch it starts alike. Anything else is a UsageError.
    """
    text = text.strip()
    root = root.resolve()
    if not text:
        raise UsageError("the tracking location is empty")
    if len(text) > MAX_OVERRIDE_LENGTH:
        raise UsageError(f"a tracking location has at most {MAX_OVERRIDE_LENGTH} characters")
    if _CONTROL.search(text):
        raise UsageError("a tracking location cannot contain NUL or control characters")
    if not text.isascii():
        raise UsageError("a tracking location must be ASCII (percent-encode the rest of a URL)")
    if "\\" in text:
        raise UsageError("a tracking location uses '/' between folders, not '\\'")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError as exc:
        raise UsageError(f"the tracking location is not a valid URI: {exc}") from None
    shown = redact_uri(text)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise UsageError(
                "a tracking URL from JupyterLab cannot carry credentials (user:password@)",
                hint="give the tracking server's credentials to the Jupyter server's "
                "environment (MLFLOW_TRACKING_USERNAME/PASSWORD) instead",
            )
        if not parts.hostname:
            raise UsageError(f"tracking URL {shown!r} names no host")
        return text
    local_kinds = "http(s)://HOST, sqlite:///PATH, file:///PATH or a folder inside the server root"
    if scheme == "sqlite":
        if not text.startswith("sqlite:///") or parts.query or parts.fragment:
            raise UsageError(
                f"tracking location {shown!r}: write sqlite:///PATH (a file), with no host or query"
            )
        raw = text[len("sqlite:///") :]
        kind = "database file"
    elif scheme == "file":
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise UsageError(f"tracking location {shown!r}: write file:///PATH, with no host")
        raw = parts.path
        kind = "folder"
    elif scheme == "" and not text.startswith("//"):
        raw = text
        kind = "folder"
    else:
        raise UsageError(
            f"tracking location {shown!r} is not accepted from JupyterLab", hint=local_kinds
        )
    if not raw or "%" in raw or raw.startswith("~"):
        raise UsageError(
            f"tracking location {shown!r}: give a plain path (no '~', no percent-escapes)"
        )
    path = _inside_root(shown, Path(raw), root)
    exists = path.is_file() if kind == "database file" else path.is_dir()
    if not exists:
        raise UsageError(
            f"tracking location {shown!r}: there is no {kind} {path.relative_to(root)} "
            "in the server root",
            hint="create the store first (track or run a notebook with it)",
        )
    relative = path.relative_to(root).as_posix()
    if kind == "database file":
        if not _is_sqlite_file(path):
            raise UsageError(f"tracking location {shown!r}: {relative} is not a SQLite database")
        return f"sqlite:///{relative}"
    return relative


def _is_sqlite_file(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def resolve_tracking_override(text: str, root: Path) -> TrackingLocation:
    """The location a JupyterLab setting names, once :func:`check_tracking_override` passed."""
    checked = check_tracking_override(text, root)
    uri, artifacts = _anchor_relative(checked, root.resolve())
    detail = f"trackingUri = {redact_uri(text.strip())}"
    return TrackingLocation(uri, "setting", detail, find_project_root(root), artifacts)


def spool_folder(location: TrackingLocation, environ: Mapping[str, str] | None = None) -> Path:
    """Where records wait while the store does not answer: ``<project root>/.mlops/spool``.

    ``JUPYTER_MLOPS_SPOOL`` names another folder; with ``JUPYTER_MLOPS_HOME`` set, the spool
    is ``spool/`` in that folder, next to the embedded store.
    """
    env = os.environ if environ is None else environ
    override = env.get(ENV_SPOOL, "").strip()
    if override:
        return Path(override).expanduser().resolve()
    home = env.get(ENV_HOME, "").strip()
    base = Path(home).expanduser().resolve() if home else location.project_root / DEFAULT_DIRNAME
    return base / SPOOL_DIRNAME


def redact_uri(uri: str) -> str:
    """The URI with any ``user:password@`` removed, for display and logs."""
    parts = urlsplit(uri)
    if parts.password is None and parts.username is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return parts._replace(netloc=f"***@{host}").geturl()
