"""The generated reference pages match the code they are generated from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_cli_and_rest_references_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "docs" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_every_doc_the_readme_links_exists() -> None:
    import re

    readme = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(((?:docs|notebooks|jupyter_mlops)/[^)#]+)\)", readme)
    assert links
    assert [link for link in links if not (REPO / link).exists()] == []
