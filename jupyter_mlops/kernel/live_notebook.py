"""The notebook a tracked cell belongs to, as fresh as the kernel can know it.

In JupyterLab the labextension sends the live notebook model over a comm
(``jupyter_mlops.notebook``) just before a tracked cell is executed, so a snapshot
includes edits that were never saved. Without that frontend (papermill, nbclient,
another client) the snapshot is the file being executed: ``JUPYTER_MLOPS_NOTEBOOK``
(set by our runner) or ``JPY_SESSION_NAME`` (set by jupyter_server).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COMM_TARGET = "jupyter_mlops.notebook"


class LiveNotebook:
    """Latest notebook content: the frontend's model when it sent one, else the file."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self._model: dict[str, Any] | None = None
        self._cell_id: str | None = None
        self._file_cache: tuple[tuple[int, int], dict[str, Any]] | None = None
        self._comm: Any = None

    def open_comm(self) -> None:
        """Ask the frontend for live models; harmless where no frontend handles the target."""
        try:
            from comm import create_comm

            self._comm = create_comm(target_name=COMM_TARGET, data={"protocol": 1})
            self._comm.on_msg(self._on_message)
            self._comm.on_close(self._on_close)
        except Exception:  # no comm support in this shell (plain IPython): files only
            self._comm = None

    def _on_close(self, _message: dict[str, Any]) -> None:
        """No frontend can refresh the model any more: forget it rather than let it go stale."""
        self._model = None
        self._cell_id = None
        self._comm = None

    def _on_message(self, message: dict[str, Any]) -> None:
        data = message.get("content", {}).get("data", {})
        notebook = data.get("notebook")
        if isinstance(notebook, dict) and isinstance(notebook.get("cells"), list):
            self._model = notebook
            cell_id = data.get("cell_id")
            self._cell_id = cell_id if isinstance(cell_id, str) else None

    def current_cell_id(self) -> str | None:
        return self._cell_id

    def latest(self) -> dict[str, Any] | None:
        """The live model if the frontend sent one, else the file on disk (cached by mtime)."""
        if self._model is not None:
            return self._model
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
            key = (stat.st_mtime_ns, stat.st_size)
            if self._file_cache is not None and self._file_cache[0] == key:
                return self._file_cache[1]
            notebook = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
            return None
        self._file_cache = (key, notebook)
        return notebook
