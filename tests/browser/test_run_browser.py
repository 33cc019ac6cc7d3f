"""JupyterLab in Debian Chromium: the MLOps sidebar's runs table and run details, real runs."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from store_under_test import store_client
from test_sidebar import SCREENSHOTS, open_mlops_sidebar

from conftest import LabServer, copy_notebook, tracked_run

pytestmark = pytest.mark.browser
EXPERIMENT = "run-browser"
#: lr of each run (epochs is 3 in all); run_params.ipynb logs score = 1 - 1 / (1 + 3 lr) and
#: curve = lr * step.
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
            "-p",
            "epochs",
            "3",
            "--experiment",
            EXPERIMENT,
            "--output",
            "run-browser-out.ipynb",
        )
    return ids


def open_lab(page: Page, lab: LabServer, workspace: str) -> None:
    page.goto(f"{lab.url}/lab/workspaces/{workspace}?token={lab.token}")
    expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=60_000)


def widen_sidebar(page: Page, by: int = 350) -> None:
    """Drag the left sidebar's edge so that a screenshot shows the table's columns."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    box = handle.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + by, y, steps=5)
    page.mouse.up()


def expect_rows(page: Page, ids: list[str]) -> None:
    rows = page.get_by_test_id("mlops-run-row")
    expect(rows).to_have_count(len(ids))
    for index, run_id in enumerate(ids):
        expect(rows.nth(index)).to_have_attribute("data-run-id", run_id)


def test_runs_table_sorts_filters_and_opens_a_run(
    page: Page, lab: LabServer, runs: dict[str, str], workspace: str
) -> None:
    # Given three finished runs, and the MLOps sidebar open on their experiment
    open_lab(page, lab, workspace)
    open_mlops_sidebar(page)
    page.get_by_test_id("mlops-experiment-select").select_option(label=EXPERIMENT)
    # Then the table lists them newest first, with their status, params and metrics
    expect_rows(page, [runs["0.1"], runs["0.5"], runs["0.2"]])
    first = page.get_by_test_id("mlops-run-row").first
    expect(first.get_by_test_id("mlops-run-status")).to_have_attribute("title", "FINISHED")
    expect(first.locator('[data-column="params.lr"]')).to_have_text("0.1")
    expect(first.locator('[data-column="metrics.score"]')).to_have_text("0.2308")

    # When the score header is clicked, the server sorts by it, best first; again: worst first
    page.get_by_test_id("mlops-sort-metrics.score").click()
    expect_rows(page, [runs["0.5"], runs["0.2"], runs["0.1"]])
    expect(page.locator('th[aria-sort="descending"]')).to_contain_text("score")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    widen_sidebar(page)
    page.screenshot(path=str(SCREENSHOTS / "run-browser-table.png"))
    page.get_by_test_id("mlops-sort-metrics.score").click()
    expect_rows(page, [runs["0.1"], runs["0.2"], runs["0.5"]])

    # When a filter in MLflow's syntax is applied, only the matching runs stay
    page.get_by_test_id("mlops-runs-filter").fill("metrics.score > 0.3")
    page.get_by_test_id("mlops-runs-filter").press("Enter")
    expect_rows(page, [runs["0.2"], runs["0.5"]])
    # and a filter MLflow refuses shows MLflow's message
    page.get_by_test_id("mlops-runs-filter").fill("metrics.score >")
    page.get_by_test_id("mlops-runs-filter-apply").click()
    expect(page.get_by_test_id("mlops-runs-error")).to_contain_text("Invalid clause")
    expect(page.get_by_test_id("mlops-run-row")).to_have_count(0)
    page.get_by_test_id("mlops-runs-filter").fill("params.lr = '0.5'")
    page.get_by_test_id("mlops-runs-filter").press("Enter")
    expect_rows(page, [runs["0.5"]])
    expect(page.get_by_test_id("mlops-runs-error")).to_have_count(0)

    # When the run is opened
    page.get_by_test_id("mlops-run-row").first.click()
    details = page.get_by_test_id("mlops-run-details")
    expect(details.get_by_test_id("mlops-run-id")).to_have_text(runs["0.5"])
    expect(details.locator('[data-testid="mlops-run-param"][data-key="lr"]')).to_have_text("0.5")
    # Then each metric has its chart: curve has one point per step, on a line
    chart = details.locator('[data-testid="mlops-metric-chart"][data-metric="curve"]')
    expect(chart).to_have_attribute("data-points", "3")
    expect(chart.locator("polyline")).to_have_count(1)
    expect(chart.locator("circle")).to_have_count(3)
    expect(chart).to_have_attribute("aria-label", re.compile(r"from 0 to 1\b"))
    # ...a metric logged once has its value and no chart
    score = details.locator('[data-testid="mlops-run-metric"][data-metric="score"]')
    expect(score).to_contain_text("0.6")
    expect(score.get_by_test_id("mlops-metric-chart")).to_have_count(0)
    # and the cell records say which cell produced the score; the artifacts are listed
    cells = details.get_by_test_id("mlops-run-cell")
    expect(cells.filter(has_text="score = round(1 - loss, 6)")).to_contain_text("score = 0.6")
    expect(
        details.get_by_test_id("mlops-run-artifact").filter(has_text="cells.jsonl")
    ).to_be_visible()
    details.get_by_text("Tracked cells").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "run-browser.png"))

    # When going back, the filtered table is still there
    details.get_by_test_id("mlops-run-back").click()
    expect_rows(page, [runs["0.5"]])


def test_diff_against_opens_the_notebook_diff_of_two_runs(
    page: Page, lab: LabServer, runs: dict[str, str], workspace: str
) -> None:
    # Given a run's details
    open_lab(page, lab, workspace)
    open_mlops_sidebar(page)
    page.get_by_test_id("mlops-experiment-select").select_option(label=EXPERIMENT)
    page.locator(f'[data-testid="mlops-run-row"][data-run-id="{runs["0.5"]}"]').click()
    # When "Diff against…" is given another run
    page.get_by_test_id("mlops-run-diff").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text("Compare run")
    dialog.locator("input").fill(runs["0.2"])
    dialog.get_by_role("button", name="Diff").click()
    # Then the diff of the other run (base) against this one opens, rendered by nbdime
    expect(page.locator(".jp-Dialog")).to_have_count(0)
    expect(page.locator(".jp-mlops-diff")).to_have_attribute("data-state", "ready", timeout=60_000)
    status, expected = lab.api(f"/jupyter-mlops/api/diff?a={runs['0.2']}&b={runs['0.5']}")
    assert status == 200, expected
    expect(page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")).to_have_text(
        f"Diff: {expected['a']['label']} ↔ {expected['b']['label']}"
    )
    expect(page.locator(".jp-Cell-diff").filter(has_text="lr = 0.5").first).to_be_visible()


def test_two_runs_compare_side_by_side_with_the_differences_marked(
    page: Page, lab: LabServer, runs: dict[str, str], workspace: str
) -> None:
    # Given two runs ticked in the table
    open_lab(page, lab, workspace)
    open_mlops_sidebar(page)
    page.get_by_test_id("mlops-experiment-select").select_option(label=EXPERIMENT)
    for rate in ("0.2", "0.5"):
        row = page.locator(f'[data-testid="mlops-run-row"][data-run-id="{runs[rate]}"]')
        row.get_by_test_id("mlops-run-pick").check()
    expect(page.get_by_test_id("mlops-run-details")).to_have_count(0)
    # When they are compared
    page.get_by_test_id("mlops-runs-compare").click()
    # Then params and metrics stand side by side, the differing ones marked
    table = page.get_by_test_id("mlops-compare-table")
    expect(table.locator("thead th")).to_have_count(3)
    lr = table.locator('[data-testid="mlops-compare-row"][data-key="params.lr"]')
    expect(lr).to_have_attribute("data-differs", "true")
    expect(lr.locator("td")).to_have_text(["0.2", "0.5"])
    epochs = table.locator('[data-testid="mlops-compare-row"][data-key="params.epochs"]')
    expect(epochs).to_have_attribute("data-differs", "false")
    expect(epochs.locator("td")).to_have_text(["3", "3"])
    score = table.locator('[data-testid="mlops-compare-row"][data-key="metrics.score"]')
    expect(score).to_have_attribute("data-differs", "true")
    expect(score.locator("td")).to_have_text(["0.375", "0.6"])
    expect(table.locator("tr.jp-mlops-differs")).to_have_count(4)  # lr, curve, loss, score
    # ...and a chart of a metric against a param: a higher lr scores higher here
    chart = page.get_by_test_id("mlops-compare-chart")
    expect(page.get_by_test_id("mlops-compare-param")).to_have_value("lr")
    page.get_by_test_id("mlops-compare-metric").select_option("score")
    expect(chart).to_have_attribute("aria-label", "score against lr over 2 run(s)")
    low = chart.locator(f'circle[data-run-id="{runs["0.2"]}"]')
    high = chart.locator(f'circle[data-run-id="{runs["0.5"]}"]')
    assert float(high.get_attribute("cx") or 0) > float(low.get_attribute("cx") or 0)
    assert float(high.get_attribute("cy") or 0) < float(low.get_attribute("cy") or 0)
    widen_sidebar(page)
    page.screenshot(path=str(SCREENSHOTS / "run-compare.png"))
    # When their notebook diff is asked for, it opens from the first ticked to the second
    page.get_by_test_id("mlops-compare-diff").click()
    expect(page.locator(".jp-mlops-diff")).to_have_attribute("data-state", "ready", timeout=60_000)
    _, expected = lab.api(f"/jupyter-mlops/api/diff?a={runs['0.2']}&b={runs['0.5']}")
    expect(page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")).to_have_text(
        f"Diff: {expected['a']['label']} ↔ {expected['b']['label']}"
    )


@contextlib.contextmanager
def extension_settings(lab: LabServer, **values: object) -> Iterator[None]:
    """The extension's settings in the Lab's settings registry, put back afterwards."""
    path = "/lab/api/settings/jupyter-mlops:plugin"
    status, body = lab.api(path, method="PUT", body={"raw": json.dumps(values)})
    assert status == 204, body
    try:
        yield
    finally:
        lab.api(path, method="PUT", body={"raw": "{}"})


@pytest.fixture
def small_pages(lab: LabServer) -> Iterator[None]:
    with extension_settings(lab, pageSize=2, refreshInterval=0):
        yield


def test_pages_load_in_the_servers_order_and_the_table_works_by_keyboard(
    page: Page, lab: LabServer, runs: dict[str, str], workspace: str, small_pages: None
) -> None:
    # Given two runs a page, sorted by score from the keyboard
    open_lab(page, lab, workspace)
    open_mlops_sidebar(page)
    page.get_by_test_id("mlops-experiment-select").select_option(label=EXPERIMENT)
    expect_rows(page, [runs["0.1"], runs["0.5"]])
    page.get_by_test_id("mlops-sort-metrics.score").focus()
    page.keyboard.press("Enter")
    expect_rows(page, [runs["0.5"], runs["0.2"]])
    # When the next page is loaded
    page.get_by_test_id("mlops-runs-more").click()
    # Then it continues in the same order, and there is no page after it
    expect_rows(page, [runs["0.5"], runs["0.2"], runs["0.1"]])
    expect(page.get_by_test_id("mlops-runs-more")).to_have_count(0)
    # When a row is opened with Enter, and closed with the back button
    page.get_by_test_id("mlops-run-row").nth(1).focus()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("mlops-run-id")).to_have_text(runs["0.2"])
    back = page.get_by_test_id("mlops-run-back")
    back.focus()
    expect(back).to_be_focused()
    page.keyboard.press("Enter")
    # (Two steps: once CI saw no row here, without saying whether the details stayed.)
    expect(page.get_by_test_id("mlops-run-details")).to_have_count(0)
    expect_rows(page, [runs["0.5"], runs["0.2"], runs["0.1"]])


def test_an_active_run_is_refreshed_until_it_ends(
    page: Page, lab: LabServer, workspace: str
) -> None:

    # Given a run that is still running, in an experiment of its own
    client = store_client(lab.root)
    experiment = f"run-browser-live-{secrets.token_hex(4)}"
    run_id = client.create_run(client.create_experiment(experiment)).info.run_id
    with extension_settings(lab, refreshInterval=1):
        open_lab(page, lab, workspace)
        open_mlops_sidebar(page)
        page.get_by_test_id("mlops-experiment-select").select_option(label=experiment)
        expect_rows(page, [run_id])
        status = page.get_by_test_id("mlops-run-status")
        expect(status).to_have_attribute("title", "RUNNING")
        # When it logs a metric and ends
        client.log_metric(run_id, "acc", 0.75)
        client.set_terminated(run_id)
        # Then the table shows it without a click
        expect(status).to_have_attribute("title", "FINISHED", timeout=15_000)
        expect(page.locator('[data-column="metrics.acc"]')).to_have_text("0.75")
