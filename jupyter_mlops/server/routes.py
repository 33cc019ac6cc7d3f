"""REST handlers under ``/jupyter-mlops/api/``, and the one place errors become JSON.

Every handler is authenticated (``@tornado.web.authenticated``) and authorized
(``@authorized`` against a ``jupyter_mlops:<resource>`` name); a test walks
``route_table()`` and fails if one is not.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin

from jupyter_mlops.core.errors import MlopsError, http_status_for
from jupyter_mlops.core.status import collect_status
from jupyter_mlops.server.extension import MlopsExtensionApp

API_PREFIX = "/jupyter-mlops/api"
AUTH_RESOURCE_PREFIX = "jupyter_mlops"


class MlopsHandler(ExtensionHandlerMixin, APIHandler):
    """Base of our handlers: reaches the extension app and maps our errors to JSON."""

    auth_resource = f"{AUTH_RESOURCE_PREFIX}:api"

    @property
    def mlops(self) -> MlopsExtensionApp:
        return cast(MlopsExtensionApp, self.extensionapp)

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


class StatusHandler(MlopsHandler):
    """``GET /jupyter-mlops/api/status``: version, tracking location, store health."""

    auth_resource = f"{AUTH_RESOURCE_PREFIX}:status"

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        location = self.mlops.tracking_location()
        status = await asyncio.to_thread(collect_status, location)
        self.finish(json.dumps(status))


def route_table() -> list[tuple[str, type[MlopsHandler]]]:
    """All our routes; the extension app prefixes the server's base URL."""
    return [
        (rf"{API_PREFIX}/status", StatusHandler),
    ]
