"""The base of our REST handlers: the extension app, the request's tracking location (the
server's, or the JupyterLab setting sent as ``X-MLOps-Tracking-URI``), the user, JSON
bodies, and the one place where our typed errors become JSON with their HTTP status."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin

from jupyter_mlops.core.errors import MlopsError, UsageError, http_status_for
from jupyter_mlops.core.settings import (
    TrackingLocation,
    check_tracking_override,
    resolve_tracking_override,
)
from jupyter_mlops.server.extension import MlopsExtensionApp

if TYPE_CHECKING:
    from jupyter_mlops.governance.notebook_versions import NotebookVersions

API_PREFIX = "/jupyter-mlops/api"
AUTH_RESOURCE_PREFIX = "jupyter_mlops"
MAX_BODY_BYTES = 1_000_000
#: The JupyterLab setting ``trackingUri``, sent by the labextension with each request.
TRACKING_HEADER = "X-MLOps-Tracking-URI"


class MlopsHandler(ExtensionHandlerMixin, APIHandler):
    """Base of our handlers: reaches the extension app and maps our errors to JSON."""

    auth_resource = f"{AUTH_RESOURCE_PREFIX}:api"

    @property
    def mlops(self) -> MlopsExtensionApp:
        return cast(MlopsExtensionApp, self.extensionapp)

    def tracking_override(self) -> str | None:
        """The request's ``X-MLOps-Tracking-URI``, checked; None without one.

        An ``http(s)`` URL without credentials, or a SQLite file or folder store inside the
        served root (returned relative to it); anything else is a ``UsageError`` (400).
        """
        text = (self.request.headers.get(TRACKING_HEADER) or "").strip()
        if not text:
            return None
        return check_tracking_override(text, self.mlops.root_dir)

    def tracking_location(self) -> TrackingLocation:
        """The tracking location this request works on: the header's, else the server's."""
        text = (self.request.headers.get(TRACKING_HEADER) or "").strip()
        if text:
            return resolve_tracking_override(text, self.mlops.root_dir)
        return self.mlops.tracking_location()

    def notebook_versions(self) -> NotebookVersions:
        """References resolved against this request's store and the server root."""
        from jupyter_mlops.governance.notebook_versions import NotebookVersions

        root = self.mlops.root_dir
        return NotebookVersions(self.tracking_location(), cwd=root, root=root)

    @property
    def user_name(self) -> str:
        """Who acts, as jupyter_server's identity provider names them for people.

        ``name`` (a JupyterHub user's name; "Anonymous Io" under token login) before
        ``username``, which token login makes a random hex string nobody can read.
        """
        user = self.current_user
        for attribute in ("name", "display_name", "username"):
            value = getattr(user, attribute, None)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return "anonymous"

    def json_body(self, required: tuple[str, ...] = ()) -> dict[str, Any]:
        """The request body as a JSON object with string ``required`` fields, else a 400."""
        if len(self.request.body) > MAX_BODY_BYTES:
            raise UsageError(f"the request body is over {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise UsageError("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise UsageError("the request body must be a JSON object")
        for name in required:
            if not isinstance(body.get(name), str) or not body[name].strip():
                raise UsageError(f"the request body needs a non-empty string {name!r}")
        return body

    def query(self, name: str, required: bool = True) -> str | None:
        value = self.get_query_argument(name, None)
        if required and not (value or "").strip():
            raise UsageError(f"the query needs the parameter {name!r}")
        return value

    def flag(self, name: str) -> bool:
        return (self.get_query_argument(name, "") or "").lower() in ("1", "true", "yes")

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Our typed errors are answers, not crashes: ``write_error`` logs them in one line.

        Tornado would log each with its traceback, which names files and values a log
        reader has no business seeing; anything else keeps tornado's full report.
        """
        if isinstance(value, MlopsError):
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Our typed errors become ``{"code", "message"}`` with their own status; no traceback."""
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if isinstance(error, MlopsError):
            self.set_status(http_status_for(error))
            self.set_header("Content-Type", "application/json")
            body: dict[str, Any] = {"code": error.code, "message": error.message}
            if error.hint:
                body["hint"] = error.hint
            self.log.warning("jupyter-mlops %s: %s", error.code, error.message)
            self.finish(json.dumps(body))
            return
        super().write_error(status_code, **kwargs)
