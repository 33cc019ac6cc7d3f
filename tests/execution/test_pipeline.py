"""``jupyter mlops pipeline``: a two-step DAG with caching, staleness, --force and failures."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from test_run import store

from conftest import copy_notebook, run_cli

PIPELINE = """\
name: numbers
steps:
  prepare:
    notebook: pipeline_prepare.ipynb
    params: {minimum: 2}
    inputs: [data/raw.csv]
    outputs: [data/clean.csv]
  train:
    notebook: pipeline_train.ipynb
    needs: [prepare]
    inputs: [data/clean.csv]
    outputs: [models/model.txt]
"""


def cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(project, "pipeline", *args)


def step_runs(client: MlflowClient, step: str, pipeline: str = "numbers") -> list[Any]:
    experiment = client.get_experiment_by_name(pipeline)
    assert experiment is not None
    return list(
        client.search_runs(
            [experiment.experiment_id],
            f"tags.`mlops.pipeline.step` = '{step}' and tags.`mlops.pipeline` = '{pipeline}'",
        )
    )


def outcomes(stdout: str) -> dict[str, str]:
    """``step NAME: OUTCOME ...`` lines into ``{NAME: OUTCOME}``."""
    found = {}
    for line in stdout.splitlines():
        if line.startswith("step "):
            name, _, rest = line[len("step ") :].partition(": ")
            found[name] = rest.split()[0] if rest.split()[0] != "would" else "would run"
    return found


@pytest.fixture
def pipeline_project(project: Path) -> Path:
    copy_notebook("pipeline_prepare.ipynb", project)
    copy_notebook("pipeline_train.ipynb", project)
    (project / "data").mkdir()
    (project / "data" / "raw.csv").write_text("1\n2\n3\n4\n")
    (project / "mlops.yaml").write_text(PIPELINE)
    return project


def test_show_and_status_before_any_run(pipeline_project: Path) -> None:
    shown = cli(pipeline_project, "show")
    assert shown.returncode == 0, shown.stderr
    assert "train <- prepare" in shown.stdout and "data/clean.csv" in shown.stdout
    status = cli(pipeline_project, "status")
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("never ran") == 2
    dry = cli(pipeline_project, "run", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert outcomes(dry.stdout) == {"prepare": "would run", "train": "would run"}
    assert not (pipeline_project / "data" / "clean.csv").exists()


def test_cache_staleness_force_and_reruns(pipeline_project: Path) -> None:
    first = cli(pipeline_project, "run")
    assert first.returncode == 0, first.stderr
    assert outcomes(first.stdout) == {"prepare": "ran", "train": "ran"}
    assert (pipeline_project / "models" / "model.txt").read_text() == "3.0"
    client = store(pipeline_project)
    train_run = step_runs(client, "train")[0]
    assert train_run.data.metrics["mean"] == 3.0
    parent = client.get_run(train_run.data.tags["mlflow.parentRunId"])
    assert parent.data.tags["mlops.kind"] == "pipeline" and parent.info.status == "FINISHED"

    status = cli(pipeline_project, "status")
    assert status.stdout.count("fresh") == 2, status.stdout
    cached = cli(pipeline_project, "run")
    assert outcomes(cached.stdout) == {"prepare": "cached", "train": "cached"}
    assert len(step_runs(client, "prepare")) == 1 and len(step_runs(client, "train")) == 1

    (pipeline_project / "data" / "raw.csv").write_text("1\n2\n3\n4\n5\n")
    stale = cli(pipeline_project, "status")
    assert "input data/raw.csv changed" in stale.stdout
    assert "upstream step prepare is stale" in stale.stdout
    rerun = cli(pipeline_project, "run")
    assert outcomes(rerun.stdout) == {"prepare": "ran", "train": "ran"}
    assert (pipeline_project / "models" / "model.txt").read_text() == "3.5"

    forced = cli(pipeline_project, "run", "--force", "train")
    assert outcomes(forced.stdout) == {"prepare": "cached", "train": "ran"}
    assert len(step_runs(client, "prepare")) == 2 and len(step_runs(client, "train")) == 3

    (pipeline_project / "models" / "model.txt").unlink()
    assert "output models/model.txt is missing" in cli(pipeline_project, "status").stdout


def test_failing_step_stops_its_dependants_and_is_named(pipeline_project: Path) -> None:
    (pipeline_project / "broken.yaml").write_text(
        PIPELINE.replace("name: numbers", "name: broken").replace(
            "    needs: [prepare]\n", "    needs: [prepare]\n    params: {explode: true}\n"
        )
        + "  report:\n    notebook: pipeline_prepare.ipynb\n    needs: [train]\n"
    )
    result = cli(pipeline_project, "run", "broken.yaml")
    assert result.returncode == 1
    assert "step train failed" in result.stderr and "training exploded" in result.stderr
    assert outcomes(result.stdout + result.stderr) == {
        "prepare": "ran",
        "train": "failed",
        "report": "blocked",
    }
    client = store(pipeline_project)
    assert step_runs(client, "train", "broken")[0].info.status == "FAILED"
    assert step_runs(client, "report", "broken") == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "steps:\n  a: {notebook: x.ipynb, needs: [b]}\n  b: {notebook: x.ipynb, needs: [a]}\n",
            "cycle",
        ),
        ("steps:\n  a: {notebook: ../outside.ipynb}\n", "outside the project"),
        ("steps:\n  a: {notebook: x.ipynb, needs: [zzz]}\n", "unknown step zzz"),
        ("steps:\n  a: {notebok: x.ipynb}\n", "unknown key notebok"),
        ("steps: [\n", "invalid YAML"),
    ],
)
def test_bad_pipeline_file_is_one_line_exit_2(
    pipeline_project: Path, content: str, expected: str
) -> None:
    (pipeline_project / "bad.yaml").write_text(content)
    result = cli(pipeline_project, "run", "bad.yaml")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert not (pipeline_project / ".mlops").exists()
