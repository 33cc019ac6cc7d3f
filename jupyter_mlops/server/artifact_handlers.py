"""One artifact of a run over REST: ``GET /runs/<run_id>/artifacts?path=&download=``.

The path is checked by :mod:`jupyter_mlops.core.artifacts` (relative, no ``..``, no
scheme...); the file must be listed among the run's artifacts before it is read, so a
path MLflow would resolve elsewhere is never downloaded. An artifact is untrusted content
on the Jupyter server's origin: it goes out with ``nosniff`` and a sandboxing CSP, and
HTML, SVG and XML are always attachments.
"""

from __future__ import annotations

import asyncio

import tornado.web
from jupyter_server.auth.decorator import authorized

from jupyter_mlops.core.artifacts import MAX_ARTIFACT_BYTES, artifact_response, check_artifact_path
from jupyter_mlops.core.errors import NotFoundError, TooLargeError, UsageError
from jupyter_mlops.core.settings import TrackingLocation
from jupyter_mlops.server.base import AUTH_RESOURCE_PREFIX, MlopsHandler


def read_run_artifact(
    location: TrackingLocation, run_id: str, path: str, limit: int = MAX_ARTIFACT_BYTES
) -> bytes:
    """The bytes of the file ``path`` among the artifacts of run ``run_id``.

    ``NotFoundError`` for an unknown run or a path the run does not list, ``UsageError``
    for a folder, ``TooLargeError`` past ``limit`` bytes (checked on the listed size
    before anything is downloaded, and again on what was read).
    """
    from jupyter_mlops.tracking.mlflow_store import MlflowRunStore

    store = MlflowRunStore(location)
    record = store.get_run(run_id)
    folder = path.rpartition("/")[0] or None
    try:
        infos = store.artifact_infos(run_id, folder, artifact_uri=record.artifact_uri)
    except NotFoundError:
        infos = []
    info = next((i for i in infos if i.path == path), None)
    if info is None:
        raise NotFoundError(f"run {run_id} has no artifact {path}")
    if info.is_dir:
        raise UsageError(f"{path} is a folder of artifacts; name a file in it")
    too_large = f"artifact {path} is over {limit // (1024 * 1024)} MB"
    if info.file_size is not None and info.file_size > limit:
        raise TooLargeError(too_large, hint="download it with MLflow's client instead")
    data = store.read_artifact(run_id, path)
    if len(data) > limit:
        raise TooLargeError(too_large, hint="download it with MLflow's client instead")
    return data


class ArtifactHandler(MlopsHandler):
    """``GET ?path=&download=1``: the artifact's bytes, typed and sandboxed."""

    auth_resource = f"{AUTH_RESOURCE_PREFIX}:runs"

    def raw_query(self, name: str) -> str | None:
        """The query parameter as sent: tornado's own getters blank control characters
        and strip spaces, which would turn a NUL-smuggling path into another path."""
        values = self.request.query_arguments.get(name)
        if not values:
            return None
        try:
            return values[-1].decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"the query parameter {name!r} is not UTF-8") from None

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        path = check_artifact_path(self.raw_query("path"))
        response = artifact_response(path, download=self.flag("download"))
        location = self.tracking_location()
        data = await asyncio.to_thread(read_run_artifact, location, run_id, path)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", f"{self.content_security_policy}; sandbox")
        self.set_header("Content-Disposition", response.disposition)
        self.set_header("Cache-Control", "no-store")
        self.finish(data, set_content_type=response.content_type)
