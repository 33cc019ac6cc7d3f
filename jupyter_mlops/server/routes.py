"""The route table under ``/jupyter-mlops/api/`` and the status handler.

Every handler is authenticated (``@tornado.web.authenticated``) and authorized
(``@authorized`` against a ``jupyter_mlops:<resource>`` name); a test walks
``route_table()`` and fails if one is not.
"""

from __future__ import annotations

import asyncio
import json

import tornado.web
from jupyter_server.auth.decorator import authorized

from jupyter_mlops.core.status import collect_status
from jupyter_mlops.server.base import API_PREFIX, AUTH_RESOURCE_PREFIX, MlopsHandler

__all__ = ["API_PREFIX", "AUTH_RESOURCE_PREFIX", "MlopsHandler", "route_table"]


class StatusHandler(MlopsHandler):
    """``GET /jupyter-mlops/api/status``: version, tracking location, store health."""

    auth_resource = f"{AUTH_RESOURCE_PREFIX}:status"

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        location = self.tracking_location()
        status = await asyncio.to_thread(collect_status, location)
        self.finish(json.dumps(status))


def route_table() -> list[tuple[str, type[MlopsHandler]]]:
    """All our routes; the extension app prefixes the server's base URL."""
    from jupyter_mlops.server.artifact_handlers import ArtifactHandler
    from jupyter_mlops.server.batch_handlers import BatchesHandler, BatchHandler
    from jupyter_mlops.server.diff_handlers import DiffHandler
    from jupyter_mlops.server.models_handlers import (
        ModelAliasesHandler,
        ModelLineageHandler,
        ModelsHandler,
        ModelVersionsHandler,
    )
    from jupyter_mlops.server.review_handlers import (
        ReviewCommentsHandler,
        ReviewDecisionHandler,
        ReviewHandler,
        ReviewsHandler,
    )
    from jupyter_mlops.server.runs_handlers import (
        ExperimentsHandler,
        MetricHistoryHandler,
        RunHandler,
        RunsHandler,
    )

    review = rf"{API_PREFIX}/reviews/(?P<review_id>rv-[0-9a-f]{{8}})"
    run = rf"{API_PREFIX}/runs/(?P<run_id>[0-9a-zA-Z_-]{{1,64}})"
    model = rf"{API_PREFIX}/models/(?P<model_name>[^/]{{1,256}})"
    model_version = rf"{model}/versions/(?P<model_version>[0-9]{{1,10}})"
    return [
        (rf"{API_PREFIX}/status", StatusHandler),
        (rf"{API_PREFIX}/diff", DiffHandler),
        (rf"{API_PREFIX}/reviews", ReviewsHandler),
        (review, ReviewHandler),
        (rf"{review}/comments", ReviewCommentsHandler),
        (rf"{review}/decision", ReviewDecisionHandler),
        (rf"{API_PREFIX}/experiments", ExperimentsHandler),
        (rf"{API_PREFIX}/runs", RunsHandler),
        (run, RunHandler),
        (rf"{run}/metrics/(?P<key>.+)", MetricHistoryHandler),
        (rf"{run}/artifacts", ArtifactHandler),
        (rf"{API_PREFIX}/batches", BatchesHandler),
        (rf"{API_PREFIX}/batches/(?P<job_id>bj-[0-9a-f]{{8}})", BatchHandler),
        (rf"{API_PREFIX}/models", ModelsHandler),
        (rf"{model}/versions", ModelVersionsHandler),
        (rf"{model_version}/lineage", ModelLineageHandler),
        (rf"{model_version}/aliases", ModelAliasesHandler),
    ]
