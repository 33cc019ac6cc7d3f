"""``/jupyter-mlops/api/batches``: a batch started, followed and stopped from a real Lab."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_under_test import store_client

from conftest import TESTS, LabServer, clean_env, copy_notebook, start_lab, stop_lab

pytestmark = pytest.mark.server
API = "/jupyter-mlops/api/batches"


def wait_done(lab: LabServer, job_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, job = lab.api(f"{API}/{job_id}")
        assert status == 200, job
        if job["state"] != "running":
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.5)


def test_a_batch_runs_from_the_server_and_reports_its_points(lab: LabServer) -> None:
    copy_notebook("run_params.ipynb", lab.root)
    # When a two-point sweep is started over REST
    status, job = lab.api(
        API,
        method="POST",
        body={"notebook": "run_params.ipynb", "grid": {"lr": [0.1, 0.2]}, "workers": 2},
    )
    assert status == 202, job
    assert job["state"] == "running" and job["points"] == 2
    # Then it finishes, its progress counted from the command's own lines
    done = wait_done(lab, job["id"])
    assert (done["state"], done["done"], done["failed"]) == ("finished", 2, 0), done["log"]
    assert done["created_by"]
    listed = lab.api(API)[1]["batches"]
    assert job["id"] in [j["id"] for j in listed]
    # and the store has the batch with its two child runs
    client = store_client(lab.root)
    parent = client.get_run(done["batch_run_id"])
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert sorted(c.data.params["lr"] for c in children) == ["0.1", "0.2"]
    assert {c.info.status for c in children} == {"FINISHED"}


def test_a_running_batch_stops_with_its_runs_killed(lab: LabServer) -> None:
    copy_notebook("run_slow_cell.ipynb", lab.root)
    status, job = lab.api(
        API, method="POST", body={"notebook": "run_slow_cell.ipynb", "grid": {"seconds": [60]}}
    )
    assert status == 202, job
    log = lab.root / ".mlops" / "batches" / f"{job['id']}.log"
    deadline = time.monotonic() + 120
    client = store_client(lab.root)

    def running_child() -> bool:
        experiments = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(experiments, filter_string="params.seconds = '60'")
        return any(r.info.status == "RUNNING" for r in runs)

    while not (log.exists() and running_child()):
        assert time.monotonic() < deadline, log.read_text() if log.exists() else "no log"
        time.sleep(0.5)
    status, stopping = lab.api(f"{API}/{job['id']}", method="DELETE")
    assert status == 200 and stopping["id"] == job["id"]
    stopped = wait_done(lab, job["id"], timeout=90)
    assert stopped["state"] == "stopped", stopped
    assert "--resume" in stopped["log"]
    assert not running_child()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"notebook": "../outside.ipynb", "grid": {"x": [1]}}, 403),
        ({"notebook": "/etc/passwd", "grid": {"x": [1]}}, 403),
        ({"notebook": "missing.ipynb", "grid": {"x": [1]}}, 404),
        ({"notebook": "run_params.ipynb", "grid": {}}, 400),
        ({"notebook": "run_params.ipynb", "grid": {"1x": [1]}}, 400),
        ({"notebook": "run_params.ipynb", "grid": {"lr": ["a,b"]}}, 400),
        ({"notebook": "run_params.ipynb", "grid": {"lr": []}}, 400),
        ({"notebook": "run_params.ipynb", "grid": {"lr": [1]}, "workers": 0}, 400),
        ({"notebook": "run_params.ipynb", "grid": {"lr": [1]}, "workers": True}, 400),
        ({"grid": {"lr": [1]}}, 400),
    ],
)
def test_bad_batch_requests_are_refused_before_anything_runs(
    lab: LabServer, body: dict, status: int
) -> None:
    copy_notebook("run_params.ipynb", lab.root)
    before = len(lab.api(API)[1]["batches"])
    got, answer = lab.api(API, method="POST", body=body)
    assert got == status, answer
    assert answer["message"]
    assert len(lab.api(API)[1]["batches"]) == before


def test_unknown_job_is_404(lab: LabServer) -> None:
    status, body = lab.api(f"{API}/bj-00000000")
    assert (status, body["code"]) == (404, "not_found")


@pytest.fixture(scope="module")
def lab_without_execute(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    workdir = tmp_path_factory.mktemp("lab-noexec")
    root = workdir / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "noexec"\n')
    runtime = workdir / "runtime"
    runtime.mkdir()
    env = clean_env(JUPYTER_RUNTIME_DIR=str(runtime), PYTHONPATH=str(TESTS))
    server = start_lab(
        root,
        workdir,
        env=env,
        extra_args=("--ServerApp.authorizer_class=deny_execute_authorizer.DenyExecute",),
    )
    yield server
    stop_lab(server)


def test_starting_a_batch_needs_the_execute_permission(lab_without_execute: LabServer) -> None:
    lab = lab_without_execute
    copy_notebook("run_params.ipynb", Path(lab.root))
    status, _ = lab.api(
        API, method="POST", body={"notebook": "run_params.ipynb", "grid": {"lr": [1]}}
    )
    assert status == 403
    assert lab.api(API)[0] == 200  # reading is allowed
    assert not (Path(lab.root) / ".mlops" / "batches").exists()
