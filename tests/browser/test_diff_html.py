"""``jupyter mlops diff --html``: the page renders nbdime's diff offline in Debian Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from conftest import TESTS, run_cli

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).parents[2] / "test-results" / "screenshots"


def test_exported_diff_renders_without_a_server(page: Page, project: Path) -> None:
    # Given an HTML diff of two notebook files
    out = project / "diff.html"
    result = run_cli(
        project,
        "diff",
        str(TESTS / "notebooks" / "diff_basic.ipynb"),
        str(TESTS / "notebooks" / "diff_basic--edited.ipynb"),
        "--html",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    scripts: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: scripts.append(r.url) if r.url.endswith(".js") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    # When the file is opened from disk
    page.goto(out.as_uri())
    # Then nbdime renders the changed source, the inserted cell and the labels
    expect(page.locator(".jp-Notebook-diff")).to_be_visible(timeout=30_000)
    expect(page.locator("#nbdime-header-base")).to_contain_text("diff_basic.ipynb")
    expect(page.locator(".jp-Cell-diff").first).to_be_visible()
    expect(page.locator(".jp-Notebook-diff")).to_contain_text("lr = 0.05")
    expect(page.locator(".jp-Notebook-diff")).to_contain_text("Cell ID: basic-new")
    assert page.locator(".jp-Diff-added").count() > 0
    assert scripts == [] and errors == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "diff-html.png"))
