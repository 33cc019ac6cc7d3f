"""The jupyter_server extension: configuration, and the objects the handlers share.

Built once at server start; handlers find it in ``web_app.settings`` (through
``ExtensionHandlerMixin``) so that no handler builds its own store or resolver.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from jupyter_server.extension.application import ExtensionApp
from traitlets import Unicode

from jupyter_mlops._version import __version__
from jupyter_mlops.core.settings import TrackingLocation, resolve_tracking_location

if TYPE_CHECKING:
    from jupyter_mlops.execution.batch_jobs import BatchJobs
    from jupyter_mlops.governance.notebook_versions import NotebookVersions
    from jupyter_mlops.tracking.run_index import RunIndex

_INDEX_LOCK = threading.Lock()
#: Read indexes kept at once (each holds every run of its store in memory).
MAX_RUN_INDEXES = 4


class MlopsExtensionApp(ExtensionApp):
    """jupyter-mlops inside jupyter_server (JupyterLab, Notebook 7, ``jupyter server``)."""

    name = "jupyter_mlops"
    version = __version__
    description = "REST API for the jupyter-mlops JupyterLab extension"
    load_other_extensions = True

    tracking_uri = Unicode(
        "",
        config=True,
        help="Tracking location for this server; empty means the usual resolution "
        "(MLFLOW_TRACKING_URI, pyproject.toml, then .mlops/ in the project root).",
    )

    _batch_jobs: BatchJobs | None = None
    _run_indexes: dict[str, RunIndex] | None = None

    @property
    def root_dir(self) -> Path:
        """The folder the server serves; nothing we open may leave it."""
        return Path(self.serverapp.root_dir).resolve()  # type: ignore[union-attr]

    def tracking_location(self) -> TrackingLocation:
        """Resolved on each call so that an edited pyproject.toml shows without a restart."""
        return resolve_tracking_location(self.tracking_uri or None, cwd=self.root_dir)

    def notebook_versions(self) -> NotebookVersions:
        """References resolved against this server's store and root, never outside it."""
        from jupyter_mlops.governance.notebook_versions import NotebookVersions

        return NotebookVersions(self.tracking_location(), cwd=self.root_dir, root=self.root_dir)

    def run_index(self, location: TrackingLocation) -> RunIndex:
        """The read index of the runs at ``location``, one per store for the server's life."""
        from jupyter_mlops.tracking.mlflow_store import MlflowRunStore
        from jupyter_mlops.tracking.run_index import RunIndex

        with _INDEX_LOCK:
            if self._run_indexes is None:
                self._run_indexes = {}
            index = self._run_indexes.pop(location.uri, None)
            if index is None:
                index = RunIndex(lambda: MlflowRunStore(location))
                # Locations chosen in JupyterLab's settings come and go: keep the recent few.
                while len(self._run_indexes) >= MAX_RUN_INDEXES:
                    self._run_indexes.pop(next(iter(self._run_indexes)))
            self._run_indexes[location.uri] = index  # most recently used last
            return index

    @property
    def batch_jobs(self) -> BatchJobs:
        """The ``jupyter mlops batch`` processes started from this server."""
        if self._batch_jobs is None:
            from jupyter_mlops.execution.batch_jobs import BatchJobs

            self._batch_jobs = BatchJobs(self.root_dir)
        return self._batch_jobs

    async def stop_extension(self) -> None:
        """No batch (and none of its kernels) outlives the server."""
        if self._batch_jobs is not None:
            import asyncio

            await asyncio.to_thread(self._batch_jobs.close)

    def initialize_handlers(self) -> None:
        from jupyter_mlops.server.routes import route_table

        self.handlers.extend(route_table())

    def initialize_settings(self) -> None:
        self.log.info("jupyter-mlops %s: tracking at %s", __version__, self.tracking_location().uri)
