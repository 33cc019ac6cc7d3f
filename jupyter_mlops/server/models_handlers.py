"""The Model Registry over REST: models, their versions, a version's lineage, promotion.

Each handler parses its path and body into plain values and calls one function of
:mod:`jupyter_mlops.tracking.model_queries` in a worker thread (MLflow's client blocks).
A promotion goes through the same gate as ``jupyter mlops promote``, with the policy of
the served project's ``pyproject.toml`` read on each request; a refusal is our
``PolicyError``, which ``base.py`` turns into a 409 naming what is missing.
"""

from __future__ import annotations

import asyncio

import tornado.web
from jupyter_server.auth.decorator import authorized

from jupyter_mlops.core.errors import UsageError
from jupyter_mlops.core.lineage import load_policy
from jupyter_mlops.server.base import AUTH_RESOURCE_PREFIX, MlopsHandler
from jupyter_mlops.tracking.mlflow_store import MlflowRunStore
from jupyter_mlops.tracking.model_queries import (
    list_models,
    model_versions,
    promote_version,
    version_lineage,
)

MAX_NOTE_LENGTH = 2000


class _ModelsHandler(MlopsHandler):
    auth_resource = f"{AUTH_RESOURCE_PREFIX}:models"

    def store(self) -> MlflowRunStore:
        """The store of this server's tracking location (resolved on each request)."""
        return MlflowRunStore(self.tracking_location())


class ModelsHandler(_ModelsHandler):
    """``GET``: ``{models: [{name, aliases, latest_version, ...}]}`` by name."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        if self.tracking_location().store_missing():
            self.write_json({"models": []})  # nothing tracked yet: do not create a store
            return
        models = await asyncio.to_thread(lambda: list_models(self.store()))
        self.write_json({"models": models})


class ModelVersionsHandler(_ModelsHandler):
    """``GET``: ``{name, aliases, versions: [...]}``, newest version first."""

    @tornado.web.authenticated
    @authorized
    async def get(self, model_name: str) -> None:
        found = await asyncio.to_thread(lambda: model_versions(self.store(), model_name))
        self.write_json(found)


class ModelLineageHandler(_ModelsHandler):
    """``GET``: the lineage of one version, as ``jupyter mlops lineage --json`` prints it."""

    @tornado.web.authenticated
    @authorized
    async def get(self, model_name: str, model_version: str) -> None:
        lineage = await asyncio.to_thread(
            lambda: version_lineage(self.store(), model_name, model_version)
        )
        self.write_json(lineage)


class ModelAliasesHandler(_ModelsHandler):
    """``POST {alias, note?}``: promote the version under the project's policy."""

    @tornado.web.authenticated
    @authorized
    async def post(self, model_name: str, model_version: str) -> None:
        body = self.json_body(required=("alias",))
        note = body.get("note")
        if note is not None and not isinstance(note, str):
            raise UsageError("'note' must be a string")
        if note and len(note) > MAX_NOTE_LENGTH:
            raise UsageError(f"'note' is over {MAX_NOTE_LENGTH} characters")
        location = self.tracking_location()
        policy = load_policy(location.project_root)
        user = self.user_name
        promotion = await asyncio.to_thread(
            lambda: promote_version(
                self.store(),
                model_name,
                model_version,
                body["alias"],
                policy=policy,
                note=note,
                by=user,
            )
        )
        self.write_json(promotion)
