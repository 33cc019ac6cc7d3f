"""Faults: a kernel or a ``jupyter mlops run`` killed with SIGKILL leaves its run RUNNING;
the heartbeat stops, and ``jupyter mlops sweep`` ends it KILLED, keeping what was logged."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import nbformat
from mlflow.tracking import MlflowClient
from nbrun import running_kernel
from store_under_test import store_client

from conftest import VENV_BIN, clean_env, copy_notebook, run_cli

BEAT = {"JUPYTER_MLOPS_HEARTBEAT": "0.5s"}


def client_for(project: Path) -> MlflowClient:
    return store_client(project)


def only_run(client: MlflowClient):  # type: ignore[no-untyped-def]
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1
    return runs[0]


def printed(notebook: Path) -> str:
    """The stream outputs saved in ``notebook`` so far ("" while it is not readable)."""
    try:
        nb = nbformat.read(notebook, as_version=4)
    except (OSError, ValueError):
        return ""
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


def wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_kernel_killed_in_a_tracked_cell_is_swept_killed(project: Path) -> None:
    # Given a tracked notebook whose last cell is still running
    notebook = project / "dies.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_mlops\n%mlops_track"),
        nbformat.v4.new_code_cell("%%mlops_track\nlr = 0.1\nacc = 0.5 + lr"),
        nbformat.v4.new_code_cell("import jupyter_mlops as m\nassert m.flush(30)"),
    ]
    nbformat.write(nb, notebook)
    client = client_for(project)
    with running_kernel(notebook, **BEAT) as kernel:
        for index in range(3):
            kernel.run(index)
        kernel.client.kc.execute("%%mlops_track\nimport time\ntime.sleep(120)")
        run = only_run(client)
        wait_for(lambda: "mlops.heartbeat" in client.get_run(run.info.run_id).data.tags)
        # A live run is never swept, however short the limit
        time.sleep(1.5)
        alive = run_cli(project, "sweep", "--stale-after", "1s")
        assert "0 stale RUNNING run(s) ended" in alive.stdout, alive.stdout + alive.stderr
        # When the kernel is killed mid-cell
        os.kill(kernel.client.km.provisioner.process.pid, signal.SIGKILL)
        time.sleep(2.5)
        swept = run_cli(project, "sweep", "--stale-after", "1s")
    # Then the sweep ended it KILLED and says why; what the cells logged is kept
    assert swept.returncode == 0, swept.stderr
    assert f"ended run {run.info.run_id}" in swept.stdout
    after = client.get_run(run.info.run_id)
    assert after.info.status == "KILLED"
    assert after.data.tags["mlops.swept"].startswith("no heartbeat for")
    assert after.data.metrics["acc"] == 0.6 and after.data.params["lr"] == "0.1"


def test_killed_runner_leaves_its_partial_notebook_and_is_swept(project: Path) -> None:
    copy_notebook("run_slow_cell.ipynb", project)
    process = subprocess.Popen(
        [str(VENV_BIN / "jupyter-mlops"), "run", "run_slow_cell.ipynb", "--output", "out.ipynb"],
        cwd=project,
        env=clean_env(**BEAT),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    output = project / "out.ipynb"
    try:
        # Papermill saves the output notebook after each cell: wait for the first print
        wait_for(lambda: "started" in printed(output), timeout=120)
        # When the runner and its kernel are killed with SIGKILL
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    client = client_for(project)
    run = only_run(client)
    assert run.info.status == "RUNNING"
    time.sleep(2)
    dry = run_cli(project, "sweep", "--stale-after", "1s", "--dry-run")
    assert f"would end run {run.info.run_id}" in dry.stdout
    assert client.get_run(run.info.run_id).info.status == "RUNNING"
    swept = run_cli(project, "sweep", "--stale-after", "1s")
    assert f"ended run {run.info.run_id}" in swept.stdout
    assert client.get_run(run.info.run_id).info.status == "KILLED"
    # The executed notebook up to the kill is on disk
    assert "started" in printed(output)


def running_runs(client: MlflowClient) -> list:  # type: ignore[type-arg]
    experiments = [e.experiment_id for e in client.search_experiments()]
    return (
        list(client.search_runs(experiments, "attributes.status = 'RUNNING'"))
        if experiments
        else []
    )


def assert_nothing_swept_while_it_runs(
    project: Path, args: list[str], expected_running: int
) -> None:
    """Start ``jupyter mlops ARGS`` (its notebook sleeps 8 s in a cell that tracks nothing),
    sweep with a 1 s limit while it runs: nothing is stale, and it finishes as if alone."""
    client = client_for(project)
    client.search_experiments()  # the store exists before both this test and ARGS open it
    process = subprocess.Popen(
        [str(VENV_BIN / "jupyter-mlops"), *args],
        cwd=project,
        env=clean_env(**BEAT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Given the parent and the point (or step) running, both past the limit
        seen: list[int] = []

        def all_running() -> bool:
            seen.append(len(running_runs(client)))
            assert process.poll() is None, process.communicate()
            return seen[-1] == expected_running

        wait_for(all_running, timeout=120)
        time.sleep(2)
        # When a sweep with a 1 s limit runs meanwhile
        swept = run_cli(project, "sweep", "--stale-after", "1s")
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # Then it found them alive (the orchestrator beats for them), and they finished
    assert "0 stale RUNNING run(s) ended" in swept.stdout, swept.stdout + swept.stderr
    assert process.returncode == 0, stdout + stderr
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert all("mlops.swept" not in r.data.tags for r in runs)


def test_a_running_batch_and_its_points_are_not_swept(project: Path) -> None:
    copy_notebook("run_slow_cell.ipynb", project)
    assert_nothing_swept_while_it_runs(
        project, ["batch", "run_slow_cell.ipynb", "--grid", "seconds=8", "--workers", "1"], 2
    )


def test_a_running_pipeline_and_its_step_are_not_swept(project: Path) -> None:
    copy_notebook("run_slow_cell.ipynb", project)
    (project / "mlops.yaml").write_text(
        "name: slow\nsteps:\n  sleep:\n    notebook: run_slow_cell.ipynb\n"
        "    params: {seconds: 8}\n"
    )
    assert_nothing_swept_while_it_runs(project, ["pipeline", "run"], 2)
