"""``jupyter mlops run``: real kernels through Papermill, checked in the real SQLite store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from store_under_test import store_client

from jupyter_mlops.core.errors import InvalidNotebookError, NotFoundError, UsageError
from jupyter_mlops.core.secrets import MASK
from jupyter_mlops.core.settings import resolve_tracking_location
from jupyter_mlops.execution.runner import RunOutcome, RunRequest, run_notebook

from conftest import VENV_BIN, clean_env, copy_notebook, processes_with_env, run_cli


def run_in_process(project: Path, name: str, **request: Any) -> RunOutcome:
    notebook = copy_notebook(name, project)
    return run_notebook(RunRequest(notebook=notebook, **request), resolve_tracking_location())


def cli(project: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return run_cli(project, *args, timeout=timeout)


def store(project: Path) -> MlflowClient:
    return store_client(project)


def runs_of(client: MlflowClient, experiment: str) -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment}"
    return list(client.search_runs([exp.experiment_id]))


def artifact(client: MlflowClient, run_id: str, path: str, tmp: Path) -> str:
    return Path(client.download_artifacts(run_id, path, str(tmp))).read_text()


def kernels_with_run(run_id: str) -> list[int]:
    """Processes (kernels) whose environment names this run: none may outlive the runner."""
    return processes_with_env("JUPYTER_MLOPS_RUN_ID", run_id)


def executed_text(path: Path) -> str:
    nb = json.loads(path.read_text())
    parts = []
    for cell in nb["cells"]:
        parts.append("".join(cell["source"]))
        for output in cell.get("outputs", []):
            parts.append("".join(output.get("text", "")))
            parts.append(str(output.get("evalue", "")))
    return "\n".join(parts)


def test_run_tracks_params_metrics_snapshot_and_executed_notebook(
    project: Path, tmp_path: Path
) -> None:
    outcome = run_in_process(
        project, "run_params.ipynb", params={"lr": 0.5, "epochs": 4, "label": "tuned"}
    )
    assert outcome.ok, outcome.summary()
    client = store(project)
    runs = runs_of(client, "run_params")
    assert len(runs) == 1, "the kernel must write into the runner's run, not open its own"
    run = runs[0]
    assert run.info.run_id == outcome.run_id
    assert run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.5", "epochs": "4", "label": "tuned"}
    assert run.data.metrics["score"] == pytest.approx(1 - 1 / (1 + 0.5 * 4), abs=1e-6)
    curve = client.get_metric_history(run.info.run_id, "curve")
    assert sorted((m.step, m.value) for m in curve) == [(s, 0.5 * s) for s in range(4)]
    tags = run.data.tags
    assert tags["mlops.kind"] == "run"
    assert tags["mlops.input_notebook"] == str(project / "run_params.ipynb")
    snapshot = artifact(
        client, run.info.run_id, f"snapshots/{tags['mlops.input_snapshot']}.ipynb", tmp_path
    )
    assert "fail_at = -1" in snapshot and "# Parameters" not in snapshot
    executed = artifact(client, run.info.run_id, "executed/run_params.ipynb", tmp_path)
    assert "# Parameters" in executed and "tuned 0.666667" in executed
    typed = json.loads(artifact(client, run.info.run_id, "parameters.json", tmp_path))
    assert typed == {"lr": 0.5, "epochs": 4, "label": "tuned"}
    assert "cells.jsonl" in [a.path for a in client.list_artifacts(run.info.run_id)]
    assert outcome.output_path.is_file()
    assert outcome.output_path.is_relative_to(project / ".mlops" / "outputs")
    assert kernels_with_run(outcome.run_id) == []


def test_failing_cell_exits_1_keeps_executed_notebook_and_fails_the_run(
    project: Path, tmp_path: Path
) -> None:
    copy_notebook("run_failing_cell.ipynb", project)
    result = cli(project, "run", "run_failing_cell.ipynb", "--output", "out/failed.ipynb")
    assert result.returncode == 1, result.stderr
    message = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(message) == 1, result.stderr
    assert "code cell 3" in message[0] and "ZeroDivisionError" in message[0]
    output = project / "out" / "failed.ipynb"
    assert str(output) in message[0]
    text = executed_text(output)
    assert "this output is kept" in text and "division by zero" in text
    run = runs_of(store(project), "run_failing_cell")[0]
    assert run.info.status == "FAILED"
    assert "ZeroDivisionError" in run.data.tags["mlops.failure"]
    executed = artifact(
        store(project), run.info.run_id, "executed/run_failing_cell.ipynb", tmp_path
    )
    assert "division by zero" in executed


@pytest.mark.parametrize(("code", "status"), [(0, "FINISHED"), (1, "FAILED")])
def test_sys_exit_zero_succeeds_and_nonzero_fails(project: Path, code: int, status: str) -> None:
    outcome = run_in_process(project, "run_sys_exit.ipynb", params={"code": code})
    assert outcome.status == status, outcome.summary()
    if code:
        assert outcome.failure is not None and outcome.failure.ename == "SystemExit"
    assert runs_of(store(project), "run_sys_exit")[0].info.status == status


def test_cell_timeout_fails_the_run_and_stops_the_kernel(project: Path) -> None:
    outcome = run_in_process(
        project, "run_slow_cell.ipynb", params={"seconds": 120}, cell_timeout=3
    )
    assert outcome.status == "FAILED"
    assert outcome.failure is not None and outcome.failure.kind == "timeout"
    assert (
        "code cell 4 (In [4]) `import time` ran longer than --cell-timeout 3s" in outcome.summary()
    )
    assert "started" in executed_text(outcome.output_path)
    assert outcome.duration_s < 60
    assert kernels_with_run(outcome.run_id) == []


def test_dead_kernel_fails_the_run_with_partial_output(project: Path) -> None:
    outcome = run_in_process(project, "run_dead_kernel.ipynb")
    assert outcome.status == "FAILED"
    assert outcome.failure is not None and outcome.failure.kind == "dead_kernel"
    assert "kernel died" in outcome.summary()
    assert "about to die" in executed_text(outcome.output_path)
    assert runs_of(store(project), "run_dead_kernel")[0].info.status == "FAILED"


def start_run(project: Path, notebook: str, output: Path) -> subprocess.Popen[str]:
    """``jupyter mlops run NOTEBOOK --output OUTPUT`` in the background, output piped."""
    return subprocess.Popen(
        [str(VENV_BIN / "jupyter-mlops"), "run", notebook, "--output", str(output)],
        cwd=project,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_kills_the_run_keeps_output_and_leaves_no_kernel(project: Path) -> None:
    copy_notebook("run_slow_cell.ipynb", project)
    output = project / "slow-out.ipynb"
    process = start_run(project, "run_slow_cell.ipynb", output)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if output.is_file() and "started" in executed_text(output):
            break
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("the slow notebook never reached its sleeping cell")
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=90)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "KILLED" in err and str(output) in err
    run = runs_of(store(project), "run_slow_cell")[0]
    assert run.info.status == "KILLED"
    assert "started" in executed_text(output)
    assert kernels_with_run(run.info.run_id) == []


def test_strict_parameters(project: Path) -> None:
    copy_notebook("run_params.ipynb", project)
    copy_notebook("run_no_parameters_cell.ipynb", project)
    unknown = cli(project, "run", "run_params.ipynb", "-p", "lrr", "0.1")
    assert unknown.returncode == 2
    assert "unknown parameter lrr" in unknown.stderr and "lr, epochs, label" in unknown.stderr
    no_cell = cli(project, "run", "run_no_parameters_cell.ipynb", "-p", "value", "1")
    assert no_cell.returncode == 2 and "no cell tagged 'parameters'" in no_cell.stderr
    not_identifier = cli(project, "run", "run_params.ipynb", "-p", "learning-rate", "1")
    assert not_identifier.returncode == 2 and "not a Python identifier" in not_identifier.stderr
    assert not (project / ".mlops").exists(), "a refused run must write nothing"
    relaxed = cli(
        project, "run", "run_no_parameters_cell.ipynb", "-p", "value", "7", "--allow-unknown-params"
    )
    assert relaxed.returncode == 0, relaxed.stderr
    assert runs_of(store(project), "run_no_parameters_cell")[0].data.params == {"value": "7"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["missing.ipynb"], "does not exist"),
        (["malformed.ipynb"], "is not a notebook: invalid JSON at line"),
        (["run_params.ipynb", "-y", "lr: [0.1"], "invalid YAML"),
        (["run_params.ipynb", "-f", "nope.yaml"], "parameters file nope.yaml does not exist"),
        (["run_params.ipynb", "--kernel", "no-such-kernel"], "no kernel named 'no-such-kernel'"),
        (["run_params.ipynb", "--output", "x.txt"], "must end in .ipynb"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    project: Path, args: list[str], expected: str
) -> None:
    copy_notebook("malformed.ipynb", project)
    copy_notebook("run_params.ipynb", project)
    result = cli(project, "run", *args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert not (project / ".mlops").exists()


def test_parameters_file_yaml_and_pairs_merge_in_papermill_order(project: Path) -> None:
    (project / "params.yaml").write_text("lr: 0.2\nepochs: 2\nlabel: from-file\n")
    copy_notebook("run_params.ipynb", project)
    result = cli(
        project,
        "run",
        "run_params.ipynb",
        "-f",
        "params.yaml",
        "-y",
        "epochs: 5",
        "-p",
        "label",
        "from-cli",
        "--output",
        "out/{label}-{epochs}.ipynb",
    )
    assert result.returncode == 0, result.stderr
    assert (project / "out" / "from-cli-5.ipynb").is_file()
    run = runs_of(store(project), "run_params")[0]
    assert run.data.params == {"lr": "0.2", "epochs": "5", "label": "from-cli"}


def test_a_param_value_cannot_move_the_output_out_of_its_folder(project: Path) -> None:
    outcome = run_in_process(
        project,
        "run_params.ipynb",
        params={"label": "../../escape"},
        output=project / "out" / "{label}.ipynb",
    )
    assert outcome.ok, outcome.summary()
    assert outcome.output_path.parent == project / "out"
    assert list((project / "out").iterdir()) == [outcome.output_path]


def test_errors_raised_before_the_store_is_touched(project: Path) -> None:
    location = resolve_tracking_location()
    with pytest.raises(NotFoundError):
        run_notebook(RunRequest(notebook=project / "nope.ipynb"), location)
    with pytest.raises(InvalidNotebookError):
        run_notebook(RunRequest(notebook=copy_notebook("malformed.ipynb", project)), location)
    with pytest.raises(UsageError, match="placeholders are allowed in the file name only"):
        run_notebook(
            RunRequest(
                notebook=copy_notebook("run_params.ipynb", project),
                output=Path("{label}/x.ipynb"),
            ),
            location,
        )
    assert not (project / ".mlops").exists()
    assert os.environ.get("JUPYTER_MLOPS_RUN_ID") is None


def test_a_secret_named_parameter_is_masked_in_params_and_parameters_json(
    project: Path, tmp_path: Path
) -> None:
    outcome = run_in_process(
        project,
        "run_no_parameters_cell.ipynb",
        params={"api_token": "swordfish", "value": 7},
        allow_unknown_params=True,
    )
    assert outcome.ok, outcome.summary()
    client = store(project)
    run = client.get_run(outcome.run_id)
    assert run.data.params == {"api_token": MASK, "value": "7"}
    recorded = artifact(client, outcome.run_id, "parameters.json", tmp_path)
    assert json.loads(recorded) == {"api_token": MASK, "value": 7}
    assert "swordfish" not in recorded


def test_a_cell_that_missed_the_interrupt_is_interrupted_again_and_its_records_kept(
    project: Path,
) -> None:
    """The first interrupt can land while the kernel is idle (ignored) with the next cell
    queued; that cell then runs and the kernel cannot take the shutdown request. Here the
    cell ignores the first interrupt: a second one ends it, and the kernel exits cleanly,
    writing what the cell logged (a terminated kernel would lose it)."""
    copy_notebook("run_ignores_first_interrupt.ipynb", project)
    output = project / "ignores-out.ipynb"
    process = start_run(project, "run_ignores_first_interrupt.ipynb", output)
    deadline = time.monotonic() + 90
    while not (project / "sleeping").is_file():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the notebook never reached its long cell"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=90)
    assert process.returncode == 128 + signal.SIGTERM, err
    run = runs_of(store(project), "run_ignores_first_interrupt")[0]
    assert run.info.status == "KILLED"
    assert run.data.metrics.get("interrupts") == 2, run.data.metrics
    assert kernels_with_run(run.info.run_id) == []


class KernelStoppedMidShutdown:
    """A kernel manager whose graceful shutdown a stop signal interrupts (unit: faked)."""

    has_kernel = True

    def __init__(self) -> None:
        self.alive = True
        self.killed = False

    def is_alive(self) -> bool:
        return self.alive

    def interrupt_kernel(self) -> None:
        pass

    def request_shutdown(self) -> None:
        pass

    def finish_shutdown(self, pollinterval: float) -> None:
        raise KeyboardInterrupt

    def shutdown_kernel(self, now: bool = False) -> None:
        self.killed, self.alive = now, False


def test_a_stop_signal_during_the_kernels_shutdown_kills_it_and_still_stops_the_run() -> None:
    from jupyter_mlops.execution.runner import _shutdown

    km = KernelStoppedMidShutdown()
    with pytest.raises(KeyboardInterrupt):
        _shutdown(km, busy=False)
    assert km.killed and not km.alive
