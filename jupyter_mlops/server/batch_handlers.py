"""Batches from JupyterLab: start ``jupyter mlops batch`` on the server, follow it, stop it.

Starting one executes notebooks, so ``POST`` needs jupyter_server's ``execute`` permission
on ``jupyter_mlops:batches`` (reading needs ``read``, stopping ``write``). The notebook
must be inside the served root, like every path a request names. A batch tracks into the
request's location: the JupyterLab ``trackingUri`` setting (``X-MLOps-Tracking-URI``) when
one is sent.
"""

from __future__ import annotations

import tornado.web
from jupyter_server.auth.decorator import authorized

from jupyter_mlops.core.errors import NotFoundError
from jupyter_mlops.execution.batch_jobs import parse_spec
from jupyter_mlops.server.base import AUTH_RESOURCE_PREFIX, MlopsHandler

LOG_TAIL_LINES = 40


class _BatchHandler(MlopsHandler):
    auth_resource = f"{AUTH_RESOURCE_PREFIX}:batches"


class BatchesHandler(_BatchHandler):
    """``GET`` the jobs this server started; ``POST {notebook, grid, workers?}`` starts one."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json({"batches": [job.as_json() for job in self.mlops.batch_jobs.all()]})

    @tornado.web.authenticated
    @authorized("execute")
    async def post(self) -> None:
        spec = parse_spec(self.json_body())
        path = self.notebook_versions().local_path(spec.notebook)
        if not path.is_file():
            raise NotFoundError(f"notebook {spec.notebook} does not exist")
        # The batch tracks where this request reads: the JupyterLab setting, else the
        # server's configured location (the child resolves the rest as the server does).
        tracking_uri = self.tracking_override() or self.mlops.tracking_uri or None
        job = self.mlops.batch_jobs.start(spec, self.user_name, tracking_uri=tracking_uri)
        self.write_json(job.as_json(), status=202)


class BatchHandler(_BatchHandler):
    """``GET`` one job with the tail of its log; ``DELETE`` stops it (the batch stays resumable)."""

    @tornado.web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        self.write_json(self.mlops.batch_jobs.get(job_id).as_json(log_tail=LOG_TAIL_LINES))

    @tornado.web.authenticated
    @authorized
    async def delete(self, job_id: str) -> None:
        self.write_json(self.mlops.batch_jobs.stop(job_id).as_json(log_tail=LOG_TAIL_LINES))
