"""JupyterLab in Debian Chromium: the MLOps sidebar shows the version and tracking location."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from store_under_test import tracking_uri_for

import jupyter_mlops

from conftest import LabServer

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).parents[2] / "test-results" / "screenshots"


def open_lab(page: Page, lab: LabServer) -> None:
    page.goto(f"{lab.url}/lab?token={lab.token}")
    expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=60_000)


def open_mlops_sidebar(page: Page) -> None:
    page.locator(
        '.jp-SideBar [title="MLOps"], .jp-SideBar [data-id="jupyter-mlops-sidebar"]'
    ).first.click()
    expect(page.locator("#jupyter-mlops-sidebar")).to_be_visible()


def test_sidebar_shows_version_and_tracking_location(page: Page, lab: LabServer) -> None:
    # Given JupyterLab with the extension
    open_lab(page, lab)
    # When the MLOps panel is opened
    open_mlops_sidebar(page)
    # Then it shows what the status endpoint reports
    expect(page.get_by_test_id("mlops-version")).to_have_text(jupyter_mlops.__version__)
    expect(page.get_by_test_id("mlops-tracking-uri")).to_have_text(tracking_uri_for(lab.root))
    expect(page.get_by_test_id("mlops-store-status")).to_contain_text("Store answers")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "sidebar-status.png"))


def test_sidebar_opens_from_the_command_palette(page: Page, lab: LabServer) -> None:
    open_lab(page, lab)
    page.locator("#jp-main-dock-panel").click()
    page.keyboard.press("Control+Shift+c")
    palette = page.locator(".jp-ModalCommandPalette .lm-CommandPalette-input")
    expect(palette).to_be_visible()
    palette.fill("Open MLOps panel")
    expect(page.locator(".jp-ModalCommandPalette .lm-CommandPalette-item").first).to_contain_text(
        "Open MLOps panel"
    )
    palette.press("Enter")
    expect(page.locator("#jupyter-mlops-sidebar")).to_be_visible()
