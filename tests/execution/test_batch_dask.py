"""``batch --executor dask``: a real scheduler and two workers on loopback, a real mlflow server.

A worker killed while it runs a point: Dask runs the task again on the other worker, and the
retry writes into the run the orchestrator opened for that point, so no point has two runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from mlflow_server import MlflowServer

from conftest import VENV_BIN, clean_env, copy_notebook, free_port


@dataclass
class DaskCluster:
    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]


def _wait_for_workers(address: str, count: int, timeout: float = 90) -> None:
    from distributed import Client

    with Client(address, timeout=30) as client:
        client.wait_for_workers(count, timeout=timeout)


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[DaskCluster]:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = clean_env()
    log = (tmp_path / "dask.log").open("wb")
    common = {"env": env, "stdout": log, "stderr": subprocess.STDOUT, "start_new_session": True}
    scheduler = subprocess.Popen(
        [
            str(VENV_BIN / "dask"),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-dashboard",
        ],
        **common,  # type: ignore[call-overload]
    )
    workers = [
        subprocess.Popen(
            [
                str(VENV_BIN / "dask"),
                "worker",
                address,
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
            ],
            cwd=tmp_path,
            **common,  # type: ignore[call-overload]
        )
        for _ in range(2)
    ]
    cluster = DaskCluster(address, scheduler, workers)
    try:
        _wait_for_workers(address, 2)
        yield cluster
    finally:
        for process in [*workers, scheduler]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        log.close()


def _kernel_parents() -> dict[int, str]:
    """``{parent pid: run id}`` of the kernels started for batch points right now."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue
        run = [v for v in environ if v.startswith(b"JUPYTER_MLOPS_RUN_ID=")]
        if run:
            ppid = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
            found[int(ppid)] = run[0].split(b"=", 1)[1].decode()
    return found


def test_worker_killed_mid_point_reruns_without_a_duplicate_run(
    project: Path, dask_cluster: DaskCluster, mlflow_server: MlflowServer
) -> None:
    copy_notebook("dask_point.ipynb", project)
    process = subprocess.Popen(
        [
            str(VENV_BIN / "jupyter-mlops"),
            "--tracking-uri",
            mlflow_server.uri,
            "batch",
            "dask_point.ipynb",
            "--grid",
            "point=1,2,3,4",
            "-p",
            "seconds",
            "6",
            "--executor",
            "dask",
            "--scheduler",
            dask_cluster.address,
            "--workers",
            "2",
        ],
        cwd=project,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    worker_pids = {w.pid for w in dask_cluster.workers}
    victim_run = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and victim_run is None:
        assert process.poll() is None, process.communicate()
        for parent, run_id in _kernel_parents().items():
            if parent in worker_pids:
                os.kill(parent, signal.SIGKILL)  # the worker, mid-point
                victim_run = run_id
                break
        time.sleep(0.2)
    assert victim_run is not None, "no point ever started on a Dask worker"
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, f"{out}\n{err}"
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    batch_id = next(
        line.split()[1].rstrip(":") for line in out.splitlines() if "points finished" in line
    )
    parent = client.get_run(batch_id)
    runs = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{batch_id}'"
    )
    points = sorted(int(r.data.params["point"]) for r in runs)
    assert points == [1, 2, 3, 4], "every point exactly once: no duplicate run for the retry"
    assert all(r.info.status == "FINISHED" for r in runs)
    victim = client.get_run(victim_run)
    assert victim.info.status == "FINISHED"
    assert victim.data.metrics["value"] == 10 * int(victim.data.params["point"])
