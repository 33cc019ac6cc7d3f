"""JupyterLab in Debian Chromium: a tracked cell's snapshot is the live notebook, unsaved edits too.

The kernel snapshots ``LiveNotebook.latest()`` (``jupyter_mlops/kernel/magics.py``): the
last model the labextension sent over the ``jupyter_mlops.notebook`` comm, else the file
on disk. The edits here are never saved (autosave is off and the test checks the file),
so a snapshot holding one can only come from the live model the frontend sent.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
from playwright.sync_api import ConsoleMessage, Locator, Page, expect
from store_under_test import store_client, team_mode, tracking_uri_for
from test_run_browser import extension_settings

from conftest import LabServer

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).parents[2] / "test-results" / "screenshots"
DOCMANAGER_SETTINGS = "/lab/api/settings/@jupyterlab/docmanager-extension:plugin"
SNAPSHOT_TAG = "mlops.snapshot"
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
CELLS = f"{PANEL} .jp-Notebook .jp-Cell"
DIRTY = re.compile(r"\bjp-mod-dirty\b")


def lab_request(lab: LabServer, method: str, path: str, body: Any = None) -> Any:
    """A JSON request to the Lab server with the token; returns the decoded answer (or None)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{lab.url}{path}", data=data, method=method)
    request.add_header("Authorization", f"token {lab.token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


@pytest.fixture
def autosave_off(lab: LabServer) -> Iterator[None]:
    """Turn Lab's autosave off (settings API, before a page loads them), then restore it."""
    before = lab_request(lab, "GET", DOCMANAGER_SETTINGS).get("raw") or "{}"
    lab_request(lab, "PUT", DOCMANAGER_SETTINGS, {"raw": json.dumps({"autosave": False})})
    yield
    lab_request(lab, "PUT", DOCMANAGER_SETTINGS, {"raw": before})


@dataclass
class TrackedNotebook:
    """A notebook in the Lab root: load the extension, start tracking, one tracked cell."""

    lab: LabServer
    unique: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def name(self) -> str:
        return f"live_snapshot_{self.unique}.ipynb"

    @property
    def path(self) -> Path:
        return self.lab.root / self.name

    @property
    def workspace_path(self) -> str:
        return f"workspaces/live-snapshot-{self.unique}"

    @property
    def experiment(self) -> str:
        return f"live-snap-{self.unique}"

    def write(self) -> None:
        nb = nbformat.v4.new_notebook(
            cells=[
                nbformat.v4.new_code_cell("%load_ext jupyter_mlops"),
                nbformat.v4.new_code_cell(f"%mlops_track --experiment {self.experiment}"),
                nbformat.v4.new_code_cell("%%mlops_track\nx = 1"),
            ],
            metadata={
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
            },
        )
        nbformat.write(nb, self.path)

    def shut_down(self) -> None:
        """Stop the notebook's kernel and drop the test's workspace."""
        for session in lab_request(self.lab, "GET", "/api/sessions"):
            if session.get("path") == self.name:
                lab_request(self.lab, "DELETE", f"/api/sessions/{session['id']}")
        with contextlib.suppress(urllib.error.HTTPError):  # never saved: nothing to drop
            lab_request(self.lab, "DELETE", f"/lab/api/{self.workspace_path}")


@pytest.fixture
def notebook(page: Page, lab: LabServer, autosave_off: None) -> Iterator[TrackedNotebook]:
    tracked = TrackedNotebook(lab)
    tracked.write()
    yield tracked
    for open_page in page.context.pages:  # so that no page saves the workspace again
        open_page.close()
    tracked.shut_down()


def watch_console(page: Page) -> list[str]:
    """Errors and warnings the page logs from now on."""
    seen: list[str] = []

    def remember(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            seen.append(f"{message.type}: {message.text}")

    page.on("console", remember)
    return seen


def open_notebook(page: Page, lab: LabServer, notebook: TrackedNotebook) -> None:
    # A workspace of its own: no notebooks of other tests, none left for later ones.
    page.goto(f"{lab.url}/lab/{notebook.workspace_path}/tree/{notebook.name}?token={lab.token}")
    expect(page.locator(CELLS)).to_have_count(3, timeout=60_000)
    # A cell run before the notebook has a kernel is dropped, not queued. The status bar
    # says "Idle" only once the kernel is connected (the toolbar's execution indicator
    # says "idle" before the kernel even starts).
    expect(page.get_by_title(f"Change kernel for {notebook.name}")).to_have_text(
        re.compile(r"\| Idle$"), timeout=60_000
    )


def cell(page: Page, index: int) -> Locator:
    return page.locator(CELLS).nth(index)


def tab(page: Page, notebook: TrackedNotebook) -> Locator:
    return page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=notebook.name)


def type_new_cell_below(page: Page, index: int, text: str) -> None:
    """Insert a code cell below cell ``index`` and type ``text`` into it; nothing is saved."""
    cell(page, index).locator(".cm-content").click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    expect(cell(page, index + 1)).to_have_class(re.compile(r"\bjp-mod-active\b"))
    page.keyboard.press("Enter")
    page.keyboard.type(text)
    expect(cell(page, index + 1).locator(".cm-content")).to_have_text(text)
    page.keyboard.press("Escape")


def run_and_wait(page: Page, lab: LabServer, index: int, count: int) -> None:
    """Shift+Enter on cell ``index`` (which must be active); wait for its execution count.

    One at a time: the comm exists only once ``%mlops_track`` has run, so a tracked cell
    scheduled before that (Run All) gets no live model and snapshots the saved file.
    """
    expect(cell(page, index)).to_have_class(re.compile(r"\bjp-mod-active\b"))
    page.keyboard.press("Shift+Enter")
    try:
        expect(cell(page, index).locator(".jp-InputArea-prompt")).to_have_text(
            f"[{count}]:", timeout=60_000
        )
    except AssertionError as error:
        raise AssertionError(f"{error}\n--- end of the Lab log ---\n{lab.log()[-4000:]}") from None


def snapshot_tag(root: Path, experiment: str) -> tuple[str, str] | None:
    """(run id, digest) of the experiment's snapshot tag, once the kernel wrote it.

    On the default store, read without MLflow: MlflowClient creates and migrates a missing
    database, which the kernel's writer may be doing at the same moment, so plain SQLite is
    read (read-only) until the kernel wrote the tag. A team server is read through MLflow.
    """
    if team_mode():
        client = store_client(root)
        found = client.get_experiment_by_name(experiment)
        runs = client.search_runs([found.experiment_id]) if found else []
        tagged = [run for run in runs if SNAPSHOT_TAG in run.data.tags]
        return (tagged[0].info.run_id, tagged[0].data.tags[SNAPSHOT_TAG]) if tagged else None
    db = root / ".mlops" / "mlflow.db"
    if not db.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
            row = connection.execute(
                "SELECT runs.run_uuid, tags.value FROM tags"
                " JOIN runs ON runs.run_uuid = tags.run_uuid"
                " JOIN experiments ON experiments.experiment_id = runs.experiment_id"
                " WHERE experiments.name = ? AND tags.key = ?",
                (experiment, SNAPSHOT_TAG),
            ).fetchone()
    except sqlite3.OperationalError:  # no tables yet, or locked by the writer
        return None
    return (str(row[0]), str(row[1])) if row else None


def wait_for_snapshot(
    notebook: TrackedNotebook, containing: str, deadline_s: float = 60
) -> dict[str, Any]:
    """Poll until the run's latest snapshot contains ``containing``; return it as JSON.

    Fails with the last snapshot seen when none does by the deadline.
    """
    root = notebook.lab.root.resolve()
    deadline = time.monotonic() + deadline_s
    last_digest, last_text = "", "(no snapshot tag yet)"
    while True:
        found = snapshot_tag(root, notebook.experiment)
        if found and found[1] != last_digest:
            run_id, last_digest = found
            client = store_client(root)
            local = client.download_artifacts(run_id, f"snapshots/{last_digest}.ipynb")
            last_text = Path(local).read_text(encoding="utf-8")
            if containing in last_text:
                return dict(json.loads(last_text))
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no snapshot with {containing!r} within {deadline_s} s; last:\n{last_text}"
            )
        time.sleep(0.5)


def assert_comm_handled(lab: LabServer, console: list[str]) -> None:
    """Neither the kernel nor the page complained about the comm target."""
    log = lab.log()
    assert "No handler found for comm target" not in log
    assert "No such comm target" not in log
    # e.g. "Exception opening new comm", "Object 'jupyter_mlops.notebook' not found in registry"
    problems = [line for line in console if re.search(r"(?i)\bcomms?\b|jupyter[-_.]mlops", line)]
    assert not problems, problems


def test_snapshot_holds_unsaved_edit(page: Page, lab: LabServer, notebook: TrackedNotebook) -> None:
    # Given the tracked notebook open in Lab, autosave off
    console = watch_console(page)
    open_notebook(page, lab, notebook)
    marker = f"UNSAVED_EDIT_{notebook.unique}"
    # When a cell is typed below the tracked one and not saved
    type_new_cell_below(page, 2, f'marker = "{marker}"')
    expect(tab(page, notebook)).to_have_class(DIRTY)
    # ...and the cells run one by one (the new one does not run)
    cell(page, 0).locator(".cm-content").click()
    run_and_wait(page, lab, 0, 1)
    run_and_wait(page, lab, 1, 2)
    run_and_wait(page, lab, 2, 3)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "live-snapshot.png"))

    # Then the run's latest snapshot is the live notebook, unsaved cell included
    snapshot = wait_for_snapshot(notebook, marker)
    assert [c["source"] for c in snapshot["cells"]] == [
        "%load_ext jupyter_mlops",
        f"%mlops_track --experiment {notebook.experiment}",
        "%%mlops_track\nx = 1",
        f'marker = "{marker}"',
    ]
    # ...which the file on disk never held
    assert marker not in notebook.path.read_text(encoding="utf-8")
    expect(tab(page, notebook)).to_have_class(DIRTY)
    assert_comm_handled(lab, console)


def test_reopened_page_adopts_the_open_comm(
    page: Page, lab: LabServer, notebook: TrackedNotebook
) -> None:
    # Given tracking started in the kernel from one page, which is then closed
    open_notebook(page, lab, notebook)
    cell(page, 0).locator(".cm-content").click()
    run_and_wait(page, lab, 0, 1)
    run_and_wait(page, lab, 1, 2)
    context = page.context
    page.close()
    # When a new page opens the notebook on the same kernel (as after a browser reload)
    fresh = context.new_page()
    console = watch_console(fresh)
    open_notebook(fresh, lab, notebook)
    # ...and a tracked cell runs after an unsaved edit
    marker = f"AFTER_REOPEN_{notebook.unique}"
    type_new_cell_below(fresh, 2, f'marker = "{marker}"')
    cell(fresh, 2).locator(".cm-content").click()
    run_and_wait(fresh, lab, 2, 3)

    # Then the new page sent the live model over the comm the kernel opened earlier
    snapshot = wait_for_snapshot(notebook, marker)
    assert snapshot["cells"][-1]["source"] == f'marker = "{marker}"'
    assert marker not in notebook.path.read_text(encoding="utf-8")
    assert_comm_handled(lab, console)


def runs_in(uri: str, experiment: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    return list(client.search_runs([found.experiment_id])) if found else []


def wait_for_runs(uri: str, experiment: str, count: int, deadline_s: float = 60) -> list[Any]:
    """The experiment's runs at ``uri`` once there are ``count`` (the writer is async)."""
    deadline = time.monotonic() + deadline_s
    while len(found := runs_in(uri, experiment)) < count:
        assert time.monotonic() < deadline, f"{len(found)} run(s) of {experiment} at {uri}"
        time.sleep(0.5)
    return found


def reopened(page: Page) -> Page:
    """A new page in place of ``page`` (closed without its unsaved-changes prompt)."""
    context = page.context
    page.close()
    return context.new_page()


def test_the_kernel_tracks_into_the_store_the_jupyterlab_setting_names(
    page: Page, lab: LabServer, notebook: TrackedNotebook
) -> None:
    # Given a second SQLite store in the served root, named (relative to it) by the setting
    db = lab.root / "stores" / f"kernel-{notebook.unique}.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    second = f"sqlite:///{db.resolve()}"
    runs_in(second, "Default")  # MLflow creates the database
    setting = f"sqlite:///stores/kernel-{notebook.unique}.db"
    with extension_settings(lab, trackingUri=setting, refreshInterval=0):
        # When the notebook's tracked cells run
        open_notebook(page, lab, notebook)
        cell(page, 0).locator(".cm-content").click()
        run_and_wait(page, lab, 0, 1)
        run_and_wait(page, lab, 1, 2)
        run_and_wait(page, lab, 2, 3)
        # Then the run is in the setting's store, its artifacts beside the database
        [run] = wait_for_runs(second, notebook.experiment, 1)
        artifacts = (db.parent.resolve() / "artifacts").as_uri()
        assert run.info.artifact_uri.startswith(artifacts), run.info.artifact_uri
        # (%mlops_track status says where, and by which rule)
        type_new_cell_below(page, 2, "%mlops_track status")
        cell(page, 3).locator(".cm-content").click()
        run_and_wait(page, lab, 3, 4)
        expect(cell(page, 3).locator(".jp-OutputArea")).to_contain_text(f"at {second} (setting)")
        # ...and not in the server's own store
        assert runs_in(tracking_uri_for(lab.root), notebook.experiment) == []
    # When the setting names a store the server refuses, and the page is reloaded
    refused = f"refused-{notebook.unique}"
    # (written to break out of the code that hands the setting to the kernel)
    hostile = """/etc/x"]; raise SystemExit('pwned') #"""
    with extension_settings(lab, trackingUri=hostile, refreshInterval=0):
        page = reopened(page)
        open_notebook(page, lab, notebook)
        type_new_cell_below(page, 2, f"%mlops_track --new-run --experiment {refused}")
        cell(page, 3).locator(".cm-content").click()
        run_and_wait(page, lab, 3, 5)
        # Then tracking refuses to start, saying why, instead of writing elsewhere
        expect(cell(page, 3).locator(".jp-OutputArea")).to_contain_text(
            "the JupyterLab setting Tracking URI was refused"
        )
        expect(cell(page, 3).locator(".jp-OutputArea")).to_contain_text(
            "outside the folder this server serves"
        )
        expect(cell(page, 3).locator(".jp-OutputArea")).to_contain_text(
            '/etc/x"]; raise SystemExit('
        )
    # When the setting is emptied (and the page reloaded), the server's store is back
    back = f"back-{notebook.unique}"
    page = reopened(page)
    open_notebook(page, lab, notebook)
    type_new_cell_below(page, 2, f"%mlops_track --new-run --experiment {back}")
    cell(page, 3).locator(".cm-content").click()
    run_and_wait(page, lab, 3, 6)
    assert len(wait_for_runs(tracking_uri_for(lab.root), back, 1)) == 1
    for uri in (second, tracking_uri_for(lab.root)):
        assert runs_in(uri, refused) == []
