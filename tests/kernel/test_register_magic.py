"""``%mlops_register`` and ``jupyter_mlops.register_model`` in real kernels, on the SQLite store."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from nbclient.exceptions import CellExecutionError
from nbrun import only_run, running_kernel, stream_text
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from store_under_test import tracking_uri_for

from jupyter_mlops.core.parameters import canonical_params
from jupyter_mlops.tracking.datasets import frame_digest

from conftest import clean_env, copy_notebook


def store_uri(project: Path) -> str:
    return tracking_uri_for(project)


def test_register_magic_records_lineage_and_a_fresh_process_loads_the_models(
    project: Path,
) -> None:
    # Given a tracked notebook that reads iris, trains a classifier and writes a rule by hand
    notebook = copy_notebook("register_sklearn.ipynb", project)
    # When it runs in a real kernel
    with running_kernel(notebook) as kernel:
        cells = [kernel.run(index) for index in range(len(kernel.nb.cells))]
    # Then each registration said what it did, in one line
    said = stream_text(cells[4], "stdout")
    assert "registered iris-clf version 1 (models:/iris-clf/1)" in said
    assert "alias 'candidate' points at it; input example from X" in said
    assert "registered iris-rule version 1" in stream_text(cells[6], "stdout")
    assert "WARNING" not in stream_text(cells[6], "stderr")  # MLflow's own chatter is kept out
    assert "'2'" in json.dumps(cells[7].outputs)  # the Python API: a second version
    # and the versions carry the run's lineage
    client = MlflowClient(tracking_uri=store_uri(project), registry_uri=store_uri(project))
    run = only_run(client, "register-test")
    version = client.get_model_version_by_alias("iris-clf", "candidate")
    assert str(version.version) == "1" and version.run_id == run.info.run_id
    tags = version.tags
    assert tags["mlops.run_id"] == run.info.run_id
    assert tags["mlops.notebook"] == str(notebook)
    assert tags["mlops.snapshot"] == run.data.tags["mlops.snapshot"]
    assert len(tags["mlops.snapshot"]) == 64
    assert run.data.params == {"C": "0.5"}
    params = canonical_params({"C": "0.5"}).encode()
    assert tags["mlops.params_hash"] == hashlib.sha256(params).hexdigest()
    assert tags["mlops.environment_hash"] == run.data.tags["mlops.environment_hash"]
    # the DataFrame the tracked cells bound and read is the run's dataset input, by digest
    features = load_iris(as_frame=True).data
    inputs = run.inputs.dataset_inputs
    assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [("X", frame_digest(features))]
    assert tags["mlops.datasets"] == frame_digest(features)
    assert client.get_model_version("iris-rule", "1").tags["mlops.flavor"] == "pyfunc"
    assert client.get_model_version("iris-clf", "2").tags["mlops.run_id"] == run.info.run_id
    # A fresh process, where jupyter_mlops cannot even be imported, loads both and predicts
    code = (
        "import sys; sys.modules['jupyter_mlops'] = None\n"
        "import json, mlflow.pyfunc, pandas as pd\n"
        "rows = pd.read_json(sys.stdin, orient='split')\n"
        "clf = mlflow.pyfunc.load_model('models:/iris-clf@candidate')\n"
        "rule = mlflow.pyfunc.load_model('models:/iris-rule/1')\n"
        "print(json.dumps([[int(v) for v in clf.predict(rows)], "
        "[int(v) for v in rule.predict(rows)]]))\n"
    )
    rows = features.sample(15, random_state=1)
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        input=rows.to_json(orient="split"),
        env=clean_env(MLFLOW_TRACKING_URI=store_uri(project)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    clf_predictions, rule_predictions = json.loads(loaded.stdout.strip().splitlines()[-1])
    target = load_iris(as_frame=True).target
    expected = LogisticRegression(C=0.5, max_iter=500).fit(features, target).predict(rows)
    assert clf_predictions == expected.tolist()
    assert rule_predictions == (rows["petal length (cm)"] > 2.5).astype(int).tolist()


def test_register_magic_refuses_bad_input_in_one_line_and_registers_nothing(
    project: Path,
) -> None:
    notebook = copy_notebook("register_bad_input.ipynb", project)
    expected = {
        3: "no variable named 'modle' in this notebook (did you mean 'model'?)",
        4: "a dict is not a model: it has no predict() method",
        5: "a LogisticRegression is not fitted: call its fit() before registering it",
        6: "model name 'team/iris': Invalid model name 'team/iris'",
        7: "the following arguments are required: --name",
    }
    with running_kernel(notebook) as kernel:
        for index in range(3):
            kernel.run(index)
        kernel.client.allow_errors = False
        # a refused registration fails its cell (a notebook run by papermill stops there)
        with pytest.raises(CellExecutionError):
            kernel.run(3)
        kernel.client.allow_errors = True
        cells = {index: kernel.run(index) for index in range(4, 9)}
    cells[3] = kernel.nb.cells[3]
    for index, message in expected.items():
        text = stream_text(cells[index], "stderr")
        assert text.strip().splitlines() == [text.strip()], text  # one line, no traceback
        assert text.startswith("UsageError: mlops_register: ") and message in text, text
        assert not [o for o in cells[index].outputs if o.output_type == "error"]
    assert "the notebook goes on" in stream_text(cells[8], "stdout")
    client = MlflowClient(tracking_uri=store_uri(project), registry_uri=store_uri(project))
    run = only_run(client, "register-bad")
    assert client.search_registered_models() == []
    assert client.search_model_versions() == []
    assert [a.path for a in client.list_artifacts(run.info.run_id, "models")] == []
