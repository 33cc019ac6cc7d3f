"""jupyter-mlops: notebook governance for data-science teams, on top of MLflow.

This module is imported by ``%load_ext jupyter_mlops`` and by Jupyter's extension
discovery, so it imports nothing heavy: every entry point below imports its adapter
lazily, inside the function.
"""

from __future__ import annotations

from typing import Any

from jupyter_mlops._version import __version__

__all__ = [
    "__version__",
    "current_run_id",
    "end_run",
    "flush",
    "load_ipython_extension",
    "log_artifact",
    "log_metrics",
    "log_model",
    "log_params",
    "register_model",
    "set_tags",
    "start_run",
    "unload_ipython_extension",
]

_API = {
    "start_run",
    "log_params",
    "log_metrics",
    "log_artifact",
    "set_tags",
    "end_run",
    "flush",
    "current_run_id",
    "log_model",
    "register_model",
}


def __getattr__(name: str) -> Any:
    """The Python API (``jupyter_mlops.start_run`` ...), imported on first use."""
    if name in _API:
        from jupyter_mlops import api

        return getattr(api, name)
    raise AttributeError(f"module 'jupyter_mlops' has no attribute {name!r}")


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
