"""JupyterLab in Debian Chromium: the Models section of the MLOps sidebar, real models."""

from __future__ import annotations

import contextlib
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from store_under_test import location_for
from test_run_browser import open_lab, widen_sidebar
from test_sidebar import SCREENSHOTS, open_mlops_sidebar

from jupyter_mlops.tracking.mlflow_store import MlflowRunStore
from jupyter_mlops.tracking.registry import log_model, promote, register_version

from conftest import LabServer, copy_notebook, tracked_run

pytestmark = pytest.mark.browser
EXPERIMENT = "models-panel"
REVIEW_ID = "rv-5eed1e55"
#: The alias the policy of these tests guards; no other test of the session uses it.
GATED = "prod"


@dataclass(frozen=True)
class Model:
    name: str
    runs: list[str]  # run of version 1, of version 2


@pytest.fixture(scope="module")
def model(lab: LabServer) -> Model:
    """Two versions from two tracked runs of run_params.ipynb; 1 is the champion, 2 approved."""
    copy_notebook("run_params.ipynb", lab.root)
    store = MlflowRunStore(location_for(lab.root))
    name = f"panel-iris-{secrets.token_hex(3)}"
    features, target = load_iris(return_X_y=True, as_frame=True)
    runs = []
    for lr in ("0.2", "0.5"):
        run_id = tracked_run(
            lab.root,
            "run_params.ipynb",
            "-p",
            "lr",
            lr,
            "--experiment",
            EXPERIMENT,
            "--output",
            "models-panel-out.ipynb",
        )
        classifier = LogisticRegression(C=float(lr), max_iter=500).fit(features, target)
        logged = log_model(store, run_id, classifier, artifact_path="models/iris")
        register_version(store, run_id, "models/iris", name, flavor=logged.flavor)
        runs.append(run_id)
    promote(store, name, "1", "champion")
    store.client.set_model_version_tag(name, "2", "mlops.review.state", "approved")
    store.client.set_model_version_tag(name, "2", "mlops.review.id", REVIEW_ID)
    return Model(name, runs)


@contextlib.contextmanager
def gate_policy(root: Path) -> Iterator[None]:
    """The lab's project requires an approved review for ``prod`` while the block runs."""
    pyproject = root / "pyproject.toml"
    before = pyproject.read_text()
    assert "[tool.jupyter-mlops]" not in before, "another test set a policy on the lab"
    pyproject.write_text(before + f'\n[tool.jupyter-mlops]\nrequire_review_for = ["{GATED}"]\n')
    try:
        yield
    finally:
        pyproject.write_text(before)


def open_model(page: Page, lab: LabServer, workspace: str, name: str) -> None:
    open_lab(page, lab, workspace)
    open_mlops_sidebar(page)
    widen_sidebar(page, 500)
    page.locator(f'[data-testid="mlops-model-item"][data-model="{name}"]').click()
    expect(page.get_by_test_id("mlops-version-row")).to_have_count(2)


def version_row(page: Page, version: str) -> Locator:
    return page.locator(f'[data-testid="mlops-version-row"][data-version="{version}"]')


def test_versions_lineage_run_and_diff_against_champion(
    page: Page, lab: LabServer, model: Model, workspace: str
) -> None:
    # Given the Models section with the model selected
    open_model(page, lab, workspace, model.name)
    item = page.locator(f'[data-testid="mlops-model-item"][data-model="{model.name}"]')
    expect(item).to_contain_text("champion→1")
    # Then the versions show newest first with their aliases and review state
    rows = page.get_by_test_id("mlops-version-row")
    expect(rows.nth(0)).to_have_attribute("data-version", "2")
    expect(version_row(page, "1").get_by_test_id("mlops-version-aliases")).to_have_text("champion")
    badge = version_row(page, "2").get_by_test_id("mlops-version-review-state")
    expect(badge).to_have_attribute("data-state", "approved")
    expect(badge).to_have_attribute("title", f"Review {REVIEW_ID}")
    expect(version_row(page, "1").get_by_test_id("mlops-version-review-state")).to_have_text(
        "not reviewed"
    )
    # The champion cannot be diffed against itself
    expect(version_row(page, "1").get_by_test_id("mlops-version-diff-champion")).to_be_disabled()

    # When the lineage of version 2 is asked for, the chain shows
    version_row(page, "2").get_by_test_id("mlops-version-lineage").click()
    lineage = page.get_by_test_id("mlops-lineage")
    expect(lineage.get_by_test_id("mlops-lineage-model")).to_contain_text(f"models:/{model.name}/2")
    expect(lineage.get_by_test_id("mlops-lineage-run")).to_contain_text(model.runs[1])
    expect(lineage.get_by_test_id("mlops-lineage-run")).to_contain_text(EXPERIMENT)
    expect(lineage.get_by_test_id("mlops-lineage-params")).to_contain_text("lr=0.5")
    expect(lineage.get_by_test_id("mlops-lineage-review")).to_contain_text(REVIEW_ID)
    expect(lineage.get_by_test_id("mlops-lineage-notebook")).to_contain_text("snapshot sha256")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "models-panel.png"))

    # When the run link of version 2 is followed, the run's details show, and back
    version_row(page, "2").get_by_test_id("mlops-version-run").click()
    details = page.get_by_test_id("mlops-run-details")
    expect(details).to_contain_text(model.runs[1])
    details.get_by_test_id("mlops-run-back").click()
    expect(page.get_by_test_id("mlops-version-row")).to_have_count(2)

    # When version 2 is diffed against the champion, the diff tab opens with both sides
    version_row(page, "2").get_by_test_id("mlops-version-diff-champion").click()
    expect(page.locator(".jp-mlops-diff")).to_have_attribute("data-state", "ready", timeout=60_000)
    query = urllib.parse.urlencode(
        {"a": f"models:/{model.name}@champion", "b": f"models:/{model.name}/2"}
    )
    status, expected = lab.api(f"/jupyter-mlops/api/diff?{query}")
    assert status == 200, expected
    expect(page.get_by_test_id("mlops-diff-label-a")).to_have_text(expected["a"]["label"])
    expect(page.get_by_test_id("mlops-diff-label-b")).to_have_text(expected["b"]["label"])
    expect(page.locator(".jp-Cell-diff").filter(has_text="lr = 0.5").first).to_be_visible()


def promote_in_panel(page: Page, version: str, alias: str) -> None:
    version_row(page, version).get_by_test_id("mlops-version-promote").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text(f"version {version}")
    dialog.locator("input").fill(alias)
    dialog.get_by_role("button", name="Promote").click()
    expect(page.locator(".jp-Dialog")).to_have_count(0)


def test_promotion_refused_by_the_policy_then_allowed(
    page: Page, lab: LabServer, model: Model, workspace: str
) -> None:
    path = f"/jupyter-mlops/api/models/{model.name}/versions"
    with gate_policy(lab.root):
        # Given the Models section, and a project that gates "prod" on an approved review
        open_model(page, lab, workspace, model.name)
        # When the unreviewed version 1 is promoted to prod
        promote_in_panel(page, "1", GATED)
        # Then the refusal says what is missing, and nothing moved
        message = page.get_by_test_id("mlops-model-message")
        expect(message).to_contain_text(f"refuses to point alias '{GATED}'")
        expect(message).to_contain_text("approved review")
        expect(message).to_have_attribute("role", "alert")
        assert GATED not in lab.api(path)[1]["aliases"]
        # When the approved version 2 is promoted to prod
        promote_in_panel(page, "2", GATED)
        # Then the alias moves, in the table and in the store
        expect(message).to_contain_text(f"models:/{model.name}@{GATED} now points at version 2")
        expect(version_row(page, "2").get_by_test_id("mlops-version-aliases")).to_have_text(GATED)
        item = page.locator(f'[data-testid="mlops-model-item"][data-model="{model.name}"]')
        expect(item).to_contain_text(f"{GATED}→2")
    assert lab.api(path)[1]["aliases"][GATED] == "2"


def test_review_opens_a_review_of_the_version_against_the_champion(
    page: Page, lab: LabServer, model: Model, workspace: str
) -> None:
    # Given the Models section with the model selected
    open_model(page, lab, workspace, model.name)
    # When "Review" is clicked on version 2
    version_row(page, "2").get_by_test_id("mlops-version-review").click()
    # Then a review tab of that version opens, based on the champion (version 1)
    tab = page.locator(".jp-mlops-review[data-review-id]")
    expect(tab).to_be_visible(timeout=60_000)
    review_id = tab.get_attribute("data-review-id")
    status, review = lab.api(f"/jupyter-mlops/api/reviews/{review_id}")
    assert status == 200, review
    assert review["candidate"]["ref"] == f"models:/{model.name}/2", review["candidate"]
    assert review["base"]["ref"] == f"models:/{model.name}/1", review["base"]
