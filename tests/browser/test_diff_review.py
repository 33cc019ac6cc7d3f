"""JupyterLab in Debian Chromium: the diff tab and the review tab, on the real backend.

Two real runs of ``run_params.ipynb`` (``jupyter mlops run -p lr ...``) in the Lab's own
project, so the server reads the same SQLite store. Everything is driven through the UI
(command palette, dialogs, buttons); what the UI did is then read back from the REST API
and from MLflow.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Locator, Page, expect
from store_under_test import store_client, tracking_uri_for

from conftest import TESTS, LabServer, run_cli

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).parents[2] / "test-results" / "screenshots"
REVIEW_STATE_TAG = "mlops.review.state"
TIMEOUT = 60_000


@dataclass(frozen=True)
class Tracked:
    """A notebook in the Lab root, two runs of it, and two model versions of those runs."""

    lab: LabServer
    unique: str
    notebook: str  # path relative to the Lab root; edited after the runs
    base_run: str  # -p lr 0.2
    candidate_run: str  # -p lr 0.5
    model: str  # version 1 <- base_run (alias champion), version 2 <- candidate_run

    @property
    def tracking_uri(self) -> str:
        return tracking_uri_for(self.lab.root)

    def client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)


def lab_request(lab: LabServer, method: str, path: str) -> Any:
    request = urllib.request.Request(f"{lab.url}{path}", method=method)
    request.add_header("Authorization", f"token {lab.token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def run_tracked(tracked_root: Path, notebook: str, experiment: str, lr: str) -> str:
    """``jupyter mlops run NOTEBOOK -p lr LR``; returns the run id."""

    result = run_cli(
        tracked_root,
        "run",
        notebook,
        "-p",
        "lr",
        lr,
        "--experiment",
        experiment,
        "--output",
        f"out/{experiment}-{lr}.ipynb",
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    client = store_client(tracked_root)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, result.stdout
    runs = client.search_runs(
        [found.experiment_id], filter_string=f"params.lr = '{lr}'", max_results=2
    )
    assert len(runs) == 1, [r.data.params for r in runs]
    return str(runs[0].info.run_id)


@pytest.fixture(scope="module")
def tracked(lab: LabServer) -> Tracked:
    unique = secrets.token_hex(4)
    notebook = f"diff_review_{unique}.ipynb"
    experiment = f"diff-review-{unique}"
    source = json.loads((TESTS / "notebooks" / "run_params.ipynb").read_text())
    (lab.root / notebook).write_text(json.dumps(source, indent=1))
    base_run = run_tracked(lab.root, notebook, experiment, "0.2")
    candidate_run = run_tracked(lab.root, notebook, experiment, "0.5")

    # The file in the Lab root moves on after the runs: its parameters cell says "edited".
    parameters = next(c for c in source["cells"] if "parameters" in c["metadata"].get("tags", []))
    text = "".join(parameters["source"])
    assert 'label = "base"' in text
    parameters["source"] = text.replace('label = "base"', 'label = "edited"')
    (lab.root / notebook).write_text(json.dumps(source, indent=1))

    tracked = Tracked(lab, unique, notebook, base_run, candidate_run, f"scorer-{unique}")
    client = tracked.client()
    client.create_registered_model(tracked.model)
    for run in (base_run, candidate_run):
        client.create_model_version(tracked.model, f"runs:/{run}/model", run_id=run)
    client.set_registered_model_alias(tracked.model, "champion", "1")
    return tracked


@pytest.fixture
def workspace(page: Page, lab: LabServer) -> Iterator[str]:
    """A Lab workspace of the test's own (no tabs of other tests), dropped afterwards."""
    name = f"diff-review-{secrets.token_hex(4)}"
    page.set_viewport_size({"width": 1500, "height": 1000})
    yield name
    for open_page in page.context.pages:  # so that no page saves the workspace again
        open_page.close()
    for session in lab_request(lab, "GET", "/api/sessions"):
        if session.get("path", "").startswith("diff_review_"):
            lab_request(lab, "DELETE", f"/api/sessions/{session['id']}")
    with contextlib.suppress(urllib.error.HTTPError):
        lab_request(lab, "DELETE", f"/lab/api/workspaces/{name}")


def watch_page_errors(page: Page) -> list[str]:
    """Uncaught errors, and console errors that name the extension or nbdime, from now on."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and re.search(r"(?i)mlops|nbdime", message.text):
            errors.append(message.text)

    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", on_console)
    return errors


def open_notebook(page: Page, lab: LabServer, tracked: Tracked, workspace: str) -> Locator:
    """Open the tracked notebook; wait until Lab settled (cells shown, kernel idle)."""
    page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{tracked.notebook}?token={lab.token}")
    cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
    expect(cells.first).to_be_visible(timeout=TIMEOUT)
    # Until then the notebook takes the focus, which closes a command palette opened early.
    expect(page.get_by_title(f"Change kernel for {tracked.notebook}")).to_have_text(
        re.compile(r"\| Idle$"), timeout=TIMEOUT
    )
    return page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=tracked.notebook)


def palette_command(page: Page, focus: Locator, label: str) -> None:
    """Run the command palette entry named ``label`` (it must be enabled)."""
    palette = page.locator(".jp-ModalCommandPalette .lm-CommandPalette-input")
    # Lab sometimes drops the shortcut while its main area is still settling: press again.
    for _attempt in range(4):
        focus.click()
        page.keyboard.press("Control+Shift+c")
        with contextlib.suppress(AssertionError):
            expect(palette).to_be_visible(timeout=3_000)
            break
    expect(palette).to_be_visible()
    palette.fill(label)
    item = page.locator(".jp-ModalCommandPalette .lm-CommandPalette-item", has_text=label).first
    expect(item).to_be_visible()
    expect(item).not_to_have_class(re.compile(r"\blm-mod-disabled\b"))
    item.click()


def answer_dialog(page: Page, text: str) -> None:
    field = page.locator(".jp-Dialog input")
    expect(field).to_be_visible()
    field.fill(text)
    page.locator(".jp-Dialog .jp-mod-accept").click()
    expect(page.locator(".jp-Dialog")).to_have_count(0)


def current_tab(page: Page) -> Locator:
    return page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")


def editor_text(cell: Locator, side: str) -> Locator:
    """The source editor of one side (``left`` = base, ``right`` = remote) of a changed cell."""
    return cell.locator(f".jp-Cellrow-source .cm-diff-{side}-editor .cm-content")


def api_diff(lab: LabServer, a: str, b: str, **flags: str) -> tuple[int, dict[str, Any]]:
    status, body = lab.api(
        "/jupyter-mlops/api/diff?" + urllib.parse.urlencode({"a": a, "b": b, **flags})
    )
    return status, dict(body)


def test_diff_tab_renders_the_changed_cells_with_nbdime(
    page: Page, lab: LabServer, tracked: Tracked, workspace: str
) -> None:
    errors = watch_page_errors(page)
    # Given the notebook open in Lab
    notebook_tab = open_notebook(page, lab, tracked, workspace)

    # When it is diffed against its first run from the command palette
    palette_command(page, notebook_tab, "Diff notebook against run…")
    answer_dialog(page, tracked.base_run)

    # Then a diff tab renders, with nbdime, what the server says changed
    view = page.locator(".jp-mlops-diff")
    expect(view).to_have_attribute("data-state", "ready", timeout=TIMEOUT)
    status, expected = api_diff(lab, tracked.base_run, tracked.notebook)
    assert status == 200, expected
    expect(current_tab(page)).to_have_text(
        f"Diff: {expected['a']['label']} ↔ {expected['b']['label']}"
    )
    expect(page.get_by_test_id("mlops-diff-label-a")).to_have_text(expected["a"]["label"])
    expect(page.get_by_test_id("mlops-diff-label-b")).to_have_text(expected["b"]["label"])
    # ...the edited parameters cell side by side, the inserted characters marked
    edited = view.locator(".jp-Cell-diff.jp-Diff-twoway").filter(has_text='label = "edited"')
    expect(edited).to_have_count(1)
    expect(editor_text(edited, "left")).to_contain_text('label = "base"')
    expect(editor_text(edited, "right")).to_contain_text('label = "edited"')
    expect(edited.locator(".cm-merge-r-inserted").first).to_be_visible()
    # ...the cell Papermill injected into the run, which the file does not have, deleted
    injected = view.locator(".jp-Cell-diff.jp-Diff-deleted").filter(has_text="lr = 0.2")
    expect(injected).to_have_count(1)
    # ...and the run's outputs, which the saved file does not have, as deleted outputs
    deleted_outputs = view.locator(".jp-Diff-twoway .jp-Diff-outputPanel.jp-Diff-deleted")
    expect(deleted_outputs.first).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "diff-tab.png"))

    # When "Hide outputs" is ticked, the diff is fetched again without outputs
    with page.expect_response(
        lambda r: "/jupyter-mlops/api/diff?" in r.url and "ignore_outputs=1" in r.url
    ) as answer:
        page.get_by_test_id("mlops-diff-hide-outputs").check()
    assert answer.value.status == 200
    expect(view).to_have_attribute("data-state", "ready", timeout=TIMEOUT)
    expect(deleted_outputs).to_have_count(0)
    expect(edited).to_have_count(1)

    # When "Hide metadata" is ticked too, the metadata changes (Papermill's) go as well
    # (a deleted cell has a metadata row too, which nbdime's stylesheet hides)
    metadata = view.locator(".jp-Cellrow-metadata:visible, .jp-Metadata-diff:visible")
    expect(metadata.first).to_be_visible()
    with page.expect_response(
        lambda r: "ignore_outputs=1" in r.url and "ignore_metadata=1" in r.url
    ) as answer:
        page.get_by_test_id("mlops-diff-hide-metadata").check()
    assert answer.value.status == 200
    expect(view).to_have_attribute("data-state", "ready", timeout=TIMEOUT)
    expect(metadata).to_have_count(0)
    expect(edited).to_have_count(1)
    assert not errors, errors


def test_diff_tab_shows_the_servers_error(
    page: Page, lab: LabServer, tracked: Tracked, workspace: str
) -> None:
    notebook_tab = open_notebook(page, lab, tracked, workspace)
    missing = "0" * 32
    status, body = api_diff(lab, missing, tracked.notebook)
    assert 400 <= status < 500 and body.get("message"), (status, body)

    palette_command(page, notebook_tab, "Diff notebook against run…")
    answer_dialog(page, missing)

    view = page.locator(".jp-mlops-diff")
    expect(view).to_have_attribute("data-state", "error", timeout=TIMEOUT)
    expect(page.get_by_test_id("mlops-diff-error")).to_contain_text(body["message"])
    expect(view.locator(".jp-Cell-diff")).to_have_count(0)


def test_review_comment_and_approve_are_stored_with_the_candidate(
    page: Page, lab: LabServer, tracked: Tracked, workspace: str
) -> None:
    errors = watch_page_errors(page)
    candidate = f"models:/{tracked.model}/2"
    page.goto(f"{lab.url}/lab/workspaces/{workspace}?token={lab.token}")
    dock = page.locator("#jp-main-dock-panel")
    expect(dock).to_be_visible(timeout=TIMEOUT)

    # When a review of model version 2 is opened from the command palette
    palette_command(page, dock, "Review candidate…")
    answer_dialog(page, candidate)

    # Then the review tab shows it open, against the champion, with nbdime's diff
    view = page.locator(".jp-mlops-review")
    expect(view).to_have_attribute("data-state", "ready", timeout=TIMEOUT)
    review_id = view.get_attribute("data-review-id")
    assert review_id
    status, opened = lab.api(f"/jupyter-mlops/api/reviews/{review_id}")
    assert status == 200, opened
    assert opened["candidate"]["ref"] == candidate
    expect(page.get_by_test_id("mlops-review-state")).to_have_text("Open")
    expect(page.get_by_test_id("mlops-review-candidate")).to_have_text(opened["candidate"]["label"])
    assert opened["base"] is not None, opened
    expect(page.get_by_test_id("mlops-review-base")).to_have_text(opened["base"]["label"])
    expect(current_tab(page)).to_have_text(f"Review: {opened['candidate']['label']}")

    # ...and the cell whose parameter changed (lr 0.2 -> 0.5) has a comment box beside it
    row = view.locator(".jp-mlops-review-cellrow").filter(
        has=page.locator(".jp-Diff-twoway .cm-diff-right-editor", has_text="lr = 0.5")
    )
    expect(row).to_have_count(1)
    expect(editor_text(row, "left")).to_contain_text("lr = 0.2")
    cell_id = row.get_attribute("data-cell-id")
    assert cell_id

    # When the reviewer comments on that cell and approves
    comment = f"Why 0.5? ({tracked.unique})"
    row.get_by_test_id("mlops-comment-input").fill(comment)
    row.get_by_test_id("mlops-comment-submit").click()
    expect(row.get_by_test_id("mlops-comment")).to_have_count(1)
    expect(row.get_by_test_id("mlops-comment")).to_contain_text(comment)
    expect(row.get_by_test_id("mlops-comment-input")).to_have_value("")
    page.get_by_test_id("mlops-review-message").fill("ship it")
    page.get_by_test_id("mlops-review-approve").click()

    # Then the tab shows the new state, re-rendered from the server's answer
    expect(page.get_by_test_id("mlops-review-state")).to_have_text("Approved")
    expect(page.get_by_test_id("mlops-review-state")).to_have_attribute("data-state", "approved")
    expect(page.get_by_test_id("mlops-review-decided-by")).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "review-tab.png"))

    # ...the server holds the comment, anchored to the candidate's cell, and the decision
    status, stored = lab.api(f"/jupyter-mlops/api/reviews/{review_id}")
    assert status == 200, stored
    assert stored["state"] == "approved"
    assert stored["decided_by"]
    assert [(c["cell_id"], c["text"]) for c in stored["comments"]] == [(cell_id, comment)]
    assert_cell_of_candidate(lab, stored, cell_id, "lr = 0.5")
    # ...and MLflow has it with the candidate's run
    run = tracked.client().get_run(tracked.candidate_run)
    assert run.data.tags.get(REVIEW_STATE_TAG) == "approved", run.data.tags

    # When the tab is closed and the review opened again by its id
    current_tab(page).locator(".lm-TabBar-tabCloseIcon").click()
    expect(view).to_have_count(0)
    palette_command(page, dock, "Open review…")
    answer_dialog(page, review_id)

    # Then the stored state and the comment beside its cell come back
    expect(view).to_have_attribute("data-state", "ready", timeout=TIMEOUT)
    expect(page.get_by_test_id("mlops-review-state")).to_have_text("Approved")
    again = view.locator(f'.jp-mlops-review-cellrow[data-cell-id="{cell_id}"]')
    expect(again.get_by_test_id("mlops-comment")).to_contain_text(comment)
    expect(page.get_by_test_id("mlops-review-other-comments")).to_be_hidden()
    assert not errors, errors


def assert_cell_of_candidate(
    lab: LabServer, review: dict[str, Any], cell_id: str, text: str
) -> None:
    """The cell ``cell_id`` of the candidate notebook (base patched by the diff) holds ``text``."""
    from jupyter_mlops.core.notebook_diff import patch_notebook

    status, data = lab.api(review["diff_url"])
    assert status == 200, data
    candidate = patch_notebook(data["base"], data["diff"])
    cells = {cell.get("id"): cell for cell in candidate["cells"]}
    assert cell_id in cells, sorted(cells)
    source = cells[cell_id]["source"]
    assert text in ("".join(source) if isinstance(source, list) else source)
