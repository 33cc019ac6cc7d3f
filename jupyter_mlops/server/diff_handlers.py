"""``GET /jupyter-mlops/api/diff?a=REF&b=REF``: the base notebook and nbdime's diff.

The answer has the shape of nbdime's own ``POST /nbdime/api/diff`` (``base``, ``diff``)
plus the labels of both sides, so the labextension hands it to nbdime's widgets as is.
References are read relative to the server's root and may not leave it; URLs are refused.
"""

from __future__ import annotations

import asyncio

import tornado.web
from jupyter_server.auth.decorator import authorized

from jupyter_mlops.governance.diffs import DiffOptions, diff_refs
from jupyter_mlops.server.base import AUTH_RESOURCE_PREFIX, MlopsHandler


class DiffHandler(MlopsHandler):
    auth_resource = f"{AUTH_RESOURCE_PREFIX}:diff"

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        a, b = self.query("a"), self.query("b")
        assert a is not None and b is not None
        options = DiffOptions(
            ignore_outputs=self.flag("ignore_outputs"),
            ignore_metadata=self.flag("ignore_metadata"),
        )
        versions = self.notebook_versions()
        result = await asyncio.to_thread(diff_refs, versions, a, b, options)
        self.write_json(result.as_json())
