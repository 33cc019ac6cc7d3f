"""``jupyter mlops register``, ``promote``, ``lineage`` and pipeline model outputs, end to end."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from store_under_test import location_for

from jupyter_mlops import cli
from jupyter_mlops.core.parameters import canonical_params
from jupyter_mlops.tracking.mlflow_store import MlflowRunStore
from jupyter_mlops.tracking.registry import log_model

from conftest import copy_notebook, run_cli

POLICY = """
[tool.jupyter-mlops]
require_review_for = ["champion"]
require_reproduced_for = ["champion"]
"""


def main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``jupyter mlops ARGS`` in this process (MLflow is imported once for the whole test)."""
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def logged_run(project: Path) -> tuple[MlflowRunStore, str]:
    """A run of the project's store holding a trained classifier at ``models/iris``."""
    store = MlflowRunStore(location_for(project))
    run_id = store.start_run("shell", "train", {"mlops.notebook": str(project / "t.ipynb")}).run_id
    features, target = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(features, target)
    log_model(store, run_id, model, artifact_path="models/iris")
    return store, run_id


def test_register_promote_and_lineage_from_the_shell(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a project whose policy guards "champion", and a run that logged a model
    with (project / "pyproject.toml").open("a") as handle:
        handle.write(POLICY)
    store, run_id = logged_run(project)
    client = store.client
    # Bad input: exit 2 with what the run has; a gated alias: exit 1; nothing registered
    code, _, err = main(capsys, "register", run_id, "--artifact", "models/nope", "--name", "iris")
    assert code == 2 and "nothing at artifact path 'models/nope' (its models: models/iris)" in err
    code, _, err = main(capsys, "register", "f" * 32, "--artifact", "models/iris", "--name", "iris")
    assert code == 2 and "f" * 32 in err
    args = ["register", run_id, "--artifact", "models/iris", "--name", "iris"]
    code, _, err = main(capsys, *args, "--alias", "champion")
    assert code == 1 and "policy refuses to point alias 'champion'" in err
    assert client.search_model_versions("name = 'iris'") == []
    # When the model is registered without the alias
    code, out, _ = main(capsys, *args)
    assert code == 0 and "registered iris version 1 (models:/iris/1)" in out
    # Then a promotion is refused (exit 1) naming what is missing, from a real shell
    refused = run_cli(project, "promote", "iris", "1", "--alias", "champion")
    assert refused.returncode == 1, refused.stderr
    assert "approved review" in refused.stderr and "never reproduced" in refused.stderr
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias("iris", "champion")
    # and allowed once the run has an approved review and a reproduced verdict
    client.set_tag(run_id, "mlops.review.state", "approved")
    client.set_tag(run_id, "mlops.review.id", "rev-7")
    client.set_tag(run_id, "mlops.reproduced", "reproduced")
    code, out, err = main(
        capsys, "promote", "iris", "1", "--alias", "champion", "--reviewer-note", "checked"
    )
    assert code == 0, err
    assert "models:/iris@champion -> version 1" in out and "review rev-7" in out
    # and the lineage shows the chain, as text and as JSON
    code, out, _ = main(capsys, "lineage", "models:/iris@champion", "--json")
    lineage = json.loads(out)
    assert code == 0 and lineage["model"]["version"] == "1"
    assert lineage["model"]["aliases"] == ["champion"]
    assert lineage["run"]["id"] == run_id and lineage["notebook"]["path"] == str(
        project / "t.ipynb"
    )
    assert lineage["review"] == {"id": "rev-7", "on": "run"}
    assert lineage["promotions"]["champion"]["note"] == "checked"
    code, out, _ = main(capsys, "lineage", "models:/iris/1")
    assert code == 0 and out.startswith("model        models:/iris/1 (aliases: champion)")
    assert "promoted     champion by" in out and "reproduced   reproduced" in out
    # bad references: exit 2, one line each
    for bad, message in [
        (["lineage", "iris"], "use models:/NAME/VERSION"),
        (["lineage", "models:/iris/9"], "models:/iris/9"),
        (["promote", "iris", "one", "--alias", "x"], "VERSION must be a version number"),
        (["promote", "iris", "1", "--alias", "latest"], "'latest' alias name"),
    ]:
        code, _, err = main(capsys, *bad)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


PIPELINE = """\
name: irises
steps:
  train:
    notebook: pipeline_train_model.ipynb
    params: {C: 0.5}
    outputs:
      model: {name: iris-pipe, artifact: model, alias: ALIAS}
"""


def test_a_pipeline_step_registers_the_model_it_logged(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a step that logs its model and declares it as an output
    notebook = copy_notebook("pipeline_train_model.ipynb", project)
    (project / "mlops.yaml").write_text(PIPELINE.replace("ALIAS", "staging"))
    # When the pipeline runs
    result = run_cli(project, "pipeline", "run")
    # Then the step's run is registered, with the alias, and its lineage
    assert result.returncode == 0, result.stderr
    assert "registered models:/iris-pipe/1 as staging" in result.stdout
    store = MlflowRunStore(location_for(project))
    version = store.client.get_model_version_by_alias("iris-pipe", "staging")
    run = store.client.get_run(version.run_id)
    assert run.data.tags["mlops.pipeline.step"] == "train"
    assert run.data.tags["mlops.registered_model"] == "iris-pipe/1"
    tags: dict[str, Any] = version.tags
    assert tags["mlops.notebook"] == str(notebook)
    assert tags["mlops.snapshot"] == run.data.tags["mlops.input_snapshot"]
    params = canonical_params({"C": "0.5"}).encode()
    assert tags["mlops.params_hash"] == hashlib.sha256(params).hexdigest()
    assert tags["mlops.artifact_path"] == "model"
    # A gated alias is refused before anything runs
    with (project / "pyproject.toml").open("a") as handle:
        handle.write(POLICY)
    (project / "mlops.yaml").write_text(PIPELINE.replace("ALIAS", "champion"))
    code, _, err = main(capsys, "pipeline", "run", "--force", "train")
    assert code == 1 and "alias 'champion' of iris-pipe" in err
    assert len(store.client.search_runs([run.info.experiment_id])) == 2  # pipeline + step


def test_a_cached_model_step_runs_again_when_its_model_changed_or_is_gone(project: Path) -> None:
    # Given a model step that ran and registered its model, then is cached
    copy_notebook("pipeline_train_model.ipynb", project)
    (project / "mlops.yaml").write_text(PIPELINE.replace("ALIAS", "staging"))
    assert run_cli(project, "pipeline", "run").returncode == 0
    cached = run_cli(project, "pipeline", "run")
    assert "step train: cached" in cached.stdout, cached.stdout + cached.stderr
    # When the declaration names another alias, the step is stale and registers again
    (project / "mlops.yaml").write_text(PIPELINE.replace("ALIAS", "candidate"))
    assert "its outputs.model changed" in run_cli(project, "pipeline", "status").stdout
    rerun = run_cli(project, "pipeline", "run")
    assert rerun.returncode == 0, rerun.stderr
    assert "registered models:/iris-pipe/2 as candidate" in rerun.stdout
    # When the registered version is deleted, the step is stale and registers again
    store = MlflowRunStore(location_for(project))
    version = store.client.get_model_version_by_alias("iris-pipe", "candidate")
    store.client.delete_model_version("iris-pipe", version.version)
    status = run_cli(project, "pipeline", "status").stdout
    assert f"model iris-pipe has no version from its last run {version.run_id}" in status
    again = run_cli(project, "pipeline", "run")
    assert again.returncode == 0, again.stderr
    assert "registered models:/iris-pipe/3 as candidate" in again.stdout
    assert "step train: cached" in run_cli(project, "pipeline", "run").stdout
