"""``%mlops_runs``: the table widget in a real kernel, and its sorting and compare button."""

from __future__ import annotations

from pathlib import Path

import nbformat
from mlflow.tracking import MlflowClient
from nbrun import running_kernel, stream_text
from store_under_test import location_for

from jupyter_mlops.kernel.runs_widget import RunsTable, load_runs

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def make_runs(project: Path) -> None:
    location = location_for(project)
    from jupyter_mlops.tracking.mlflow_store import MlflowRunStore

    store = MlflowRunStore(location)  # creates the database with our artifact folder
    client: MlflowClient = store.client
    experiment = client.create_experiment("sweep")
    for lr, acc in (("0.1", 0.91), ("0.01", 0.97), ("1", 0.62)):
        run = client.create_run(experiment, run_name=f"lr-{lr}")
        client.log_param(run.info.run_id, "lr", lr)
        client.log_param(run.info.run_id, "model", "rf")
        client.log_metric(run.info.run_id, "acc", acc)
        client.set_terminated(run.info.run_id)


def test_table_sorts_and_compares_in_the_kernel(project: Path) -> None:
    # Given three runs in the project's store
    make_runs(project)
    runs = load_runs(location_for(project), "sweep", "", 50)
    table = RunsTable(runs, "experiment 'sweep'")
    assert table.widget is not None
    # When the user sorts by the metric, ascending
    table.sort.value = "metrics.acc"
    table.order.value = "asc"
    # Then the rendered table follows, and the plain twin too
    html = table.table.value
    assert html.index("lr-1") < html.index("lr-0.1") < html.index("lr-0.01")
    plain = table.plain().splitlines()
    assert plain[0] == "experiment 'sweep': 3 runs"
    assert [line.split()[0] for line in plain[3:]] == ["lr-1", "lr-0.1", "lr-0.01"]
    # When two runs are selected and compared
    assert table.compare_button.disabled
    picked = [r["run_id"] for r in runs if r["run_name"] in ("lr-1", "lr-0.01")]
    table.pick.value = tuple(picked)
    assert not table.compare_button.disabled
    table.compare_button.click()
    # Then the differing values are in bold, the shared one is not
    result = table.result.value
    assert "<td><b>1</b></td>" in result and "<td><b>0.01</b></td>" in result
    assert "<td>rf</td>" in result
    # and a filter narrows the runs with MLflow's own syntax
    location = location_for(project)
    assert len(load_runs(location, "sweep", "metrics.acc > 0.9", 50)) == 2


def test_magic_shows_widget_and_plain_table_and_one_line_errors(project: Path) -> None:
    make_runs(project)
    notebook = project / "runs.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_mlops"),
        nbformat.v4.new_code_cell('%mlops_runs --experiment sweep --filter "metrics.acc > 0.5"'),
        nbformat.v4.new_code_cell("%mlops_runs --experiment nope"),
        nbformat.v4.new_code_cell('%mlops_runs --experiment sweep --filter "metrics.acc >>> 1"'),
    ]
    nbformat.write(nb, notebook)
    with running_kernel(notebook) as kernel:
        kernel.run(0)
        shown = kernel.run(1)
        missing = kernel.run(2)
        bad = kernel.run(3)
    data = shown.outputs[0]["data"]
    assert WIDGET_MIME in data
    assert "experiment 'sweep': 3 runs" in data["text/plain"]
    assert "lr-0.01" in data["text/plain"]
    assert stream_text(missing, "stderr").strip() == (
        "mlops_runs: there is no experiment named 'nope'"
    )
    error = stream_text(bad, "stderr").strip()
    assert error.startswith("mlops_runs: ") and len(error.splitlines()) == 1
    assert not any(o.get("output_type") == "error" for o in bad.outputs)
