"""``make demo``'s job end to end on a temporary copy of the example project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import clean_env

DEMO = Path(__file__).parents[1] / "notebooks" / "demo.py"


@pytest.mark.own_store  # make demo's job is defined on the embedded default store
def test_demo_registers_a_reviewed_reproduced_champion(tmp_path: Path) -> None:
    # When the demo runs on a copy of the example (a smaller sweep than make demo's)
    project = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, str(DEMO), "--project", str(project), "--grid", "C=0.01,1.0"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Then the champion is a reviewed, reproduced version with its lineage
    client = MlflowClient(f"sqlite:///{project}/.mlops/mlflow.db")
    champion = client.get_model_version_by_alias("demo-classifier", "champion")
    tags = champion.tags
    assert tags["mlops.review.state"] == "approved"
    assert tags["mlops.run_id"] == champion.run_id
    assert tags["mlops.snapshot"] and tags["mlops.params_hash"] and tags["mlops.datasets"]
    assert "mlops.promoted.champion" in tags
    run = client.get_run(champion.run_id)
    assert run.data.tags["mlops.reproduced"].startswith("reproduced")
    assert run.data.tags["mlops.review.state"] == "approved"
    # The pipeline ran its three steps, the monitor logged its drift metrics
    monitor = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string="tags.`mlops.pipeline.step` = 'monitor'",
    )
    assert monitor and "psi_max" in monitor[0].data.metrics
    assert "step evaluate: ran" in result.stdout
    # And the outputs it promised are there
    assert (project / "demo-output" / "best-vs-worst.html").stat().st_size > 1_000_000
    assert "reproduced" in result.stdout and "## modified /cells/" in result.stdout
    assert "approved by reviewer" in result.stdout
