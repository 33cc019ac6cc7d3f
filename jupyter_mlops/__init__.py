"""jupyter-mlops: notebook governance for data-science teams, on top of MLflow.

This module is imported by ``%load_ext jupyter_mlops`` and by Jupyter's extension
discovery, so it imports nothing heavy: every entry point below imports its adapter
lazily, inside the function.
"""

from __future__ import annotations

from typing import Any

from jupyter_mlops._version import __version__

__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_mlops``: register the magics in this kernel."""
    from jupyter_mlops.kernel.magics import register

    register(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext jupyter_mlops``: flush what is queued and stop tracking."""
    from jupyter_mlops.kernel.magics import unregister

    unregister(ipython)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from jupyter_mlops.server.extension import MlopsExtensionApp

    return [{"module": "jupyter_mlops", "app": MlopsExtensionApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyter-mlops"}]
