"""``jupyter mlops batch``: sweeps in fresh kernels, parallel writers on SQLite, resume, stop."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from test_run import kernels_with_run, store

from conftest import VENV_BIN, clean_env, copy_notebook, processes_with_env, run_cli


def cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(project, "batch", *args)


def children(client: MlflowClient, batch_id: str) -> list[Any]:
    parent = client.get_run(batch_id)
    return list(
        client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{batch_id}'")
    )


def batch_id_of(stdout: str) -> str:
    for line in stdout.splitlines():
        if line.startswith("batch ") and "points finished" in line:
            return line.split()[1].rstrip(":")
    raise AssertionError(f"no batch id in:\n{stdout}")


def test_parallel_points_lose_no_metric_value_on_sqlite(project: Path) -> None:
    copy_notebook("batch_metrics.ipynb", project)
    result = cli(
        project, "batch_metrics.ipynb", "--grid", "point=1,2,3,4,5,6,7,8", "--workers", "4"
    )
    assert result.returncode == 0, result.stderr
    client = store(project)
    runs = children(client, batch_id_of(result.stdout))
    assert sorted(int(r.data.params["point"]) for r in runs) == list(range(1, 9))
    for run in runs:
        point = int(run.data.params["point"])
        history = client.get_metric_history(run.info.run_id, "value")
        assert sorted((m.step, m.value) for m in history) == [
            (step, point * 1000 + step) for step in range(100)
        ], f"point {point} lost or duplicated values"
        assert run.info.status == "FINISHED"
    parent = client.get_run(batch_id_of(result.stdout))
    assert parent.info.status == "FINISHED" and parent.data.tags["mlops.kind"] == "batch"


def test_failing_point_does_not_stop_the_others_and_resume_reruns_only_it(
    project: Path,
) -> None:
    notebook = copy_notebook("run_params.ipynb", project)
    first = cli(
        project,
        "run_params.ipynb",
        "--grid",
        "epochs=1,2,3",
        "-p",
        "fail_at",
        "2",
        "--sort",
        "score",
    )
    assert first.returncode == 1, first.stderr
    batch = batch_id_of(first.stdout)
    assert "epochs=2 fails on purpose" in first.stderr
    assert f"--resume {batch}" in first.stderr
    table = first.stdout.splitlines()
    assert table[0].split()[:5] == ["#", "epochs", "fail_at", "status", "score"]
    statuses = [line.split()[3] for line in table[2:5]]
    assert statuses == ["FINISHED", "FINISHED", "FAILED"], "sorted by score, failed last"
    client = store(project)
    assert sorted(r.info.status for r in children(client, batch)) == [
        "FAILED",
        "FINISHED",
        "FINISHED",
    ]

    # The user fixes the notebook, then resumes: only the failed point runs again.
    nb = json.loads(notebook.read_text())
    nb["cells"] = [c for c in nb["cells"] if "fails on purpose" not in "".join(c["source"])]
    notebook.write_text(json.dumps(nb))
    second = cli(project, "run_params.ipynb", "--resume", batch)
    assert second.returncode == 0, second.stderr
    runs = children(client, batch)
    assert len(runs) == 4, "one new run, for the one point that had failed"
    rerun = [r for r in runs if r.data.params["epochs"] == "2"]
    assert sorted(r.info.status for r in rerun) == ["FAILED", "FINISHED"]
    assert len({r.data.tags["mlops.point_key"] for r in runs}) == 3
    assert client.get_run(batch).info.status == "FINISHED"


def test_max_failures_stops_the_batch(project: Path) -> None:
    copy_notebook("run_params.ipynb", project)
    result = cli(
        project,
        "run_params.ipynb",
        "--grid",
        "fail_at=1,2,3,4,5",
        "-p",
        "epochs",
        "1",
        "--workers",
        "1",
        "--max-failures",
        "1",
    )
    assert result.returncode == 1
    assert "stopped after 1 failed point (--max-failures 1)" in result.stderr
    statuses = [line.split()[3] for line in result.stdout.splitlines()[2:7]]
    assert statuses[0] == "FAILED" and set(statuses[1:]) == {"NOT_RUN"}
    assert len(children(store(project), batch_id_of(result.stdout))) == 1


def test_sweep_file_grid_and_points(project: Path) -> None:
    copy_notebook("run_params.ipynb", project)
    (project / "sweep.yaml").write_text("grid:\n  lr: [0.1, 0.3]\npoints:\n  - {epochs: 7}\n")
    ok = cli(project, "run_params.ipynb", "-f", "sweep.yaml", "--workers", "2")
    assert ok.returncode == 0, ok.stderr
    runs = children(store(project), batch_id_of(ok.stdout))
    points = {(r.data.params.get("lr", "-"), r.data.params.get("epochs", "-")) for r in runs}
    assert points == {("-", "7"), ("0.1", "-"), ("0.3", "-")}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--grid", "lr"], "does not parse"),
        (["--grid", "lr=0.1,"], "empty value"),
        (["--grid", "nope=1,2"], "unknown parameter nope"),
        (["-f", "broken.yaml"], "invalid YAML"),
        (["--resume", "0123456789abcdef"], "no batch 0123456789abcdef"),
        (["--grid", "lr=1", "--executor", "dask"], "needs --scheduler"),
    ],
)
def test_bad_batch_input_is_one_line_exit_2_and_nothing_written(
    project: Path, args: list[str], expected: str
) -> None:
    copy_notebook("run_params.ipynb", project)
    (project / "broken.yaml").write_text("grid: {lr: [0.1\n")
    result = cli(project, "run_params.ipynb", *args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert not (project / ".mlops").exists()


def test_ctrl_c_kills_running_points_and_leaves_the_batch_resumable(project: Path) -> None:
    copy_notebook("run_slow_cell.ipynb", project)
    process = subprocess.Popen(
        [
            str(VENV_BIN / "jupyter-mlops"),
            "batch",
            "run_slow_cell.ipynb",
            "--grid",
            "seconds=60,61,62",
            "--workers",
            "2",
        ],
        cwd=project,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    outputs = project / ".mlops" / "outputs" / "run_slow_cell"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        started = [p for p in outputs.glob("batch-*/*.ipynb") if "started" in p.read_text()]
        if len(started) == 2:
            break
        assert process.poll() is None, process.communicate()
        time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("two points never reached their sleeping cell")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    batch = batch_id_of(out)
    assert f"--resume {batch}" in err
    client = store(project)
    runs = children(client, batch)
    assert sorted(r.info.status for r in runs) == ["KILLED", "KILLED"]
    assert client.get_run(batch).info.status == "KILLED"
    for run in runs:
        assert kernels_with_run(run.info.run_id) == []
    # Kernels forked from a zygote, and those started ahead, got their run id after they
    # started (it is not in /proc/PID/environ): they and the zygote have the notebook's.
    assert kernels_for_notebook(project / "run_slow_cell.ipynb") == []
    assert "NOT_RUN" in out


def test_a_stop_whose_keyboardinterrupt_was_swallowed_still_stops_the_batch(
    project: Path,
) -> None:
    """A signal handler's exception raised inside an import-lock callback is dropped by
    Python; the batch loop asks ``interrupted`` too, so the stop is not lost."""
    from jupyter_mlops.core.settings import resolve_tracking_location
    from jupyter_mlops.execution.batch import BatchRequest, BatchRunner

    copy_notebook("run_slow_cell.ipynb", project)
    began = time.monotonic()
    reported: list[str] = []
    runner = BatchRunner(
        BatchRequest(
            notebook=project / "run_slow_cell.ipynb", grids=[("seconds", [60, 61])], workers=1
        ),
        resolve_tracking_location(cwd=project),
        on_point=lambda result: reported.append(result.status),
        interrupted=lambda: time.monotonic() - began > 8,
    )
    outcome = runner.run()
    assert outcome.interrupted
    assert time.monotonic() - began < 45
    statuses = sorted(r.status for r in outcome.results)
    assert statuses == ["KILLED", "NOT_RUN"], outcome.results
    assert reported == ["KILLED"], "the stopped point is reported as the others are"
    killed = next(r for r in outcome.results if r.status == "KILLED")
    assert store(project).get_run(killed.run_id).info.status == "KILLED"


def kernels_for_notebook(notebook: Path) -> list[int]:
    """Processes (kernels, spare ones included) started for ``notebook``."""
    return processes_with_env("JUPYTER_MLOPS_NOTEBOOK", str(notebook.resolve()))


def test_kernels_started_ahead_are_fresh_and_know_their_points_run(project: Path) -> None:
    """Workers start each point's kernel before the point (the first ones while the store
    opens): still one new kernel per point, given its own run, and none left at the end."""
    notebook = copy_notebook("batch_kernel_per_point.ipynb", project)
    result = cli(project, notebook.name, "--grid", "x=1,2,3,4,5", "--workers", "2")
    assert result.returncode == 0, result.stderr
    client = store(project)
    runs = children(client, batch_id_of(result.stdout))
    pids = set()
    for run in runs:
        executed = json.loads(Path(run.data.tags["mlops.output_notebook"]).read_text())
        code = [c for c in executed["cells"] if c["cell_type"] == "code"]
        first, last = code[0], code[-1]
        assert first["execution_count"] == 1, "the point's first cell ran in a new kernel"
        pid, run_id, x = "".join(last["outputs"][0]["text"]).split()
        assert (run_id, x) == (run.info.run_id, run.data.params["x"])
        pids.add(pid)
        assert len(run.data.tags["mlops.environment_hash"]) == 64
        listing = Path(client.download_artifacts(run.info.run_id, "environment.txt", str(project)))
        assert "ipykernel==" in listing.read_text()
    assert len(pids) == len(runs) == 5, "one kernel per point"
    assert kernels_for_notebook(notebook) == [], "no kernel outlives the batch"


def test_a_point_whose_kernel_dies_fails_alone_and_leaves_no_process(project: Path) -> None:
    """The kernels are forked (kernel_forks.py): the death of one is still seen, as a
    failed point with its partial output, while the other point finishes."""
    notebook = copy_notebook("batch_point_kernel_dies.ipynb", project)
    result = cli(project, notebook.name, "--grid", "die=True,False", "--workers", "2")
    assert result.returncode == 1, result.stderr
    assert "kernel died" in result.stderr
    runs = {r.data.params["die"]: r for r in children(store(project), batch_id_of(result.stdout))}
    assert runs["True"].info.status == "FAILED" and runs["False"].info.status == "FINISHED"
    executed = Path(runs["True"].data.tags["mlops.output_notebook"]).read_text()
    assert "about to die True" in executed
    assert kernels_for_notebook(notebook) == [], "no kernel or zygote outlives the batch"
