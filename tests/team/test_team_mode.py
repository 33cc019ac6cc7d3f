"""Team mode: everything against ONE ``mlflow server`` on a real PostgreSQL, proxied artifacts.

The children (CLI, kernels, a fresh loader) get ``MLFLOW_TRACKING_URI`` pointing at the
session's ``team_server`` and nothing else; what they wrote is read back through the server,
and the key facts straight from PostgreSQL and from the server's artifact folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from mlflow_server import MlflowServer
from nbrun import only_run, running_kernel, stream_text
from postgres_server import PostgresServer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from store_under_test import HTTP_LIMITS

from jupyter_mlops import cli

from conftest import TESTS, VENV_BIN, clean_env, free_port, start_lab, stop_lab

NOTEBOOK = "run_params.ipynb"
POLICY = '\n[tool.jupyter-mlops]\nrequire_review_for = ["champion"]\n'
Main = Callable[..., tuple[int, str, str]]


def team_env(server: MlflowServer, **extra: str) -> dict[str, str]:
    """A child's environment: the team server as the tracking location, nothing leaking in."""
    return clean_env(MLFLOW_TRACKING_URI=server.uri, **HTTP_LIMITS, **extra)


def team_cli(
    server: MlflowServer, cwd: Path, *args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """``jupyter-mlops ARGS`` in a child process, as a team member runs it."""
    return subprocess.run(
        [str(VENV_BIN / "jupyter-mlops"), *args],
        cwd=cwd,
        env=team_env(server),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def team_main(
    team_server: MlflowServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Main:
    """``jupyter mlops ARGS`` in this process with the team server's URI (imports paid once)."""

    def main(cwd: Path, *args: str) -> tuple[int, str, str]:
        with monkeypatch.context() as patch:
            patch.chdir(cwd)
            for name, value in {"MLFLOW_TRACKING_URI": team_server.uri, **HTTP_LIMITS}.items():
                patch.setenv(name, value)
            capsys.readouterr()
            code = cli.main(list(args))
            out = capsys.readouterr()
        return code, out.out, out.err

    return main


def run_id_of(stdout: str) -> str:
    found = re.search(r"\brun ([0-9a-f]{32})\b", stdout)
    assert found, stdout
    return found.group(1)


@dataclass
class TeamProject:
    root: Path
    runs: list[str]  # run_params.ipynb with lr 0.3, then lr 0.5


@pytest.fixture(scope="module")
def team_project(
    team_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory
) -> TeamProject:
    """A project whose store is the team server: two ``jupyter mlops run`` of one notebook."""
    root = tmp_path_factory.mktemp("team-project")
    (root / "pyproject.toml").write_text('[project]\nname = "team"\n' + POLICY)
    (root / NOTEBOOK).write_text((TESTS / "notebooks" / NOTEBOOK).read_text())
    runs = []
    for lr in ("0.3", "0.5"):
        result = team_cli(team_server, root, "run", NOTEBOOK, "-p", "lr", lr)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith("jupyter mlops run: FINISHED"), result.stdout
        runs.append(run_id_of(result.stdout))
    return TeamProject(root, runs)


def server_artifact(server: MlflowServer, run_id: str, path: str) -> Path:
    """The one file the server stored for ``path`` of run ``run_id`` in its artifact folder."""
    found = list(server.artifacts.glob(f"*/{run_id}/artifacts/{path}"))
    assert len(found) == 1, (path, found, sorted(server.artifacts.rglob("*"))[:50])
    return found[0]


def test_run_is_finished_in_postgresql_with_its_notebook_in_the_servers_artifacts(
    team_server: MlflowServer, postgres_server: PostgresServer, team_project: TeamProject
) -> None:
    # Given `jupyter mlops run run_params.ipynb -p lr 0.3` with MLFLOW_TRACKING_URI=server
    run_id = team_project.runs[0]
    # Then the server has the run, FINISHED, with its params and metrics
    client = MlflowClient(team_server.uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.3"
    assert run.data.metrics["score"] == pytest.approx(1 - 1 / (1 + 0.3 * 3), abs=1e-6)
    curve = client.get_metric_history(run_id, "curve")
    assert sorted((m.step, m.value) for m in curve) == [
        (s, pytest.approx(0.3 * s)) for s in (0, 1, 2)
    ]
    assert run.data.tags["mlops.kind"] == "run"
    # stored in PostgreSQL (read without MLflow) ...
    assert postgres_server.query("SELECT status FROM runs WHERE run_uuid = %s", run_id) == [
        ("FINISHED",)
    ]
    assert postgres_server.query(
        "SELECT value FROM params WHERE run_uuid = %s AND key = 'lr'", run_id
    ) == [("0.3",)]
    # ... and its artifacts went through the server (proxied), into its destination folder
    assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
    executed = server_artifact(team_server, run_id, f"executed/{NOTEBOOK}").read_text()
    assert "# Parameters" in executed and "lr = 0.3" in executed
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"cells.jsonl", "parameters.json", "snapshots", "executed"} <= names
    # nothing was written into the project's own default store
    assert not (team_project.root / ".mlops" / "mlflow.db").exists()


def test_batch_with_two_local_workers_records_every_metric_exactly_once(
    team_server: MlflowServer, tmp_path: Path
) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "team-batch"\n')
    (tmp_path / NOTEBOOK).write_text((TESTS / "notebooks" / NOTEBOOK).read_text())
    result = team_cli(
        team_server,
        tmp_path,
        "batch",
        NOTEBOOK,
        "--grid",
        "lr=0.1,0.2",
        "--workers",
        "2",
        "--experiment",
        "team-batch",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # the result table comes first: no "View run ... at: URL" lines of MLflow's before it
    assert result.stdout.splitlines()[0].split()[:3] == ["#", "lr", "status"], result.stdout
    batch = next(
        line.split()[1].rstrip(":")
        for line in result.stdout.splitlines()
        if line.startswith("batch ") and "points finished" in line
    )
    client = MlflowClient(team_server.uri)
    parent = client.get_run(batch)
    assert parent.info.status == "FINISHED" and parent.data.tags["mlops.kind"] == "batch"
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{batch}'"
    )
    assert sorted(r.data.params["lr"] for r in children) == ["0.1", "0.2"]
    for child in children:
        lr = float(child.data.params["lr"])
        assert child.info.status == "FINISHED"
        history = {
            key: sorted(
                (m.step, m.value) for m in client.get_metric_history(child.info.run_id, key)
            )
            for key in ("curve", "loss", "score")
        }
        assert history["curve"] == [(s, pytest.approx(lr * s)) for s in (0, 1, 2)], lr
        assert len(history["loss"]) == 1 and len(history["score"]) == 1, history
        assert history["score"][0][1] == pytest.approx(1 - 1 / (1 + lr * 3), abs=1e-6)


def test_tracking_magics_in_a_real_kernel_write_to_the_team_server(
    team_server: MlflowServer, tmp_path: Path
) -> None:
    # Given a kernel whose environment names the team server
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "team-kernel"\n')
    notebook = tmp_path / "tracked_params_metrics.ipynb"
    notebook.write_text((TESTS / "notebooks" / notebook.name).read_text())
    secret = "s3cr3t-value-from-env-0042"
    env = {"MLFLOW_TRACKING_URI": team_server.uri, "MLOPS_TEST_SECRET_TOKEN": secret}
    # When the tracked notebook runs cell by cell
    with running_kernel(notebook, **env, **HTTP_LIMITS) as kernel:
        cells = [kernel.run(index) for index in range(len(kernel.nb.cells))]
    # Then the server holds the run the magics opened, closed, with params and metrics
    assert not [o for c in cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert "tracked cells" in stream_text(cells[5], "stdout") + json.dumps(cells[5].outputs)
    client = MlflowClient(team_server.uri)
    run = only_run(client, "tracked-test")
    assert run.info.status == "FINISHED" and run.info.run_name == "basic"
    assert run.data.params["lr"] == "0.01" and run.data.params["api_key"] == "***MASKED***"
    history = {
        key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
        for key in ("acc", "loss")
    }
    assert history == {"acc": [(3, 0.9), (4, 0.95)], "loss": [(3, 0.25)]}
    snapshot = run.data.tags["mlops.snapshot"]
    stored = server_artifact(team_server, run.info.run_id, f"snapshots/{snapshot}.ipynb")
    assert "hunter2hunter2hunter2" not in stored.read_text()
    records = server_artifact(team_server, run.info.run_id, "cells.jsonl").read_text()
    assert [json.loads(line)["execution_count"] for line in records.splitlines()] == [2, 3, 4]
    assert not (tmp_path / ".mlops" / "mlflow.db").exists()


def test_diff_review_and_history_of_runs_on_the_team_server(
    team_server: MlflowServer, team_project: TeamProject, team_main: Main
) -> None:
    main = team_main
    root, (first, second) = team_project.root, team_project.runs
    # diff of the two runs' executed notebooks, fetched through the server
    diff = team_cli(team_server, root, "diff", first, second, "--color", "never")
    assert diff.returncode == 0, diff.stderr
    assert "-  lr = 0.3" in diff.stdout and "+  lr = 0.5" in diff.stdout
    # a review of the second run: its base is the run before it, found on the server
    code, out, err = main(root, "review", "open", second, "--user", "ada", "--json")
    assert code == 0, err
    review = json.loads(out)
    assert review["base"]["ref"] == f"run:{first}"
    code, _, err = main(
        root,
        "review",
        "comment",
        review["id"],
        "--cell",
        review["cells"][3],
        "why?",
        "--user",
        "bob",
    )
    assert code == 0, err
    approved = team_cli(
        team_server, root, "review", "approve", review["id"], "-m", "fine", "--user", "bob"
    )
    assert approved.returncode == 0, approved.stderr
    assert f"review {review['id']}: approved by bob" in approved.stdout
    client = MlflowClient(team_server.uri)
    tags = client.get_run(second).data.tags
    assert tags["mlops.review.state"] == "approved" and tags["mlops.review.id"] == review["id"]
    record = json.loads(
        server_artifact(team_server, second, f"reviews/{review['id']}.json").read_text()
    )
    assert [e["action"] for e in record["events"]] == ["opened", "commented", "approved"]
    code, out, err = main(root, "review", "list", "--state", "approved")
    assert code == 0 and review["id"] in out, err
    # the notebook's history across the runs of the server
    code, out, err = main(root, "history", NOTEBOOK, "--json")
    assert code == 0, err
    entries = json.loads(out)
    assert [e["run_id"] for e in entries] == [first, second]
    assert entries[0]["digest"] == entries[1]["digest"]


def test_register_promote_lineage_and_a_fresh_process_loads_the_champion(
    team_server: MlflowServer, team_project: TeamProject, team_main: Main
) -> None:
    main = team_main
    root = team_project.root
    # Given a notebook that registers a classifier with %mlops_register, in a team kernel
    notebook = root / "register_sklearn.ipynb"
    notebook.write_text((TESTS / "notebooks" / notebook.name).read_text())
    with running_kernel(notebook, MLFLOW_TRACKING_URI=team_server.uri, **HTTP_LIMITS) as kernel:
        cells = [kernel.run(index) for index in range(len(kernel.nb.cells))]
    said = stream_text(cells[4], "stdout")
    assert "registered iris-clf version 1 (models:/iris-clf/1)" in said, cells[4].outputs
    client = MlflowClient(team_server.uri)
    run = only_run(client, "register-test")
    assert run.info.status == "FINISHED"
    version = client.get_model_version_by_alias("iris-clf", "candidate")
    assert version.version == "1" and version.tags["mlops.run_id"] == run.info.run_id
    assert server_artifact(team_server, run.info.run_id, "models/iris-clf/MLmodel").is_file()
    # `jupyter mlops register` of the model the run logged, under another name
    code, out, err = main(
        root, "register", run.info.run_id, "--artifact", "models/iris-clf", "--name", "iris-team"
    )
    assert code == 0 and "registered iris-team version 1" in out, err
    # the policy gates champion: refused without a review, allowed after an approved one
    code, _, err = main(root, "promote", "iris-clf", "1", "--alias", "champion")
    assert code == 1 and "approved review" in err, err
    code, out, err = main(root, "review", "open", "models:/iris-clf/1", "--json")
    assert code == 0, err
    review = json.loads(out)["id"]
    assert main(root, "review", "approve", review)[0] == 0
    promoted = team_cli(team_server, root, "promote", "iris-clf", "1", "--alias", "champion")
    assert promoted.returncode == 0, promoted.stderr
    assert "models:/iris-clf@champion -> version 1" in promoted.stdout
    code, out, err = main(root, "lineage", "models:/iris-clf@champion", "--json")
    assert code == 0, err
    lineage = json.loads(out)
    assert lineage["model"]["version"] == "1" and "champion" in lineage["model"]["aliases"]
    assert lineage["run"]["id"] == run.info.run_id
    assert lineage["review"]["id"] == review
    assert lineage["notebook"]["path"] == str(notebook)
    # A fresh process with only MLflow (jupyter_mlops unimportable) loads the champion
    code_text = (
        "import sys; sys.modules['jupyter_mlops'] = None\n"
        "import json, mlflow.pyfunc, pandas as pd\n"
        "rows = pd.read_json(sys.stdin, orient='split')\n"
        "model = mlflow.pyfunc.load_model('models:/iris-clf@champion')\n"
        "print(json.dumps([int(v) for v in model.predict(rows)]))\n"
    )
    iris = load_iris(as_frame=True)
    rows = iris.data.sample(15, random_state=1)
    loaded = subprocess.run(
        [sys.executable, "-c", code_text],
        input=rows.to_json(orient="split"),
        env=team_env(team_server),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    expected = LogisticRegression(C=0.5, max_iter=500).fit(iris.data, iris.target).predict(rows)
    assert json.loads(loaded.stdout.strip().splitlines()[-1]) == expected.tolist()


@pytest.fixture
def dask_scheduler(tmp_path: Path) -> Iterator[str]:
    """A Dask scheduler and two workers on loopback, started with no tracking location."""
    port = str(free_port())
    address = f"tcp://127.0.0.1:{port}"
    dask = str(VENV_BIN / "dask")
    with (tmp_path / "dask.log").open("wb") as log:
        common: dict = {"env": clean_env(), "stdout": log, "stderr": subprocess.STDOUT}
        processes = [
            subprocess.Popen(
                [dask, "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"],
                start_new_session=True,
                **common,
            )
        ]
        worker = [dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"]
        processes += [
            subprocess.Popen(
                [*worker, "--host", "127.0.0.1"], cwd=tmp_path, start_new_session=True, **common
            )
            for _ in range(2)
        ]
        try:
            from distributed import Client

            with Client(address, timeout=30) as client:
                client.wait_for_workers(2, timeout=90)
            yield address
        finally:
            for process in reversed(processes):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


def test_dask_batch_writes_through_workers_that_know_no_tracking_location(
    team_server: MlflowServer,
    dask_scheduler: str,
    tmp_path: Path,
) -> None:
    # The workers' environment names no tracking location; only the user's shell does
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "team-dask"\n')
    (tmp_path / "dask_point.ipynb").write_text((TESTS / "notebooks/dask_point.ipynb").read_text())
    result = team_cli(
        team_server,
        tmp_path,
        "batch",
        "dask_point.ipynb",
        "--grid",
        "point=1,2",
        "-p",
        "seconds",
        "0",
        "--executor",
        "dask",
        "--scheduler",
        dask_scheduler,
        "--experiment",
        "team-dask",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    client = MlflowClient(team_server.uri)
    experiment = client.get_experiment_by_name("team-dask")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(int(r.data.params["point"]) for r in children) == [1, 2]
    for run in runs:
        assert run.info.status == "FINISHED", run.info
    for child in children:
        history = client.get_metric_history(child.info.run_id, "value")
        assert [m.value for m in history] == [10 * int(child.data.params["point"])]


def test_rest_api_of_a_lab_on_the_team_server(
    team_server: MlflowServer, team_project: TeamProject, tmp_path: Path
) -> None:
    lab = start_lab(team_project.root, tmp_path, env=team_env(team_server))
    try:
        status, body = lab.api("/jupyter-mlops/api/status")
        assert status == 200, body
        assert body["tracking"]["uri"] == team_server.uri
        assert body["tracking"]["source"] == "environment"
        assert body["store"]["ok"] is True, body
        first, second = team_project.runs
        status, diff = lab.api(f"/jupyter-mlops/api/diff?a={first}&b={second}")
        assert status == 200, diff
        assert diff["a"]["ref"] == first and diff["b"]["ref"] == second
        assert "lr = 0.3" in json.dumps(diff["base"]) and diff["diff"]
        status, reviews = lab.api("/jupyter-mlops/api/reviews")
        assert status == 200, reviews
    finally:
        stop_lab(lab)
