"""Reviews over REST: list and open, read one, comment on a cell, decide.

The acting user is jupyter_server's current user; the record is the same one
``jupyter mlops review`` writes (see :mod:`jupyter_mlops.governance.reviews`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized

from jupyter_mlops.governance.reviews import ReviewService
from jupyter_mlops.server.base import AUTH_RESOURCE_PREFIX, MlopsHandler


class _ReviewHandler(MlopsHandler):
    auth_resource = f"{AUTH_RESOURCE_PREFIX}:reviews"

    def service(self) -> ReviewService:
        return ReviewService(self.notebook_versions())


class ReviewsHandler(_ReviewHandler):
    """``GET`` every review, newest first; ``POST {candidate, base?}`` opens one (201)."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        reviews = await asyncio.to_thread(self.service().list)
        self.write_json({"reviews": [r.to_json() for r in reviews]})

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body(required=("candidate",))
        base: Any = body.get("base")
        base = base.strip() if isinstance(base, str) and base.strip() else None
        view = await asyncio.to_thread(self.service().open, body["candidate"], base, self.user_name)
        self.write_json(view.as_json(), status=201)


class ReviewHandler(_ReviewHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, review_id: str) -> None:
        view = await asyncio.to_thread(self.service().get, review_id)
        self.write_json(view.as_json())


class ReviewCommentsHandler(_ReviewHandler):
    """``POST {cell_id, text}``: a comment anchored to a cell of the candidate."""

    @tornado.web.authenticated
    @authorized
    async def post(self, review_id: str) -> None:
        body = self.json_body(required=("cell_id", "text"))
        view, _comment = await asyncio.to_thread(
            self.service().comment, review_id, body["cell_id"], body["text"], self.user_name
        )
        self.write_json(view.as_json())


class ReviewDecisionHandler(_ReviewHandler):
    """``POST {decision: approve|request_changes, message?}``."""

    @tornado.web.authenticated
    @authorized
    async def post(self, review_id: str) -> None:
        body = self.json_body(required=("decision",))
        message = body.get("message")
        view = await asyncio.to_thread(
            self.service().decide,
            review_id,
            body["decision"],
            self.user_name,
            message if isinstance(message, str) else None,
        )
        self.write_json(view.as_json())
