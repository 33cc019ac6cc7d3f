"""What ``make install`` leaves in the venv: the prebuilt labextension and the server extension."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jupyter_mlops

from conftest import REPO, VENV_BIN, clean_env

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def jupyter(*args: str) -> str:
    result = subprocess.run(
        [str(VENV_BIN / "jupyter"), *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return ANSI.sub("", result.stdout + result.stderr)


def test_labextension_is_installed_enabled_and_ok() -> None:
    listing = jupyter("labextension", "list")
    assert re.search(r"jupyter-mlops v\S+ enabled\s+.*OK", listing), listing


def test_server_extension_is_enabled() -> None:
    listing = jupyter("server", "extension", "list")
    assert re.search(r"jupyter_mlops\s+enabled", listing), listing
    assert re.search(rf"jupyter_mlops {re.escape(jupyter_mlops.__version__)} OK", listing), listing


def test_python_and_npm_versions_agree() -> None:
    package = json.loads((REPO / "labextension" / "package.json").read_text())
    assert package["version"] == jupyter_mlops.__version__
    assert package["name"] == "jupyter-mlops"


def test_built_extension_is_shipped_inside_the_package() -> None:
    built = Path(jupyter_mlops.__file__).parent / "labextension"
    assert (built / "package.json").is_file()
    assert list((built / "static").glob("remoteEntry.*.js"))
