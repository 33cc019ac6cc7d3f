"""JupyterLab in Debian Chromium: "Track this notebook" and "Run as batch…" on a notebook."""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect
from store_under_test import location_for
from test_sidebar import SCREENSHOTS

from jupyter_mlops.tracking.mlflow_store import MlflowRunStore

from conftest import LabServer

pytestmark = pytest.mark.browser
TIMEOUT = 60_000
NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


def open_notebook(page: Page, lab: LabServer, workspace: str, name: str) -> Locator:
    """Open ``name`` and wait until its kernel is idle; returns its cells."""
    page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{name}?token={lab.token}")
    cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
    expect(cells.first).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_title(f"Change kernel for {name}")).to_have_text(
        re.compile(r"\| Idle$"), timeout=TIMEOUT
    )
    return cells


def experiment_runs(lab: LabServer, token: str) -> list[dict[str, Any]]:
    """The runs of the experiments whose name holds ``token``."""
    status, body = lab.api("/jupyter-mlops/api/experiments")
    assert status == 200, body
    runs: list[dict[str, Any]] = []
    for experiment in body["experiments"]:
        if token in experiment["name"]:
            query = urllib.parse.urlencode({"experiment": experiment["id"]})
            status, page = lab.api(f"/jupyter-mlops/api/runs?{query}")
            assert status == 200, page
            runs += page["runs"]
    return runs


def test_track_button_inserts_and_runs_the_tracking_cell(
    page: Page, lab: LabServer, workspace: str
) -> None:
    # Given the lab's store (two processes creating one SQLite store race on its migrations)
    MlflowRunStore(location_for(lab.root))
    # and a notebook that is not tracked
    token = secrets.token_hex(3)
    name = f"track-{token}.ipynb"
    source = {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "source": "x = 41 + 1",
                "outputs": [],
                "execution_count": None,
            }
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (lab.root / name).write_text(json.dumps(source))
    cells = open_notebook(page, lab, workspace, name)
    expect(cells).to_have_count(1)
    # When "Track" is clicked on the notebook's toolbar
    page.get_by_test_id("mlops-track-notebook").click()
    # Then the tracking cell comes first and runs
    expect(cells).to_have_count(2)
    expect(cells.first.locator(".jp-InputArea-editor")).to_contain_text("%mlops_track")
    expect(cells.first.locator(".jp-InputArea-editor")).to_contain_text("%load_ext jupyter_mlops")
    expect(cells.first.locator(".jp-InputPrompt")).to_have_text(
        re.compile(r"\[\d+\]"), timeout=TIMEOUT
    )
    expect(cells.nth(1).locator(".jp-InputArea-editor")).to_contain_text("x = 41 + 1")
    # ...and a run of this notebook appears in the store
    deadline = time.monotonic() + 60
    while not (runs := experiment_runs(lab, token)) and time.monotonic() < deadline:
        time.sleep(1)
    assert len(runs) == 1, runs
    assert runs[0]["status"] == "RUNNING"
    # When it is clicked again, no second tracking cell is inserted
    page.get_by_test_id("mlops-track-notebook").click()
    page.wait_for_timeout(500)
    expect(cells).to_have_count(2)


def test_run_as_batch_starts_a_batch_whose_progress_reaches_finished(
    page: Page, lab: LabServer, workspace: str
) -> None:
    # Given a parameterized notebook open in Lab
    token = secrets.token_hex(3)
    name = f"batch-{token}.ipynb"
    (lab.root / name).write_text((NOTEBOOKS / "run_params.ipynb").read_text())
    open_notebook(page, lab, workspace, name)
    # When "Batch…" is clicked and the grid for lr is given
    page.get_by_test_id("mlops-run-as-batch").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text(f"Run {name} as batch")
    lr = dialog.locator('input[data-param="lr"]')
    expect(lr).to_have_value("0.1")
    expect(dialog.locator('input[data-param="label"]')).to_have_value('"base"')
    lr.fill("0.1, 0.3")
    dialog.locator('input[data-param="workers"]').fill("2")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "batch-form.png"))
    dialog.get_by_role("button", name="Start batch").click()
    # Then the sidebar shows the batch, and its progress reaches finished
    batch = page.get_by_test_id("mlops-batch").filter(has_text=name)
    expect(batch).to_have_count(1, timeout=TIMEOUT)
    job_id = batch.get_attribute("data-batch-id")
    assert job_id and job_id.startswith("bj-"), job_id
    expect(batch).to_have_attribute("data-state", "finished", timeout=240_000)
    expect(batch.get_by_test_id("mlops-batch-progress")).to_have_text("2/2 done")
    expect(batch.get_by_test_id("mlops-batch-stop")).to_have_count(0)
    # ...as the server says, with a run per point of the grid
    status, job = lab.api(f"/jupyter-mlops/api/batches/{job_id}")
    assert status == 200, job
    assert job["grid"]["lr"] == [0.1, 0.3] and job["grid"]["label"] == ["base"]
    assert (job["state"], job["points"], job["done"]) == ("finished", 2, 2), job
    runs = experiment_runs(lab, token)
    points = sorted(run["params"]["lr"] for run in runs if "lr" in run["params"])
    assert points == ["0.1", "0.3"], runs


def test_stop_ends_a_running_batch(page: Page, lab: LabServer, workspace: str) -> None:
    # Given a batch of a slow notebook started from Lab
    name = f"slow-{secrets.token_hex(3)}.ipynb"
    (lab.root / name).write_text((NOTEBOOKS / "run_slow_cell.ipynb").read_text())
    open_notebook(page, lab, workspace, name)
    page.get_by_test_id("mlops-run-as-batch").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator('input[data-param="seconds"]').fill("120, 121")
    dialog.locator('input[data-param="workers"]').fill("1")
    dialog.get_by_role("button", name="Start batch").click()
    batch = page.get_by_test_id("mlops-batch").filter(has_text=name)
    expect(batch).to_have_attribute("data-state", "running", timeout=TIMEOUT)
    job_id = batch.get_attribute("data-batch-id")
    # When Stop is clicked
    batch.get_by_test_id("mlops-batch-stop").click()
    # Then the batch ends stopped, long before its notebooks would have
    expect(batch).to_have_attribute("data-state", "stopped", timeout=TIMEOUT)
    expect(batch.get_by_test_id("mlops-batch-stop")).to_have_count(0)
    status, job = lab.api(f"/jupyter-mlops/api/batches/{job_id}")
    assert (status, job["state"]) == (200, "stopped"), job
    assert job["done"] == 0, job
