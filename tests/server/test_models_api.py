"""The Models endpoints on a real JupyterLab, over real scikit-learn models in its store."""

from __future__ import annotations

import getpass
import json
import secrets
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from store_under_test import location_for

from jupyter_mlops.tracking.mlflow_store import MlflowRunStore
from jupyter_mlops.tracking.registry import log_model, register_version

from conftest import LabServer, run_cli

pytestmark = pytest.mark.server

#: The alias this module's policy guards; no other test of the session uses it.
GATED = "prod"


def lab_store(lab: LabServer) -> MlflowRunStore:
    """The store the lab serves: ``.mlops/mlflow.db`` of its project root."""
    return MlflowRunStore(location_for(lab.root))


def register_versions(lab: LabServer, name: str, count: int) -> list[str]:
    """``count`` versions of ``name``, each from its own finished run; their run ids."""
    store = lab_store(lab)
    features, target = load_iris(return_X_y=True, as_frame=True)
    run_ids = []
    for index in range(count):
        run = store.start_run("models-api", f"train-{index}", {"mlops.notebook": "train.ipynb"})
        model = LogisticRegression(C=0.5 + index, max_iter=500).fit(features, target)
        logged = log_model(store, run.run_id, model, artifact_path="models/iris")
        store.end_run(run.run_id, "FINISHED")
        register_version(store, run.run_id, "models/iris", name, flavor=logged.flavor)
        run_ids.append(run.run_id)
    return run_ids


@contextmanager
def gate_policy(root: Path) -> Iterator[None]:
    """The lab's project requires an approved review for ``prod`` while the block runs."""
    pyproject = root / "pyproject.toml"
    before = pyproject.read_text()
    assert "[tool.jupyter-mlops]" not in before, "another test set a policy on the lab"
    pyproject.write_text(before + f'\n[tool.jupyter-mlops]\nrequire_review_for = ["{GATED}"]\n')
    try:
        yield
    finally:
        pyproject.write_text(before)


@dataclass(frozen=True)
class Model:
    name: str
    runs: list[str]  # run of version 1, of version 2


@pytest.fixture(scope="module")
def model(lab: LabServer) -> Model:
    """Two versions of a fresh model; version 2 carries an approved review."""
    name = f"api-iris-{secrets.token_hex(3)}"
    run_ids = register_versions(lab, name, 2)
    client = lab_store(lab).client
    client.set_model_version_tag(name, "2", "mlops.review.state", "approved")
    client.set_model_version_tag(name, "2", "mlops.review.id", "rv-0badc0de")
    client.set_tag(run_ids[0], "mlops.review.state", "changes_requested")
    return Model(name, run_ids)


def path(name: str, *rest: str) -> str:
    return "/".join(["/jupyter-mlops/api/models", urllib.parse.quote(name, safe=""), *rest])


def test_models_are_listed_with_their_aliases_and_latest_version(
    lab: LabServer, model: Model
) -> None:
    # Given a model with two versions, the first one promoted to a free alias
    name = model.name
    status, promoted = lab.api(
        path(name, "versions", "1", "aliases"), method="POST", body={"alias": "staging"}
    )
    assert status == 200, promoted
    # When the models are listed
    status, body = lab.api("/jupyter-mlops/api/models")
    # Then the model is there with its alias and latest version
    assert status == 200, body
    found = [m for m in body["models"] if m["name"] == name]
    assert len(found) == 1, body
    assert found[0]["aliases"] == {"staging": "1"}
    assert found[0]["latest_version"] == "2"


def test_versions_carry_aliases_review_state_and_run(lab: LabServer, model: Model) -> None:
    # Given the model (version 2 reviewed on the version, version 1's run has changes asked)
    name = model.name
    runs = model.runs
    lab.api(path(name, "versions", "1", "aliases"), method="POST", body={"alias": "staging"})
    # When its versions are read
    status, body = lab.api(path(name, "versions"))
    # Then they come newest first with their review state and run
    assert status == 200, body
    versions = body["versions"]
    assert [v["version"] for v in versions] == ["2", "1"]
    newest, oldest = versions
    assert newest["review"] == {"state": "approved", "id": "rv-0badc0de", "on": "version"}
    assert newest["run_id"] == runs[1] and newest["run_exists"] is True
    assert newest["uri"] == f"models:/{name}/2" and newest["flavor"] == "sklearn"
    assert oldest["review"] == {"state": "changes_requested", "id": None, "on": "run"}
    assert oldest["aliases"] == ["staging"] and body["aliases"]["staging"] == "1"
    assert oldest["tags"]["mlops.run_id"] == runs[0]


def test_lineage_is_what_the_shell_prints(lab: LabServer, model: Model) -> None:
    # Given a registered version
    name = model.name
    # When its lineage is read over REST and from the shell
    status, body = lab.api(path(name, "versions", "2", "lineage"))
    shell = run_cli(lab.root, "lineage", f"models:/{name}/2", "--json")
    # Then both are the same chain
    assert status == 200, body
    assert shell.returncode == 0, shell.stderr
    assert body == json.loads(shell.stdout)
    assert body["model"]["uri"] == f"models:/{name}/2"
    assert body["run"]["id"] == model.runs[1]
    assert body["review"] == {"id": "rv-0badc0de", "on": "version"}


def test_promotion_goes_through_the_projects_gate(lab: LabServer, model: Model) -> None:
    name = model.name
    with gate_policy(lab.root):
        # When the unreviewed version 1 is promoted to the gated alias
        status, refused = lab.api(
            path(name, "versions", "1", "aliases"), method="POST", body={"alias": GATED}
        )
        # Then the gate refuses with a 409 naming what is missing, and nothing moved
        assert status == 409, refused
        assert refused["code"] == "policy"
        assert f"refuses to point alias '{GATED}' at {name} version 1" in refused["message"]
        assert "approved review" in refused["message"]
        assert GATED not in lab.api(path(name, "versions"))[1]["aliases"]
        # When the approved version 2 is promoted with a note
        status, promoted = lab.api(
            path(name, "versions", "2", "aliases"),
            method="POST",
            body={"alias": GATED, "note": "looked fine"},
        )
        # Then the alias points at it and the promotion names the review
        assert status == 200, promoted
        assert promoted["uri"] == f"models:/{name}@{GATED}"
        assert promoted["review_id"] == "rv-0badc0de" and promoted["review_on"] == "version"
        # recorded as jupyter_server's user, not as the OS account the server runs under
        assert promoted["by"] and promoted["by"] != getpass.getuser()
    assert lab.api(path(name, "versions"))[1]["aliases"][GATED] == "2"
    lineage = lab.api(path(name, "versions", "2", "lineage"))[1]
    assert lineage["promotions"][GATED]["note"] == "looked fine"
    # And without the policy the same alias is free for version 1
    status, moved = lab.api(
        path(name, "versions", "1", "aliases"), method="POST", body={"alias": GATED}
    )
    assert status == 200, moved
    assert lab.api(path(name, "versions"))[1]["aliases"][GATED] == "1"


@pytest.mark.parametrize(
    ("method", "suffix", "body", "status", "code"),
    [
        ("GET", "versions", None, 404, "not_found"),
        ("GET", "versions/7/lineage", None, 404, "not_found"),
        ("GET", "versions/0/lineage", None, 400, "usage"),
        ("POST", "versions/1/aliases", {}, 400, "usage"),
        ("POST", "versions/1/aliases", {"alias": "x", "note": 3}, 400, "usage"),
        ("POST", "versions/1/aliases", {"alias": "latest"}, 400, "usage"),
        ("POST", "versions/9/aliases", {"alias": "x"}, 404, "not_found"),
    ],
)
def test_bad_input_is_a_json_4xx(
    lab: LabServer,
    model: Model,
    method: str,
    suffix: str,
    body: object,
    status: int,
    code: str,
) -> None:
    name = "no-such-model" if suffix == "versions" else model.name
    answered, error = lab.api(f"{path(name)}/{suffix}", method=method, body=body)
    assert (answered, error.get("code")) == (status, code), error
    assert error["message"]
