"""Run test notebooks in real kernels (nbclient) and read back what they tracked.

``running_kernel`` keeps one kernel open and runs cells one at a time, so a test can act
between cells (stop the tracking server, start it again); ``execute`` runs a whole notebook.
The kernel's environment never inherits a tracking location from the caller: a test passes
``MLFLOW_TRACKING_URI`` and friends explicitly.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
from mlflow.tracking import MlflowClient
from nbclient import NotebookClient

from conftest import TESTS, clean_env


def copy_notebook(name: str, project: Path) -> Path:
    target = project / name
    shutil.copy(TESTS / "notebooks" / name, target)
    return target


class KernelRun:
    """A notebook open in a live kernel; ``run(i)`` executes cell ``i`` and returns it."""

    def __init__(self, client: NotebookClient, nb: Any) -> None:
        self.client = client
        self.nb = nb

    def run(self, index: int) -> Any:
        self.client.execute_cell(self.nb.cells[index], index)
        return self.nb.cells[index]


@contextmanager
def running_kernel(notebook: Path, **env: str) -> Iterator[KernelRun]:
    """A fresh kernel for ``notebook`` with ``env`` added; the notebook is saved at the end."""
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(notebook.parent)}},
    )
    with client.setup_kernel(env=clean_env(JUPYTER_MLOPS_NOTEBOOK=str(notebook), **env)):
        yield KernelRun(client, nb)
    nbformat.write(nb, notebook)


def execute(notebook: Path, **env: str) -> Any:
    """Run every cell of ``notebook`` in a fresh kernel; returns the executed notebook."""
    with running_kernel(notebook, **env) as kernel:
        for index in range(len(kernel.nb.cells)):
            kernel.run(index)
    return kernel.nb


def stream_text(cell: Any, name: str) -> str:
    """What the cell wrote to ``stdout`` or ``stderr``."""
    return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == name)


def result_text(cell: Any) -> str:
    """The cell's last-expression value (``execute_result``), as plain text."""
    return "".join(
        str(o["data"].get("text/plain", ""))
        for o in cell.outputs
        if o.output_type == "execute_result"
    )


def only_run(client: MlflowClient, experiment: str) -> Any:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment} was not created"
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


def artifact_text(client: MlflowClient, run_id: str, path: str, tmp: Path) -> str:
    tmp.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, path, str(tmp))).read_text()


def cell_records(client: MlflowClient, run_id: str, tmp: Path) -> list[dict[str, Any]]:
    text = artifact_text(client, run_id, "cells.jsonl", tmp)
    return [json.loads(line) for line in text.splitlines()]


def metric_history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
