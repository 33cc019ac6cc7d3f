"""``jupyter mlops reproduce``: re-execute a run's snapshot and judge metrics and outputs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_run import run_in_process, store

from jupyter_mlops.core.settings import resolve_tracking_location
from jupyter_mlops.execution.reproduce import reproduce

from conftest import VENV_BIN, clean_env


@pytest.mark.parametrize(
    ("notebook", "params", "verdict"),
    [
        ("run_params.ipynb", {"lr": 0.25}, "reproduced"),
        ("reproduce_volatile.ipynb", {"seed": 3}, "reproduced after normalization"),
        ("reproduce_random.ipynb", {}, "differs"),
    ],
)
def test_verdicts(project: Path, notebook: str, params: dict, verdict: str) -> None:
    original = run_in_process(project, notebook, params=params)
    assert original.ok, original.summary()
    # The notebook on disk changes after the run: reproduce must use the run's snapshot.
    (project / notebook).write_text("{}")
    result = reproduce(original.run_id, resolve_tracking_location(), tolerance=1e-9)
    assert result.verdict.kind == verdict, result.verdict.explain()
    client = store(project)
    new_run = client.get_run(result.outcome.run_id)
    assert new_run.data.tags["mlops.reproduces"] == original.run_id
    assert new_run.data.params == client.get_run(original.run_id).data.params
    tags = client.get_run(original.run_id).data.tags
    assert tags["mlops.reproduced"].startswith(verdict)
    assert tags["mlops.reproduced_by"] == result.outcome.run_id
    if verdict == "differs":
        assert "metric noise" in result.verdict.explain()
        assert "cell 2 `import random`: output 'noise" in result.verdict.explain()


def test_tolerance_accepts_small_metric_differences(project: Path) -> None:
    original = run_in_process(project, "reproduce_random.ipynb")
    result = reproduce(original.run_id, resolve_tracking_location(), tolerance=1.0)
    assert result.verdict.metric_differences == []


def test_cli_exit_codes(project: Path) -> None:
    unknown = subprocess.run(
        [str(VENV_BIN / "jupyter-mlops"), "reproduce", "0" * 32],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unknown.returncode == 2
    assert len(unknown.stderr.strip().splitlines()) == 1 and "0" * 32 in unknown.stderr
    original = run_in_process(project, "reproduce_random.ipynb")
    differs = subprocess.run(
        [str(VENV_BIN / "jupyter-mlops"), "reproduce", original.run_id],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert differs.returncode == 1, differs.stderr
    assert "differs: metric noise" in differs.stderr
