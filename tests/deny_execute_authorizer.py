"""A jupyter_server Authorizer that allows everything but ``execute`` (for the batch test)."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth import Authorizer


class DenyExecute(Authorizer):
    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return action != "execute"
