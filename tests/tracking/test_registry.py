"""Models into runs and the Model Registry, on a real SQLite store with real scikit-learn models."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from store_under_test import location_for, share_store

from jupyter_mlops.core.errors import NotFoundError, PolicyError, StoreUnavailableError, UsageError
from jupyter_mlops.core.lineage import (
    TAG_REPRODUCED,
    TAG_REVIEW_ID,
    TAG_REVIEW_STATE,
    ModelRef,
    load_policy,
)
from jupyter_mlops.core.parameters import canonical_params
from jupyter_mlops.tracking.datasets import frame_digest, log_dataframes
from jupyter_mlops.tracking.environment import environment_listing, run_tags
from jupyter_mlops.tracking.mlflow_store import MlflowRunStore
from jupyter_mlops.tracking.registry import (
    promote,
    read_lineage,
    register_object,
    register_version,
)
from jupyter_mlops.tracking.store import Batch

from conftest import clean_env

POLICY = """\
[project]
name = "registry-test"

[tool.jupyter-mlops]
require_review_for = ["champion"]
require_reproduced_for = ["champion"]
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, team_stores: None) -> Path:
    folder = tmp_path_factory.mktemp("registry") / "project"
    folder.mkdir()
    share_store(folder)
    (folder / "pyproject.toml").write_text(POLICY)
    return folder


@pytest.fixture(scope="module")
def store(root: Path) -> MlflowRunStore:
    """One store for the module (creating one costs seconds); tests use their own names."""
    return MlflowRunStore(location_for(root))


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, Any]:
    features, target = load_iris(return_X_y=True, as_frame=True)
    return features, target


def new_run(store: MlflowRunStore, root: Path, params: dict[str, str] | None = None) -> str:
    """A run tagged like a tracked notebook's: notebook, environment hash, snapshot, params."""
    handle = store.start_run("registry", None, run_tags(str(root / "train.ipynb"), "python3"))
    _, environment_hash = environment_listing()
    tags = {"mlops.environment_hash": environment_hash, "mlops.snapshot": "5" * 64}
    store.log_batch(handle.run_id, Batch(params=params or {}, tags=tags))
    return handle.run_id


def no_versions(store: MlflowRunStore, name: str) -> bool:
    return not store.client.search_model_versions(f"name = '{name}'")


def model_artifacts(store: MlflowRunStore, run_id: str) -> list[str]:
    return [f.path for f in store.client.list_artifacts(run_id, "models")]


def test_sklearn_model_registered_with_lineage_and_loaded_by_a_fresh_mlflow_process(
    store: MlflowRunStore, root: Path, iris: tuple[pd.DataFrame, Any], tmp_path: Path
) -> None:
    # Given a run that read the iris DataFrame and trained a classifier
    features, target = iris
    run_id = new_run(store, root, {"C": "0.5", "max_iter": "500"})
    assert log_dataframes(store, run_id, {"X": features}) == [frame_digest(features)]
    assert log_dataframes(store, run_id, {"X": features}) == []  # a cell run again: no repeat
    model = LogisticRegression(C=0.5, max_iter=500).fit(features, target)
    # When it is registered with an input example and pointed at by an unguarded alias
    registered = register_object(
        store, run_id, model, "iris-reg", alias="candidate", input_example=features.head(5)
    )
    # Then the version carries the run's lineage
    assert (registered.name, registered.version, registered.alias) == ("iris-reg", "1", "candidate")
    version = store.client.get_model_version("iris-reg", "1")
    run = store.client.get_run(run_id)
    tags = version.tags
    assert tags["mlops.run_id"] == run_id == version.run_id
    assert tags["mlops.notebook"] == str(root / "train.ipynb")
    assert tags["mlops.snapshot"] == "5" * 64
    expected_params = canonical_params({"C": "0.5", "max_iter": "500"}).encode()
    assert tags["mlops.params_hash"] == hashlib.sha256(expected_params).hexdigest()
    assert tags["mlops.environment_hash"] == run.data.tags["mlops.environment_hash"]
    assert tags["mlops.datasets"] == frame_digest(features)
    assert tags["mlops.flavor"] == "sklearn"
    if "mlflow.source.git.commit" in run.data.tags:
        assert tags["mlops.git_commit"] == run.data.tags["mlflow.source.git.commit"]
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["X"]
    promoted = json.loads(tags["mlops.promoted.candidate"])
    assert promoted["version"] == "1" and promoted["by"] and promoted["review_id"] is None
    # the model folder: explicit pinned requirements and a signature from the example
    folder = Path(store.client.download_artifacts(run_id, registered.artifact_path, str(tmp_path)))
    requirements = (folder / "requirements.txt").read_text().split()
    assert f"scikit-learn=={metadata.version('scikit-learn')}" in requirements
    assert f"mlflow=={mlflow.__version__}" in requirements
    mlmodel = (folder / "MLmodel").read_text()
    assert "signature:" in mlmodel and "petal length (cm)" in mlmodel
    # and the lineage reads back through the alias
    lineage = read_lineage(store, ModelRef("iris-reg", alias="candidate")).to_json()
    assert lineage["run"]["id"] == run_id
    assert lineage["data"][0]["name"] == "X" and lineage["data"][0]["rows"] == 150
    # A fresh process with nothing but MLflow loads the alias and predicts what we predict
    code = (
        "import json, sys, mlflow.pyfunc, pandas as pd\n"
        "model = mlflow.pyfunc.load_model('models:/iris-reg@candidate')\n"
        "rows = pd.read_json(sys.stdin, orient='split')\n"
        "print(json.dumps([int(v) for v in model.predict(rows)]))\n"
    )
    rows = features.sample(12, random_state=0)
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        input=rows.to_json(orient="split"),
        env=clean_env(MLFLOW_TRACKING_URI=store.tracking_uri),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert json.loads(loaded.stdout.strip().splitlines()[-1]) == model.predict(rows).tolist()


def test_the_review_gate_refuses_until_review_and_verdict_then_records_the_promotion(
    store: MlflowRunStore, root: Path
) -> None:
    # Given a registered regression model and a policy guarding "champion"
    features, target = load_diabetes(return_X_y=True, as_frame=True)
    run_id = new_run(store, root)
    model = LinearRegression().fit(features, target)
    register_object(store, run_id, model, "diabetes-reg")
    policy = load_policy(root)

    def refused() -> str:
        with pytest.raises(PolicyError) as caught:
            promote(store, "diabetes-reg", "1", "champion", policy=policy)
        version = store.client.get_model_version("diabetes-reg", "1")
        assert "champion" not in version.aliases  # a refusal changes nothing
        assert "mlops.promoted.champion" not in version.tags
        return str(caught.value)

    # When nothing is there: both requirements are named
    message = refused()
    assert "approved review" in message and "never reproduced" in message
    assert f"jupyter mlops reproduce {run_id}" in message
    # a gated alias at registration time is refused before anything is logged
    with pytest.raises(PolicyError, match="a new version of diabetes-reg"):
        register_object(store, run_id, model, "diabetes-reg", alias="champion", policy=policy)
    assert len(store.client.search_model_versions("name = 'diabetes-reg'")) == 1
    assert model_artifacts(store, run_id) == ["models/diabetes-reg"]
    # an approved review of the version: the verdict is still missing
    store.client.set_model_version_tag("diabetes-reg", "1", TAG_REVIEW_STATE, "approved")
    store.client.set_model_version_tag("diabetes-reg", "1", TAG_REVIEW_ID, "rev-42")
    message = refused()
    assert "approved review" not in message and "never reproduced" in message
    # a verdict that differs does not count, and is quoted
    store.client.set_tag(run_id, TAG_REPRODUCED, "differs: metric r2: 0.51 -> 0.49")
    assert "differs: metric r2" in refused()
    # Then a reproduced run lets the promotion through, recorded with the review
    store.client.set_tag(run_id, TAG_REPRODUCED, "reproduced after normalization")
    promotion = promote(store, "diabetes-reg", "1", "champion", policy=policy, note="ok by ana")
    assert promotion.review_id == "rev-42" and promotion.review_on == "version"
    version = store.client.get_model_version_by_alias("diabetes-reg", "champion")
    assert str(version.version) == "1"
    record = json.loads(version.tags["mlops.promoted.champion"])
    assert record["review_id"] == "rev-42" and record["note"] == "ok by ana"
    assert record["by"] == promotion.by and record["at"].endswith("+00:00")


def test_bad_input_leaves_nothing_registered(
    store: MlflowRunStore, root: Path, iris: tuple[pd.DataFrame, Any]
) -> None:
    features, target = iris
    run_id = new_run(store, root)
    model = LogisticRegression(max_iter=300).fit(features, target)
    attempts: list[tuple[Any, str, dict[str, Any], type[Exception], str]] = [
        ({"weights": [1, 2]}, "bad-dict", {}, UsageError, "a dict is not a model"),
        (LogisticRegression(), "bad-unfitted", {}, UsageError, "is not fitted"),
        (model, "team/iris", {}, UsageError, "Names cannot contain '/'"),
        (model, "bad-alias", {"alias": "latest"}, UsageError, "'latest' alias name"),
        (model, "bad-path", {"artifact_path": "../outside"}, UsageError, "inside the run"),
    ]
    for obj, name, options, error, message in attempts:
        with pytest.raises(error, match=message):
            register_object(store, run_id, obj, name, **options)
        assert no_versions(store, name), name
    # a run without that artifact: the message lists what the run has
    with pytest.raises(NotFoundError, match="nothing at artifact path 'models/nope'"):
        register_version(store, run_id, "models/nope", "bad-missing")
    assert no_versions(store, "bad-missing")
    with pytest.raises(NotFoundError, match="not-a-run"):
        register_version(store, "not-a-run", "model", "bad-run")
    assert model_artifacts(store, run_id) == []  # nothing was even uploaded
    assert not store.client.search_registered_models("name LIKE 'bad-%'")


def test_a_registration_failing_after_the_upload_says_where_the_model_is(
    store: MlflowRunStore, root: Path, iris: tuple[pd.DataFrame, Any], monkeypatch: Any
) -> None:
    features, target = iris
    run_id = new_run(store, root)
    model = LogisticRegression(max_iter=300).fit(features, target)

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise MlflowException("registry database is read-only", error_code="INTERNAL_ERROR")

    monkeypatch.setattr(store.client, "create_model_version", refuse)
    with pytest.raises(StoreUnavailableError) as caught:
        register_object(store, run_id, model, "iris-half")
    message = str(caught.value)
    assert "read-only" in message
    assert f"jupyter mlops register {run_id} --artifact models/iris-half --name iris-half" in (
        message
    )
    monkeypatch.undo()
    # no version, and no empty registered model left behind; the logged model registers later
    assert not store.client.search_registered_models("name = 'iris-half'")
    registered = register_version(store, run_id, "models/iris-half", "iris-half")
    assert registered.version == "1"


def test_a_failed_registration_keeps_the_version_another_process_added_meanwhile(
    store: MlflowRunStore, root: Path, iris: tuple[pd.DataFrame, Any], monkeypatch: Any
) -> None:
    # Given a registration that creates the registered model, then fails to add its
    # version after another process (a batch point) has added one
    features, target = iris
    run_id = new_run(store, root)
    model = LogisticRegression(max_iter=300).fit(features, target)
    original = store.client.create_model_version

    def another_process_first_then_fail(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)
        raise MlflowException("registry database is read-only", error_code="INTERNAL_ERROR")

    monkeypatch.setattr(store.client, "create_model_version", another_process_first_then_fail)
    with pytest.raises(StoreUnavailableError):
        register_object(store, run_id, model, "iris-shared")
    monkeypatch.undo()
    # Then the clean-up left the registered model and the other process's version alone
    versions = store.client.search_model_versions("name = 'iris-shared'")
    assert [str(v.version) for v in versions] == ["1"]


def test_a_model_logged_by_mlflow_itself_registers_by_its_name(
    store: MlflowRunStore, root: Path, iris: tuple[pd.DataFrame, Any]
) -> None:
    # Given a run whose notebook used MLflow 3's own log_model (a logged model, no run files)
    features, target = iris
    run_id = new_run(store, root)
    model = LogisticRegression(max_iter=300).fit(features, target)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(store.tracking_uri)
    try:
        with mlflow.start_run(run_id=run_id):
            info = mlflow.sklearn.log_model(
                model, name="skm", pip_requirements=["scikit-learn"], serialization_format="skops"
            )
        # When it is registered by the name it was logged under
        registered = register_version(store, run_id, "skm", "iris-logged")
        # Then the version points at that logged model's files and loads
        assert info.model_id in registered.source
        version = store.client.get_model_version("iris-logged", "1")
        assert version.tags["mlops.run_id"] == run_id == version.run_id
        loaded = mlflow.pyfunc.load_model("models:/iris-logged/1")
    finally:
        mlflow.set_tracking_uri(previous)
    assert loaded.predict(features.head(3)).tolist() == model.predict(features.head(3)).tolist()


def _double(rows: Any) -> Any:
    return rows * 2


def test_a_pipeline_with_custom_code_falls_back_to_cloudpickle_and_says_so(
    store: MlflowRunStore, root: Path, iris: tuple[pd.DataFrame, Any], tmp_path: Path
) -> None:
    # Given a scikit-learn pipeline holding a function skops does not trust
    features, target = iris
    run_id = new_run(store, root)
    model = make_pipeline(FunctionTransformer(_double), LogisticRegression(max_iter=500))
    model.fit(features, target)
    # When it is registered
    registered = register_object(store, run_id, model, "iris-custom")
    # Then it is saved with cloudpickle, required as such, and the user is told
    assert any("saved with cloudpickle" in m for m in registered.messages)
    folder = Path(store.client.download_artifacts(run_id, registered.artifact_path, str(tmp_path)))
    assert "serialization_format: cloudpickle" in (folder / "MLmodel").read_text()
    requirements = (folder / "requirements.txt").read_text().split()
    assert f"cloudpickle=={metadata.version('cloudpickle')}" in requirements
    loaded = mlflow.pyfunc.load_model(str(folder))
    assert loaded.predict(features.head(4)).tolist() == model.predict(features.head(4)).tolist()
