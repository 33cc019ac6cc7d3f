"""JupyterLab in Debian Chromium: a run's notebook snapshot, artifact downloads, and the
``trackingUri`` setting switching the sidebar to another store."""

from __future__ import annotations

import json
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from store_under_test import tracking_uri_for
from test_run_browser import expect_rows, extension_settings, open_lab, widen_sidebar
from test_sidebar import SCREENSHOTS, open_mlops_sidebar

from jupyter_mlops.core.settings import resolve_tracking_location
from jupyter_mlops.tracking.mlflow_store import MlflowRunStore

from conftest import LabServer, copy_notebook, run_cli, tracked_run

pytestmark = pytest.mark.browser
EXPERIMENT = "run-snapshot"
#: A second store inside the served root, as a user types it in the setting.
SECOND = "sqlite:///stores/browser/second.db"
HOSTILE_HTML = b"<html><body><script>window.parent.pwned = true</script></body></html>"


@pytest.fixture(scope="module")
def run_id(lab: LabServer) -> str:
    """A papermill run of run_params.ipynb (lr 0.1: it prints "base 0.230769"), plus an HTML
    report among its artifacts."""
    copy_notebook("run_params.ipynb", lab.root)
    found = tracked_run(
        lab.root,
        "run_params.ipynb",
        "--experiment",
        EXPERIMENT,
        "--output",
        "run-snapshot-out.ipynb",
    )
    store = MlflowRunStore(resolve_tracking_location(tracking_uri_for(lab.root)))
    store.put_artifact(found, "report.html", HOSTILE_HTML)
    return found


def artifact_bytes(lab: LabServer, run_id: str, path: str) -> bytes:
    query = urllib.parse.urlencode({"path": path})
    request = urllib.request.Request(f"{lab.url}/jupyter-mlops/api/runs/{run_id}/artifacts?{query}")
    request.add_header("Authorization", f"token {lab.token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return bytes(response.read())


def open_run(page: Page, lab: LabServer, workspace: str, run_id: str) -> None:
    open_lab(page, lab, workspace)
    open_mlops_sidebar(page)
    page.get_by_test_id("mlops-experiment-select").select_option(label=EXPERIMENT)
    page.locator(f'[data-testid="mlops-run-row"][data-run-id="{run_id}"]').click()
    expect(page.get_by_test_id("mlops-run-id")).to_have_text(run_id)


def test_the_notebook_snapshot_opens_read_only_with_its_outputs(
    page: Page, lab: LabServer, run_id: str, workspace: str
) -> None:
    # Given a papermill run's details
    open_run(page, lab, workspace, run_id)
    button = page.get_by_role("button", name="Open notebook snapshot (read-only)")
    expect(button).to_have_attribute("data-path", "executed/run_params.ipynb")
    # When its notebook is opened
    button.click()
    # Then a tab shows every cell of the executed notebook, in order
    view = page.locator(".jp-mlops-snapshot")
    expect(view).to_have_attribute("data-state", "ready", timeout=60_000)
    notebook = json.loads(artifact_bytes(lab, run_id, "executed/run_params.ipynb"))
    cells = view.get_by_test_id("mlops-snapshot-cell")
    expect(cells).to_have_count(len(notebook["cells"]))
    expect(cells.first).to_have_attribute("data-cell-type", "markdown")
    expect(cells.first).to_contain_text("A parameterized notebook")
    tracked = cells.filter(has_text="score = round(1 - loss, 6)")
    expect(tracked.get_by_test_id("mlops-snapshot-source")).to_contain_text("%%mlops_track")
    expect(tracked.get_by_test_id("mlops-snapshot-output")).to_contain_text("base 0.230769")
    expect(page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")).to_contain_text(
        "Snapshot: "
    )
    expect(view.get_by_test_id("mlops-snapshot-banner")).to_contain_text("Read-only")
    # ...and nothing in it is editable: no CodeMirror, no input, nothing contenteditable
    expect(view.locator(".cm-editor, .cm-content, textarea, input")).to_have_count(0)
    expect(view.locator("[contenteditable]:not([contenteditable='false'])")).to_have_count(0)
    source = tracked.get_by_test_id("mlops-snapshot-source")
    before = source.inner_text()
    source.click()
    page.keyboard.type("edited")
    page.keyboard.press("Backspace")
    assert source.inner_text() == before
    # and no kernel was started for it
    assert (
        page.evaluate(
            "document.querySelectorAll('.jp-mlops-snapshot-tab .jp-Toolbar-kernelName').length"
        )
        == 0
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "run-snapshot.png"))


def test_artifacts_download_with_their_own_bytes_and_html_stays_inert(
    page: Page, lab: LabServer, run_id: str, workspace: str
) -> None:
    open_run(page, lab, workspace, run_id)
    details = page.get_by_test_id("mlops-run-details")
    # When Download is clicked beside cells.jsonl
    row = details.locator('[data-testid="mlops-run-artifact"][data-path="cells.jsonl"]')
    with page.expect_download() as info:
        row.get_by_role("button", name="Download cells.jsonl").click()
    # Then the browser saves the run's file under its name
    download = info.value
    assert download.suggested_filename == "cells.jsonl"
    assert Path(download.path()).read_bytes() == artifact_bytes(lab, run_id, "cells.jsonl")
    # The executed notebook (inside a folder) is offered too
    notebook_row = details.locator(
        '[data-testid="mlops-run-artifact"][data-path="executed/run_params.ipynb"]'
    )
    with page.expect_download() as info:
        notebook_row.get_by_test_id("mlops-artifact-download").click()
    assert info.value.suggested_filename == "run_params.ipynb"
    assert json.loads(Path(info.value.path()).read_bytes())["nbformat"] == 4
    # An HTML report is saved, never shown: its script does not run in Lab's page
    with page.expect_download() as info:
        details.get_by_role("button", name="Download report.html").click()
    assert Path(info.value.path()).read_bytes() == HOSTILE_HTML
    assert page.evaluate("window.pwned === undefined")
    expect(details.get_by_test_id("mlops-artifact-error")).to_have_count(0)
    # A folder has no Download button
    folder = details.locator('[data-testid="mlops-run-artifact"][data-path="executed"]')
    expect(folder.get_by_test_id("mlops-artifact-download")).to_have_count(0)


def test_the_new_buttons_work_from_the_keyboard(
    page: Page, lab: LabServer, run_id: str, workspace: str
) -> None:
    open_run(page, lab, workspace, run_id)
    # Tab from "Diff against…" reaches "Open notebook snapshot", named for screen readers
    page.get_by_test_id("mlops-run-diff").focus()
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert focused == "Open notebook snapshot (read-only)"
    # Tabbing on reaches a Download button, each named after its artifact
    labels = []
    for _ in range(60):
        page.keyboard.press("Tab")
        label = page.evaluate("document.activeElement.getAttribute('aria-label') || ''")
        if label.startswith("Download "):
            labels.append(label)
            break
    assert labels and re.fullmatch(r"Download \S.*", labels[0]), labels
    # and Enter downloads it
    with page.expect_download() as info:
        page.keyboard.press("Enter")
    assert info.value.suggested_filename == labels[0].removeprefix("Download ").rpartition("/")[2]
    # Enter on "Open notebook snapshot" opens the tab
    page.get_by_test_id("mlops-run-open-snapshot").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".jp-mlops-snapshot")).to_have_attribute(
        "data-state", "ready", timeout=60_000
    )


@pytest.fixture(scope="module")
def second_store_run(lab: LabServer) -> str:
    """A run in a second SQLite store inside the served root; its id."""
    copy_notebook("run_params.ipynb", lab.root)
    result = run_cli(
        lab.root,
        "--tracking-uri",
        SECOND,
        "run",
        "run_params.ipynb",
        "-p",
        "lr",
        "0.4",
        "--experiment",
        "second-store",
        "--output",
        "run-snapshot-second.ipynb",
    )
    assert result.returncode == 0, result.stderr
    match = re.search(r"\b([0-9a-f]{32})\b", result.stdout)
    assert match, result.stdout
    return match.group(1)


def set_tracking_uri_in_settings_editor(page: Page, value: str) -> None:
    """Type ``value`` into the MLOps "Tracking URI" field of Lab's settings editor."""
    page.keyboard.press("Control+,")
    editor = page.locator(".jp-SettingsPanel, .jp-SettingsEditor").first
    expect(editor).to_be_visible(timeout=30_000)
    page.locator(".jp-PluginList-entry", has_text="MLOps").first.click()
    # The form's only text field: "Tracking URI" (its heading is not a <label>).
    field = page.get_by_role("group", name="MLOps").get_by_role("textbox")
    expect(field).to_be_visible()
    field.fill(value)
    field.press("Tab")


def test_the_tracking_uri_setting_switches_the_sidebar_to_another_store(
    page: Page, lab: LabServer, run_id: str, second_store_run: str, workspace: str
) -> None:
    with extension_settings(lab, refreshInterval=0):
        # Given the sidebar on the server's store
        open_lab(page, lab, workspace)
        open_mlops_sidebar(page)
        root = lab.root.resolve()
        expect(page.get_by_test_id("mlops-tracking-uri")).to_have_text(tracking_uri_for(root))
        select = page.get_by_test_id("mlops-experiment-select")
        expect(select.locator("option", has_text=EXPERIMENT)).to_have_count(1)
        # When the setting names the second store
        set_tracking_uri_in_settings_editor(page, SECOND)
        # Then the status says so, and the table lists that store's runs only
        expect(page.get_by_test_id("mlops-tracking-uri")).to_have_text(
            f"sqlite:///{root}/stores/browser/second.db", timeout=30_000
        )
        expect(page.get_by_test_id("mlops-tracking-source")).to_contain_text("JupyterLab setting")
        expect(select.locator("option", has_text=EXPERIMENT)).to_have_count(0)
        expect(select.locator("option", has_text="second-store")).to_have_count(1)
        expect_rows(page, [second_store_run])
        widen_sidebar(page)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "tracking-uri-setting.png"))
        # When the setting is a store outside the root, the server's refusal is shown
        set_tracking_uri_in_settings_editor(page, "/etc")
        expect(page.get_by_test_id("mlops-error")).to_contain_text(
            "outside the folder this server serves"
        )
        # and emptied, the server's own store is back
        set_tracking_uri_in_settings_editor(page, "")
        expect(page.get_by_test_id("mlops-tracking-uri")).to_have_text(
            tracking_uri_for(root), timeout=30_000
        )
    # the setting is left as found (extension_settings puts back "{}")
    status, body = lab.api("/lab/api/settings/jupyter-mlops:plugin")
    assert status == 200 and json.loads(body["raw"]) == {}


def hostile_notebook() -> dict:
    """A notebook whose markdown and outputs try to run script in Lab's page."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {
                "cell_type": "markdown",
                "id": "md",
                "metadata": {},
                "source": "# Report\n<img src=x onerror=\"window.pwned='md'\">"
                "<script>window.pwned='md-script'</script>",
            },
            {
                "cell_type": "code",
                "id": "code",
                "metadata": {},
                "execution_count": 7,
                "source": "show()",
                "outputs": [
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {
                            "text/html": [
                                "<b>bold</b>",
                                "<img src=x onerror=\"window.pwned='html'\">",
                                "<script>window.pwned='html-script'</script>",
                            ],
                            "text/plain": ["<IPython.core.display.HTML object>"],
                        },
                    },
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {"application/javascript": "window.pwned = 'js'"},
                    },
                    {"output_type": "stream", "name": "stdout", "text": ["printed\n"]},
                ],
            },
        ],
    }


@pytest.fixture(scope="module")
def hostile_run(lab: LabServer) -> str:
    """A tracked-style run (tag mlops.snapshot) whose snapshot holds hostile outputs."""
    from mlflow.tracking import MlflowClient

    store = MlflowRunStore(resolve_tracking_location(tracking_uri_for(lab.root)))
    client = MlflowClient(tracking_uri=store.tracking_uri)
    digest = secrets.token_hex(32)
    run = client.create_run(store.experiment_id(EXPERIMENT), tags={"mlops.snapshot": digest})
    store.put_artifact(
        run.info.run_id, f"snapshots/{digest}.ipynb", json.dumps(hostile_notebook()).encode()
    )
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def test_hostile_markdown_and_outputs_in_a_snapshot_run_nothing(
    page: Page, lab: LabServer, hostile_run: str, workspace: str
) -> None:
    # Given a run whose snapshot's markdown and outputs carry scripts
    open_run(page, lab, workspace, hostile_run)
    button = page.get_by_test_id("mlops-run-open-snapshot")
    expect(button).to_have_attribute("data-path", re.compile(r"^snapshots/[0-9a-f]{64}\.ipynb$"))
    # When it is opened
    button.click()
    view = page.locator(".jp-mlops-snapshot")
    expect(view).to_have_attribute("data-state", "ready", timeout=60_000)
    # Then the harmless parts render: the heading, the bold text, the printed line
    expect(view.locator("h1")).to_contain_text("Report")
    expect(view.locator("b", has_text="bold")).to_have_count(1)
    outputs = view.get_by_test_id("mlops-snapshot-output")
    expect(outputs).to_have_count(3)
    expect(outputs.nth(2)).to_contain_text("printed")
    # ...the JavaScript output is not run, only named
    expect(outputs.nth(1)).to_contain_text("application/javascript")
    # ...and no handler or script survived the sanitizer
    expect(view.locator("script")).to_have_count(0)
    expect(view.locator("[onerror]")).to_have_count(0)
    page.wait_for_timeout(500)
    assert page.evaluate("window.pwned === undefined")
