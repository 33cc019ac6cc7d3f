"""``jupyter mlops diff`` and ``history`` on real runs, a real SQLite store and a real git repo."""

from __future__ import annotations

import json
import subprocess

import nbformat
import pytest
from governance_project import NOTEBOOK, Project
from nbdime import diff_notebooks
from store_under_test import store_client

from jupyter_mlops.core.notebook_diff import patch_notebook

from conftest import TESTS, run_cli, run_main


def _cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return run_main(project.root, *args)


def test_diff_of_two_runs_shows_the_changed_parameter(tracked: Project) -> None:
    # When two runs of the same notebook with different parameters are diffed
    result = run_cli(tracked.root, "diff", tracked.runs[0], tracked.runs[1], "--color", "never")
    # Then the injected parameter and the output it changed are in the text, nbdiff style
    assert result.returncode == 0, result.stderr
    assert "--- run " in result.stdout and tracked.runs[0][:8] in result.stdout
    assert "-  lr = 0.2" in result.stdout
    assert "+  lr = 0.5" in result.stdout
    assert "## modified /cells/" in result.stdout
    assert "\x1b[" not in result.stdout
    assert "/id:" not in result.stdout  # papermill's injected cell keeps one id across runs


def test_diff_json_is_nbdimes_diff_and_patches_a_into_b(tracked: Project) -> None:
    result = _cli(tracked, "diff", tracked.runs[0], tracked.runs[2], "--json", "full")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    # The runs' executed notebooks, as logged: the same as nbdime's diff of the two
    a = _logged_executed(tracked, 0)
    b = _logged_executed(tracked, 2)
    assert data["diff"] == json.loads(json.dumps(diff_notebooks(a, b)))
    assert patch_notebook(data["base"], data["diff"]) == json.loads(json.dumps(b))
    assert data["a"]["ref"] == tracked.runs[0]
    assert "run " in data["b"]["label"]


def _logged_executed(project: Project, index: int) -> nbformat.NotebookNode:

    client = store_client(project.root)
    path = client.download_artifacts(
        project.runs[index], f"executed/{NOTEBOOK}", str(project.root / f"dl-{index}")
    )
    return nbformat.read(path, as_version=4)


def test_ignore_outputs_leaves_only_the_source_changes(tracked: Project) -> None:
    with_outputs = json.loads(
        _cli(tracked, "diff", tracked.runs[0], tracked.runs[1], "--json").stdout
    )
    result = _cli(tracked, "diff", tracked.runs[0], tracked.runs[1], "--json", "--ignore-outputs")
    diff = json.loads(result.stdout)
    text = json.dumps(diff)
    assert "outputs" in json.dumps(with_outputs)
    assert "outputs" not in text and "execution_count" not in text
    assert '"key": "source"' in text  # the injected parameters cell


def test_model_references_resolve_to_the_run_that_logged_the_version(tracked: Project) -> None:
    by_version = _cli(tracked, "diff", "models:/scorer/1", tracked.runs[0], "--json")
    by_alias = _cli(tracked, "diff", "models:/scorer@champion", tracked.runs[0])
    assert by_version.returncode == 0, by_version.stderr
    assert json.loads(by_version.stdout) == []
    assert "are identical" in by_alias.stdout and "scorer v1" in by_alias.stdout
    missing = _cli(tracked, "diff", "models:/scorer@nobody", tracked.runs[0])
    assert missing.returncode == 2
    assert "models:/scorer@nobody" in missing.stderr


def test_git_revision_against_the_edited_file(tracked: Project) -> None:
    result = _cli(tracked, "diff", f"git:HEAD:{NOTEBOOK}", NOTEBOOK, "--color", "never")
    assert result.returncode == 0, result.stderr
    assert "-  loss = 1.0 / (1 + lr * epochs)" in result.stdout
    assert "+  loss = 2.0 / (1 + lr * epochs)" in result.stdout
    unknown = _cli(tracked, "diff", f"git:no-such-branch:{NOTEBOOK}", NOTEBOOK)
    assert unknown.returncode == 2
    assert "no revision 'no-such-branch'" in unknown.stderr


def test_html_page_holds_nbdimes_viewer_and_the_diff(tracked: Project) -> None:
    out = tracked.root / "review" / "diff.html"
    result = _cli(tracked, "diff", tracked.runs[0], tracked.runs[1], "--html", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    assert 'id="nbdime-root"' in page
    assert "lr = 0.2" in page  # the base notebook travels in the page
    assert "<script src=" not in page  # self-contained: nothing to fetch


def test_history_lists_each_run_with_cells_changed(tracked: Project) -> None:
    result = _cli(tracked, "history", NOTEBOOK, "--json")
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    assert [e["run_id"] for e in entries] == tracked.runs
    assert [e["cells_changed"] for e in entries] == [None, 0, 1]
    assert entries[0]["digest"] == entries[1]["digest"] != entries[2]["digest"]
    table = _cli(tracked, "history", NOTEBOOK)
    assert "cells changed" in table.stdout and tracked.runs[2] in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["https://example.com/a.ipynb", NOTEBOOK], "is a URL"),
        (["0123456789abcdef0123456789abcdef", NOTEBOOK], "0123456789abcdef0123456789abcdef"),
        (["missing.ipynb", NOTEBOOK], "missing.ipynb does not exist"),
        (["malformed.ipynb", NOTEBOOK], "malformed.ipynb is not a notebook: invalid JSON"),
        (["nbformat3.ipynb", NOTEBOOK], "nbformat 3 is not supported"),
        (["duplicate_ids.ipynb", NOTEBOOK], "have the same id"),
    ],
)
def test_bad_references_exit_2_with_one_line(
    tracked: Project, args: list[str], message: str
) -> None:
    for name, source in (
        ("malformed.ipynb", "check_truncated.ipynb"),
        ("nbformat3.ipynb", "check_nbformat3.ipynb"),
        ("duplicate_ids.ipynb", "check_duplicate_ids.ipynb"),
    ):
        (tracked.root / name).write_text((TESTS / "notebooks" / source).read_text())
    result = _cli(tracked, "diff", *args)
    assert result.returncode == 2, result.stdout
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
