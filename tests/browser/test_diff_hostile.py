"""Hostile notebook outputs in a diff: nothing runs, in Lab's diff tab nor in the HTML page.

Two notebooks in the served root whose outputs differ and carry script in every form a
notebook can: ``<script>`` and an ``onerror`` handler in ``text/html``, an
``application/javascript`` output, an SVG with ``onload`` (as ``image/svg+xml`` and inline in
HTML), an ``<iframe srcdoc>``, and raw HTML in a markdown cell. Each payload writes
``top.__pwned`` and the page title; both must stay as they were, while the harmless parts
(bold text, a table, markdown) still render.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_notebooks import expect_harmless_parts_rendered, hostile_notebook
from playwright.sync_api import Page, expect

from conftest import LabServer, run_cli

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).parents[2] / "test-results" / "screenshots"
TIMEOUT = 60_000


@pytest.fixture(scope="module")
def pair(lab: LabServer) -> tuple[str, str]:
    """Two hostile notebooks in the Lab's root; their paths relative to it."""
    unique = secrets.token_hex(4)
    names = (f"hostile_{unique}_a.ipynb", f"hostile_{unique}_b.ipynb")
    for name, side in zip(names, ("a", "b"), strict=True):
        (lab.root / name).write_text(json.dumps(hostile_notebook(side), indent=1))
    return names


def lab_request(lab: LabServer, method: str, path: str, body: object = None) -> None:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{lab.url}{path}", data=data, method=method)
    request.add_header("Authorization", f"token {lab.token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    urllib.request.urlopen(request, timeout=30).close()


@pytest.fixture
def diff_workspace(page: Page, lab: LabServer, pair: tuple[str, str]) -> Iterator[str]:
    """A Lab workspace whose saved state holds one diff tab of ``pair``.

    Lab's layout restorer runs the diff tab's command (``jupyter-mlops:open-diff`` with
    ``{a, b}``) for it when the workspace opens, as after a reload: neither notebook is ever
    opened in a notebook panel, so whatever runs comes from the diff tab.
    """
    name = f"diff-hostile-{secrets.token_hex(4)}"
    a, b = pair
    key = "jupyter-mlops-diff:" + json.dumps([a, b], separators=(",", ":"))
    state = {"data": {key: {"data": {"a": a, "b": b}}}, "metadata": {"id": name}}
    lab_request(lab, "PUT", f"/lab/api/workspaces/{name}", state)
    page.set_viewport_size({"width": 1500, "height": 1100})
    yield name
    for open_page in page.context.pages:
        open_page.close()
    with contextlib.suppress(urllib.error.HTTPError):
        lab_request(lab, "DELETE", f"/lab/api/workspaces/{name}")


def assert_nothing_ran(page: Page, title: str) -> None:
    page.wait_for_timeout(500)  # an onload/onerror handler fires right after insertion
    assert page.evaluate("() => window.__pwned") is None
    assert page.title() == title


def test_hostile_outputs_in_the_diff_tab_run_nothing(
    page: Page, lab: LabServer, pair: tuple[str, str], diff_workspace: str
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # When the diff tab of the two hostile notebooks opens
    page.goto(f"{lab.url}/lab/workspaces/{diff_workspace}?token={lab.token}")
    view = page.locator(".jp-mlops-diff")
    expect(view).to_have_attribute("data-state", "ready", timeout=TIMEOUT)
    expect(page.get_by_test_id("mlops-diff-label-a")).to_contain_text(pair[0])
    # Then the harmless parts render: bold text and tables of both sides, the markdown
    expect_harmless_parts_rendered(view)
    # ...and no script element, handler or frame reached the page
    expect(view.locator("script")).to_have_count(0)
    expect(view.locator("[onerror], [onload]")).to_have_count(0)
    expect(view.locator("iframe")).to_have_count(0)
    # the JavaScript and SVG outputs are not rendered as such (untrusted)
    expect(view.locator(".jp-RenderedJavaScript, .jp-RenderedSVG")).to_have_count(0)
    title = page.title()
    assert_nothing_ran(page, title)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "diff-hostile.png"))
    # nbdime's per-output "Trust" button (it would render the output trusted: run its
    # scripts) is not offered, and clicking it anyway changes nothing
    trust = view.locator(".jp-Diff-trustOutputButton")
    assert trust.count() > 0
    for index in range(trust.count()):
        assert trust.nth(index).evaluate("b => getComputedStyle(b).display") == "none"
        trust.nth(index).dispatch_event("click")
    expect(view.locator(".jp-RenderedJavaScript, .jp-RenderedSVG")).to_have_count(0)
    expect(view.locator("script, iframe, [onerror], [onload]")).to_have_count(0)
    assert_nothing_ran(page, title)
    assert not [e for e in errors if "pwned" in e], errors


def test_hostile_outputs_in_the_html_diff_run_nothing(
    page: Page, lab: LabServer, pair: tuple[str, str], tmp_path: Path
) -> None:
    # Given `jupyter mlops diff A B --html` of the same two notebooks
    out = tmp_path / "hostile-diff.html"
    a, b = (str(lab.root / name) for name in pair)
    result = run_cli(tmp_path, "diff", a, b, "--html", str(out))
    assert result.returncode == 0, result.stderr
    # When the file is opened in Chromium
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(out.as_uri())
    diff = page.locator(".jp-Notebook-diff")
    expect(diff).to_be_visible(timeout=30_000)
    title = page.title()
    # ...with the unchanged markdown cell shown too
    hide = page.locator("#nbdime-hide-unchanged")
    if hide.is_checked():
        hide.uncheck()
    # Then the harmless parts render and nothing ran
    for side in ("a", "b"):
        expect(diff.locator("b", has_text=f"bold-{side}")).to_have_count(1)
        expect(diff.locator("td", has_text=f"cell-{side}")).to_have_count(1)
    expect(diff).to_contain_text("**bold-markdown**")  # nbdime's page shows markdown source
    expect(diff.locator("script")).to_have_count(0)
    expect(diff.locator("[onerror], [onload]")).to_have_count(0)
    expect(diff.locator("iframe")).to_have_count(0)
    assert_nothing_ran(page, title)
    assert not title.startswith("pwned")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "diff-hostile-html.png"), full_page=True)
    # nbdime's per-output "Trust" button is not offered, and clicking it anyway runs nothing
    trust = diff.locator(".jp-Diff-trustOutputButton")
    assert trust.count() > 0
    for index in range(trust.count()):
        assert trust.nth(index).evaluate("b => getComputedStyle(b).display") == "none"
        trust.nth(index).dispatch_event("click")
    assert_nothing_ran(page, title)
    assert not [e for e in errors if "pwned" in e], errors
