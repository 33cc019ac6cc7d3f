"""The run browser over REST: experiments, pages of runs, one run, a metric's history.

Each handler parses its query into plain values and calls one function of
:mod:`jupyter_mlops.tracking.run_queries` in a worker thread (MLflow's client blocks);
a filter MLflow refuses, an unknown run or metric come back as JSON 4xx from ``base.py``.
"""

from __future__ import annotations

import asyncio

import tornado.web
from jupyter_server.auth.decorator import authorized

from jupyter_mlops.server.base import AUTH_RESOURCE_PREFIX, MlopsHandler
from jupyter_mlops.tracking.mlflow_store import MlflowRunStore
from jupyter_mlops.tracking.run_queries import (
    RunQuery,
    list_experiments,
    metric_history,
    parse_filter,
    parse_order_by,
    parse_page_size,
    run_details,
    search_runs,
)


class _RunsHandler(MlopsHandler):
    auth_resource = f"{AUTH_RESOURCE_PREFIX}:runs"

    def store(self) -> MlflowRunStore:
        """The store of this server's tracking location (resolved on each request)."""
        return MlflowRunStore(self.tracking_location())


class ExperimentsHandler(_RunsHandler):
    """``GET``: ``{experiments: [{id, name}]}``, most recently created first."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        experiments = await asyncio.to_thread(lambda: list_experiments(self.store()))
        self.write_json({"experiments": experiments})


class RunsHandler(_RunsHandler):
    """``GET ?experiment=&filter=&order_by=&page_token=&max_results=``: one page of runs.

    Pages come from the server's read index of the store (``tracking/run_index.py``) once
    it has loaded, so any column sorts as fast as start time does.
    """

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        experiments = [e.strip() for e in self.get_query_arguments("experiment") if e.strip()]
        query = RunQuery(
            experiment_ids=tuple(experiments),
            filter_string=parse_filter(self.query("filter", required=False)),
            order_by=parse_order_by(self.query("order_by", required=False)),
            page_token=(self.query("page_token", required=False) or "").strip() or None,
            max_results=parse_page_size(self.query("max_results", required=False)),
        )
        location = self.tracking_location()
        index = self.mlops.run_index(location)
        page = await asyncio.to_thread(lambda: search_runs(index.store(), query, index))
        # Whether the page came from the read index or from MLflow's search (still loading).
        self.set_header("X-MLOps-Run-Index", "ready" if index.ready else "loading")
        self.write_json(page)


class RunHandler(_RunsHandler):
    """``GET``: the run, its top-level ``artifacts`` and its ``cells`` records."""

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        details = await asyncio.to_thread(lambda: run_details(self.store(), run_id))
        self.write_json(details)


class MetricHistoryHandler(_RunsHandler):
    """``GET``: ``{key, history: [{step, value, timestamp}]}``."""

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str, key: str) -> None:
        history = await asyncio.to_thread(lambda: metric_history(self.store(), run_id, key))
        self.write_json(history)
