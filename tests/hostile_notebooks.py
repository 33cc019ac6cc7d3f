"""Notebooks whose outputs and markdown try to run script, for the tests of what Lab shows.

Every payload writes ``top.__pwned`` and the page title (see :func:`pwn`); a test proves a
view inert by finding both unchanged, while the harmless parts (bold text, a table,
markdown, printed text) still render. Used by the diff tab's and the review tab's tests.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect


def pwn(tag: str) -> str:
    """JavaScript that marks the page (and its top window) as run by ``tag``."""
    return f"top.__pwned='{tag}';top.document.title='pwned {tag}'"


def hostile_html(side: str) -> list[str]:
    return [
        f"<b>bold-{side}</b>\n",
        f"<table><tr><td>cell-{side}</td></tr></table>\n",
        f"<script>{pwn('html-script-' + side)}</script>\n",
        f'<img src=x onerror="{pwn("img-onerror-" + side)}">\n',
        f'<svg xmlns="http://www.w3.org/2000/svg" onload="{pwn("inline-svg-" + side)}"></svg>\n',
        f'<iframe srcdoc="<script>{pwn("iframe-" + side)}</script>"></iframe>\n',
    ]


def hostile_notebook(side: str) -> dict:
    """A notebook whose outputs (different on each ``side``) and markdown try to run script."""
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20" '
        f'onload="{pwn("svg-" + side)}"><rect width="20" height="20"/></svg>'
    )
    markdown = (
        "# Hostile report\n\n**bold-markdown**\n\n"
        f"<script>{pwn('markdown-script')}</script>\n"
        f'<img src=x onerror="{pwn("markdown-img")}">\n'
    )
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "cells": [
            # the same in both: nbdime renders an unchanged markdown cell through rendermime
            {"cell_type": "markdown", "id": "md", "metadata": {}, "source": markdown},
            {
                "cell_type": "code",
                "id": "report",
                "metadata": {},
                "execution_count": 1,
                "source": f"show_report('{side}')",
                "outputs": [
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {
                            "text/html": hostile_html(side),
                            "text/plain": [f"<HTML report {side}>"],
                        },
                    },
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {
                            "application/javascript": [pwn("javascript-" + side)],
                            "text/plain": [f"<Javascript {side}>"],
                        },
                    },
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {"image/svg+xml": [svg], "text/plain": [f"<SVG {side}>"]},
                    },
                    {"output_type": "stream", "name": "stdout", "text": [f"printed-{side}\n"]},
                ],
            },
        ],
    }


def expect_harmless_parts_rendered(view: Any) -> None:
    """Both sides' bold text, tables and printed text, and the markdown, are in ``view``
    (so a view that shows nothing does not pass as inert)."""
    for side in ("a", "b"):
        expect(view.locator("b", has_text=f"bold-{side}")).to_have_count(1)
        expect(view.locator("td", has_text=f"cell-{side}")).to_have_count(1)
        expect(view.locator(".jp-Diff-outputPanel")).to_contain_text([f"printed-{side}"])
    expect(view.locator("h1", has_text="Hostile report")).to_have_count(1)
    expect(view.locator("strong", has_text="bold-markdown")).to_have_count(1)
