"""``X-MLOps-Tracking-URI``: JupyterLab's ``trackingUri`` setting chooses the store per request."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import urllib.error
import urllib.request

import pytest

from conftest import LabServer, copy_notebook, run_cli

pytestmark = pytest.mark.server

HEADER = "X-MLOps-Tracking-URI"
#: The second store, relative to the served root, as a user types it in the setting.
SECOND = "sqlite:///stores/override/second.db"
EXPERIMENT = "override-store"


def call(
    lab: LabServer, path: str, tracking: str | None, *, method: str = "GET", body: object = None
) -> tuple[int, dict]:
    """A JSON call with the token and, when given, the tracking header."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{lab.url}{path}", data=data, method=method)
    request.add_header("Authorization", f"token {lab.token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if tracking is not None:
        request.add_header(HEADER, tracking)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.fixture(scope="module")
def second_run(lab: LabServer) -> str:
    """A run of run_params.ipynb in a second SQLite store inside the root; its id."""
    copy_notebook("run_params.ipynb", lab.root)
    result = run_cli(
        lab.root,
        "--tracking-uri",
        SECOND,
        "run",
        "run_params.ipynb",
        "-p",
        "lr",
        "0.3",
        "--experiment",
        EXPERIMENT,
        "--output",
        "override-out.ipynb",
    )
    assert result.returncode == 0, result.stderr
    match = re.search(r"\b([0-9a-f]{32})\b", result.stdout)
    assert match, result.stdout
    return match.group(1)


def test_the_runs_listed_come_from_the_store_the_header_names(
    lab: LabServer, second_run: str
) -> None:
    # With the header, the experiments and runs are the second store's
    status, body = call(lab, "/jupyter-mlops/api/experiments", SECOND)
    assert status == 200, body
    assert [e["name"] for e in body["experiments"]] == [EXPERIMENT, "Default"]
    experiment = body["experiments"][0]["id"]
    status, page = call(lab, f"/jupyter-mlops/api/runs?experiment={experiment}", SECOND)
    assert status == 200, page
    assert [r["id"] for r in page["runs"]] == [second_run]
    status, run = call(lab, f"/jupyter-mlops/api/runs/{second_run}", SECOND)
    assert status == 200 and run["params"]["lr"] == "0.3"
    # ...and so are its artifacts
    status, _ = call(lab, f"/jupyter-mlops/api/runs/{second_run}/metrics/score", SECOND)
    assert status == 200
    # Without it, the server's own store answers, which has no such run
    status, body = call(lab, f"/jupyter-mlops/api/runs/{second_run}", None)
    assert status == 404, body
    status, body = call(lab, "/jupyter-mlops/api/experiments", None)
    assert EXPERIMENT not in [e["name"] for e in body["experiments"]]
    # an empty header is no header
    status, body = call(lab, f"/jupyter-mlops/api/runs/{second_run}", "  ")
    assert status == 404, body


def test_the_artifact_endpoint_and_the_diff_follow_the_header(
    lab: LabServer, second_run: str
) -> None:
    request = urllib.request.Request(
        f"{lab.url}/jupyter-mlops/api/runs/{second_run}/artifacts?path=cells.jsonl"
    )
    request.add_header("Authorization", f"token {lab.token}")
    request.add_header(HEADER, SECOND)
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        assert b"score" in response.read()
    status, diff = call(lab, f"/jupyter-mlops/api/diff?a={second_run}&b={second_run}", SECOND)
    assert status == 200, diff
    assert diff["diff"] == []


def test_the_status_says_the_setting_chose_the_location(lab: LabServer, second_run: str) -> None:
    status, body = call(lab, "/jupyter-mlops/api/status", SECOND)
    assert status == 200, body
    root = lab.root.resolve()
    tracking = body["tracking"]
    assert tracking["source"] == "setting"
    assert tracking["uri"] == f"sqlite:///{root}/stores/override/second.db"
    assert tracking["artifact_uri"] == (root / "stores" / "override" / "artifacts").as_uri()
    assert SECOND in tracking["detail"]
    assert body["store"]["ok"] is True
    # the absolute spelling of the same file is the same store
    status, body = call(
        lab, "/jupyter-mlops/api/status", f"sqlite:///{root}/stores/override/second.db"
    )
    assert status == 200 and body["tracking"]["uri"] == tracking["uri"]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("http://user:secret@mlflow.example:5000", "credentials"),
        ("https://:token@mlflow.example", "credentials"),
        ("http://", "names no host"),
        ("http://mlflow.example:port", "not a valid URI"),
        ("postgresql://user:secret@db/mlflow", "not accepted"),
        ("s3://bucket/mlflow", "not accepted"),
        ("databricks", "no folder databricks"),
        ("sqlite:///stores/override/missing.db", "no database file"),
        ("sqlite:///run_params.ipynb", "not a SQLite database"),
        ("sqlite://host/x.db", "sqlite:///PATH"),
        ("sqlite:///stores/override/second.db?mode=ro", "no host or query"),
        ("file://other-host/srv/mlruns", "file:///PATH"),
        ("~/mlruns", "'~'"),
        ("stores\\override", "not '\\'"),
        ("//server/share", "not accepted"),
    ],
)
def test_values_the_server_does_not_accept_are_400(
    lab: LabServer, second_run: str, value: str, says: str
) -> None:
    status, body = call(lab, "/jupyter-mlops/api/runs", value)
    assert status == 400, body
    assert body["code"] == "usage"
    assert says in body["message"] + body.get("hint", "")
    assert "secret" not in json.dumps(body)


def test_a_store_outside_the_root_is_400_even_when_it_exists(lab: LabServer) -> None:
    outside = lab.root.parent / "outside-store"
    outside.mkdir(exist_ok=True)
    database = outside / "mlflow.db"
    sqlite3.connect(database).execute("create table if not exists t (x)").connection.close()
    (lab.root / "stores").mkdir(exist_ok=True)
    link = lab.root / "stores" / "link-out"
    if not link.exists():
        link.symlink_to(outside)
    for value in (
        f"sqlite:///{database}",
        "sqlite:///../outside-store/mlflow.db",
        "sqlite:///stores/link-out/mlflow.db",
        str(outside),
        "../outside-store",
        f"file://{outside}",
        "/",
    ):
        status, body = call(lab, "/jupyter-mlops/api/status", value)
        assert status == 400, (value, body)
        assert "outside the folder this server serves" in body["message"], value


def test_a_batch_started_with_the_header_tracks_into_that_store(
    lab: LabServer, second_run: str
) -> None:
    from mlflow.tracking import MlflowClient

    # When a one-point batch is started with the setting pointing at the second store
    status, job = call(
        lab,
        "/jupyter-mlops/api/batches",
        SECOND,
        method="POST",
        body={"notebook": "run_params.ipynb", "grid": {"lr": [0.7]}, "workers": 1},
    )
    assert status == 202, job
    deadline = time.monotonic() + 240
    while job["state"] == "running":
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
        job = call(lab, f"/jupyter-mlops/api/batches/{job['id']}", SECOND)[1]
    assert job["state"] == "finished", job.get("log")
    # Then its runs are in the second store, and not in the server's own
    second = MlflowClient(f"sqlite:///{lab.root.resolve()}/stores/override/second.db")
    parent = second.get_run(job["batch_run_id"])
    children = second.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert [c.data.params["lr"] for c in children] == ["0.7"]
    default = MlflowClient(f"sqlite:///{lab.root.resolve()}/.mlops/mlflow.db")
    experiments = [e.experiment_id for e in default.search_experiments()]
    assert not default.search_runs(experiments, filter_string="params.lr = '0.7'")
