"""One tracked project for the governance tests (diffs, history, reviews).

A git repository holding ``run_params.ipynb``; three papermill runs in its default SQLite
store (two of the committed notebook with ``lr`` 0.2 and 0.5, one after an edit with
``lr`` 0.5); model ``scorer`` version 1 logged from the first run with alias ``champion``
and version 2 from the third run.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from store_under_test import share_store, store_client

from conftest import TESTS, clean_env, run_cli

NOTEBOOK = "run_params.ipynb"


@dataclass
class Project:
    root: Path
    runs: list[str]  # lr=0.2, lr=0.5 (committed notebook), lr=0.5 after the edit


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
        env=clean_env(),
    )


def _run(root: Path, lr: str) -> str:
    result = run_cli(root, "run", NOTEBOOK, "-p", "lr", lr, "--output", f"out-{lr}.ipynb")
    assert result.returncode == 0, result.stderr
    client = store_client(root)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return str(runs[0].info.run_id)


@pytest.fixture(scope="session")
def tracked(tmp_path_factory: pytest.TempPathFactory, team_stores: None) -> Project:
    root = tmp_path_factory.mktemp("diffs")
    share_store(root)
    (root / "pyproject.toml").write_text('[project]\nname = "diffs"\n')
    notebook = root / NOTEBOOK
    notebook.write_text((TESTS / "notebooks" / NOTEBOOK).read_text())
    _git(root, "init", "-q")
    _git(root, "add", NOTEBOOK, "pyproject.toml")
    _git(root, "commit", "-q", "-m", "notebook")
    runs = [_run(root, "0.2"), _run(root, "0.5")]
    nb = json.loads(notebook.read_text())
    nb["cells"][3]["source"] = [
        "%%mlops_track\n",
        "loss = 2.0 / (1 + lr * epochs)\n",
        "score = 1 - loss\n",
    ]
    notebook.write_text(json.dumps(nb, indent=1))
    runs.append(_run(root, "0.5"))
    client = store_client(root)
    client.create_registered_model("scorer")
    version = client.create_model_version("scorer", f"runs:/{runs[0]}/model", run_id=runs[0])
    client.set_registered_model_alias("scorer", "champion", version.version)
    client.create_model_version("scorer", f"runs:/{runs[2]}/model", run_id=runs[2])
    return Project(root, runs)
