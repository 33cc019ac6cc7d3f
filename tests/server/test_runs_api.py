"""The run browser's endpoints on a real JupyterLab, over real papermill runs in its store."""

from __future__ import annotations

import urllib.parse

import pytest
from store_under_test import store_client

from conftest import LabServer, copy_notebook, tracked_run

pytestmark = pytest.mark.server

EXPERIMENT = "runs-api"
#: lr of each run; run_params.ipynb logs score = 1 - 1 / (1 + 3 lr) and curve = lr * step.
RATES = ("0.2", "0.5", "0.1")


@pytest.fixture(scope="module")
def runs(lab: LabServer) -> dict[str, str]:
    """Three runs of run_params.ipynb in their own experiment: {lr: run id}."""
    copy_notebook("run_params.ipynb", lab.root)
    ids = {}
    for lr in RATES:
        ids[lr] = tracked_run(
            lab.root,
            "run_params.ipynb",
            "-p",
            "lr",
            lr,
            "--experiment",
            EXPERIMENT,
            "--output",
            "runs-api-out.ipynb",
        )
    return ids


@pytest.fixture(scope="module")
def experiment_id(lab: LabServer, runs: dict[str, str]) -> str:
    status, body = lab.api("/jupyter-mlops/api/experiments")
    assert status == 200, body
    found = [e["id"] for e in body["experiments"] if e["name"] == EXPERIMENT]
    assert len(found) == 1, body
    return found[0]


def search(lab: LabServer, experiment_id: str, **params: str) -> tuple[int, dict]:
    query = urllib.parse.urlencode({"experiment": experiment_id, **params})
    return lab.api(f"/jupyter-mlops/api/runs?{query}")


def test_experiments_name_each_experiment_once(lab: LabServer, experiment_id: str) -> None:
    _, body = lab.api("/jupyter-mlops/api/experiments")
    assert all(set(e) == {"id", "name"} for e in body["experiments"])
    names = [e["name"] for e in body["experiments"]]
    assert len(names) == len(set(names))


def test_runs_come_in_pages_joined_by_the_next_page_token(
    lab: LabServer, runs: dict[str, str], experiment_id: str
) -> None:
    # When the runs are read two at a time
    status, first = search(lab, experiment_id, max_results="2")
    assert status == 200, first
    assert len(first["runs"]) == 2 and first["next_page_token"]
    status, second = search(
        lab, experiment_id, max_results="2", page_token=first["next_page_token"]
    )
    assert status == 200, second
    # Then the two pages hold every run once, newest first, and the last page says so
    assert len(second["runs"]) == 1 and second["next_page_token"] is None
    ids = [r["id"] for r in first["runs"] + second["runs"]]
    assert ids == [runs[lr] for lr in reversed(RATES)]


def test_a_run_of_the_table_has_its_params_metrics_and_our_tags(
    lab: LabServer, runs: dict[str, str], experiment_id: str
) -> None:
    _, page = search(lab, experiment_id, filter=f"attributes.run_id = '{runs['0.2']}'")
    (run,) = page["runs"]
    assert run["status"] == "FINISHED" and run["experiment_id"] == experiment_id
    assert run["start_time"] <= run["end_time"]
    assert run["params"]["lr"] == "0.2"
    assert run["metrics"]["score"] == pytest.approx(0.375)
    assert run["tags"]["mlops.notebook"].endswith("run_params.ipynb")
    assert all(k.startswith(("mlops.", "mlflow.")) for k in run["tags"])
    assert not [k for k in run["tags"] if k.startswith("mlflow.log-model")]


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ("metrics.score DESC", ["0.5", "0.2", "0.1"]),
        ("metrics.score ASC", ["0.1", "0.2", "0.5"]),
        ("metrics.score", ["0.1", "0.2", "0.5"]),
        ("params.lr DESC", ["0.5", "0.2", "0.1"]),
        ("start_time DESC", ["0.1", "0.5", "0.2"]),
    ],
)
def test_runs_are_sorted_by_the_server(
    lab: LabServer, runs: dict[str, str], experiment_id: str, order_by: str, expected: list[str]
) -> None:
    status, page = search(lab, experiment_id, order_by=order_by)
    assert status == 200, page
    assert [r["params"]["lr"] for r in page["runs"]] == expected


def test_sorting_by_a_metric_pages_in_that_order(
    lab: LabServer, runs: dict[str, str], experiment_id: str
) -> None:
    _, first = search(lab, experiment_id, order_by="metrics.score DESC", max_results="1")
    _, rest = search(
        lab,
        experiment_id,
        order_by="metrics.score DESC",
        max_results="5",
        page_token=first["next_page_token"],
    )
    assert [r["params"]["lr"] for r in first["runs"] + rest["runs"]] == ["0.5", "0.2", "0.1"]


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("params.lr = '0.2'", {"0.2"}),
        ("metrics.score > 0.3", {"0.2", "0.5"}),
        ("metrics.score > 0.3 and params.lr = '0.5'", {"0.5"}),
        ("params.lr = '9'", set()),
    ],
)
def test_the_filter_is_mlflows_search_syntax(
    lab: LabServer,
    runs: dict[str, str],
    experiment_id: str,
    filter_string: str,
    expected: set[str],
) -> None:
    status, page = search(lab, experiment_id, filter=filter_string)
    assert status == 200, page
    assert {r["params"]["lr"] for r in page["runs"]} == expected


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"filter": "metrics.score >"}, "Invalid clause"),
        ({"filter": "nonsense = 1"}, "Invalid attribute key"),
        ({"order_by": "metrics.score SIDEWAYS"}, "order"),
        ({"page_token": "not-a-token"}, "page token"),
        ({"max_results": "0"}, "max_results"),
        ({"max_results": "many"}, "max_results"),
    ],
)
def test_bad_search_input_is_a_400_with_mlflows_message(
    lab: LabServer, experiment_id: str, params: dict[str, str], says: str
) -> None:
    status, body = search(lab, experiment_id, **params)
    assert (status, body.get("code")) == (400, "usage"), body
    assert says.lower() in body["message"].lower()


def test_an_unknown_experiment_is_a_404_and_a_malformed_one_a_400(lab: LabServer) -> None:
    status, body = search(lab, "987654")
    assert (status, body.get("code")) == (404, "not_found"), body
    status, body = search(lab, "not-an-id")
    assert (status, body.get("code")) == (400, "usage"), body


def test_run_details_have_the_artifacts_and_the_cell_records(
    lab: LabServer, runs: dict[str, str]
) -> None:
    status, run = lab.api(f"/jupyter-mlops/api/runs/{runs['0.5']}")
    assert status == 200, run
    assert run["id"] == runs["0.5"] and run["params"]["lr"] == "0.5"
    assert run["metrics"]["score"] == pytest.approx(0.6)
    paths = {a["path"]: a for a in run["artifacts"]}
    assert "cells.jsonl" in paths and paths["cells.jsonl"]["size"] > 0
    assert paths["snapshots"]["is_dir"] is True
    # the tracked cell's record says it produced the score
    scored = [c for c in run["cells"] if "score" in c.get("metrics", {})]
    assert scored, run["cells"]
    assert scored[0]["metrics"]["score"] == pytest.approx(0.6)
    assert "score = round(1 - loss, 6)" in scored[0]["source"]


def test_an_unknown_run_is_a_404(lab: LabServer) -> None:
    status, body = lab.api("/jupyter-mlops/api/runs/0123456789abcdef0123456789abcdef")
    assert (status, body.get("code")) == (404, "not_found"), body
    status, body = lab.api("/jupyter-mlops/api/runs/0123456789abcdef0123456789abcdef/metrics/x")
    assert (status, body.get("code")) == (404, "not_found"), body


def test_metric_history_is_every_step(lab: LabServer, runs: dict[str, str]) -> None:
    status, body = lab.api(f"/jupyter-mlops/api/runs/{runs['0.5']}/metrics/curve")
    assert status == 200, body
    assert body["key"] == "curve"
    assert [p["step"] for p in body["history"]] == [0, 1, 2]
    assert [p["value"] for p in body["history"]] == pytest.approx([0.0, 0.5, 1.0])
    assert all(isinstance(p["timestamp"], int) for p in body["history"])


def test_an_unknown_metric_is_a_404(lab: LabServer, runs: dict[str, str]) -> None:
    status, body = lab.api(f"/jupyter-mlops/api/runs/{runs['0.5']}/metrics/nope")
    assert (status, body.get("code")) == (404, "not_found"), body
    assert "nope" in body["message"]


def test_a_metric_that_is_not_finite_is_null_so_browsers_can_parse_it(lab: LabServer) -> None:

    # Given a run that logged NaN, which MLflow keeps (it clamps infinities to the float range)
    client = store_client(lab.root)
    experiment = client.get_experiment_by_name("runs-api-nan")
    experiment_id = (
        experiment.experiment_id if experiment else client.create_experiment("runs-api-nan")
    )
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "loss", float("nan"), step=0)
    client.log_metric(run_id, "loss", 0.5, step=1)
    client.log_metric(run_id, "gain", float("nan"))
    client.set_terminated(run_id)
    # Then the API answers JSON without NaN, which browsers cannot parse: null instead
    _, run = lab.api(f"/jupyter-mlops/api/runs/{run_id}")
    assert run["metrics"] == {"gain": None, "loss": 0.5}
    _, history = lab.api(f"/jupyter-mlops/api/runs/{run_id}/metrics/loss")
    assert [p["value"] for p in history["history"]] == [None, 0.5]
    _, page = search(lab, experiment_id)
    assert page["runs"][0]["metrics"]["gain"] is None
