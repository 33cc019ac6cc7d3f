"""``jupyter-mlops check`` end to end: a subprocess on copies of tests/notebooks/check_*.ipynb."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TESTS, VENV_BIN, run_cli

NOTEBOOKS = TESTS / "notebooks"
LINE = re.compile(
    r"^(?P<file>[^:]+\.ipynb)(?::cell (?P<cell>\d+)(?: \[(?P<id>[^\]]+)\])?)?"
    r": (?P<rule>[a-z-]+): (?P<message>.+)$"
)


def check(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(cwd, "check", *args, timeout=120)


def copy_notebooks(project: Path, *names: str) -> None:
    for name in names:
        shutil.copy(NOTEBOOKS / name, project / name)


def findings(stdout: str) -> list[tuple[str, str | None, str | None, str]]:
    """``(file, cell, cell id, rule)`` of each finding line; every other line is the summary."""
    lines = stdout.strip().splitlines()
    assert lines and lines[-1].startswith("jupyter mlops check: "), stdout
    parsed = []
    for line in lines[:-1]:
        match = LINE.match(line)
        assert match, f"not a finding line: {line!r}"
        parsed.append((match["file"], match["cell"], match["id"], match["rule"]))
    return parsed


def test_a_clean_notebook_exits_0(project: Path) -> None:
    copy_notebooks(project, "check_clean.ipynb")
    result = check("check_clean.ipynb", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert findings(result.stdout) == []
    assert "1 notebook checked, no findings" in result.stdout


def test_findings_are_one_line_each_with_file_cell_rule_and_message(project: Path) -> None:
    names = [
        "check_clean.ipynb",
        "check_out_of_order.ipynb",
        "check_error_output.ipynb",
        "check_secret.ipynb",
        "check_absolute_path.ipynb",
    ]
    copy_notebooks(project, *names)
    result = check(*names, cwd=project)
    assert result.returncode == 1, result.stderr
    assert findings(result.stdout) == [
        ("check_out_of_order.ipynb", "2", "second", "execution-order"),
        ("check_out_of_order.ipynb", "3", "third", "not-executed"),
        ("check_error_output.ipynb", "2", "divide", "error-output"),
        ("check_secret.ipynb", "1", "creds", "secret"),
        ("check_secret.ipynb", "2", "key", "secret"),
        ("check_absolute_path.ipynb", "1", "paths", "absolute-path"),
        ("check_absolute_path.ipynb", "1", "paths", "absolute-path"),
        ("check_absolute_path.ipynb", "1", "paths", "absolute-path"),
    ]
    assert "8 findings in 4 notebooks (2 fixable with --fix)" in result.stdout
    assert "AWS Access Key in the source (line 1)" in result.stdout
    assert "Private Key in output 1 (stream)" in result.stdout
    everything = result.stdout + result.stderr
    assert "AKIAIOSFODNN7EXAMPLE" not in everything and "BEGIN RSA" not in everything
    assert "/tmp/scratch.csv" not in everything and "/home/alice/data/raw.csv" in everything


def test_json_format(project: Path) -> None:
    copy_notebooks(project, "check_error_output.ipynb", "check_clean.ipynb")
    result = check("--format", "json", "check_error_output.ipynb", "check_clean.ipynb", cwd=project)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["checked"] == 2 and report["clean"] is False and report["fixed"] == []
    [finding] = report["findings"]
    assert finding == {
        "file": "check_error_output.ipynb",
        "cell": 2,
        "cell_index": 1,
        "cell_id": "divide",
        "rule": "error-output",
        "message": "output 1 is a saved error: ZeroDivisionError: division by zero",
        "output": 1,
        "fixable": True,
    }
    clean = check("--format", "json", "check_clean.ipynb", cwd=project)
    assert clean.returncode == 0 and json.loads(clean.stdout)["clean"] is True


def test_fix_strips_error_and_secret_outputs_and_nothing_else(project: Path) -> None:
    copy_notebooks(project, "check_error_output.ipynb", "check_secret.ipynb")
    before = {
        n: json.loads((project / n).read_text())
        for n in ("check_error_output.ipynb", "check_secret.ipynb")
    }
    result = check("--fix", "check_error_output.ipynb", "check_secret.ipynb", cwd=project)
    assert result.returncode == 1, result.stderr  # the key in a source is left for a person
    assert findings(result.stdout) == [("check_secret.ipynb", "1", "creds", "secret")]
    assert "fixed 2 findings in 2 notebooks; 1 finding in 1 notebook" in result.stdout
    for name, old in before.items():
        new = json.loads((project / name).read_text())
        assert [c["source"] for c in new["cells"]] == [c["source"] for c in old["cells"]]
        assert [c.get("execution_count") for c in new["cells"]] == [
            c.get("execution_count") for c in old["cells"]
        ]
        assert new["metadata"] == old["metadata"]
    fixed_error = json.loads((project / "check_error_output.ipynb").read_text())
    assert fixed_error["cells"][1]["outputs"] == []
    fixed_secret = json.loads((project / "check_secret.ipynb").read_text())
    assert fixed_secret["cells"][1]["outputs"] == []
    assert (
        fixed_secret["cells"][2]["outputs"] == before["check_secret.ipynb"]["cells"][2]["outputs"]
    )
    # The file keeps nbformat's layout: a one-space indent and a final newline.
    assert (project / "check_secret.ipynb").read_text().startswith('{\n "cells": [\n')
    again = check("check_error_output.ipynb", cwd=project)
    assert again.returncode == 0, again.stdout


def test_a_fully_fixed_notebook_exits_0(project: Path) -> None:
    copy_notebooks(project, "check_error_output.ipynb")
    result = check("--fix", "check_error_output.ipynb", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fixed 1 finding in 1 notebook" in result.stdout


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("check_truncated.ipynb", "invalid JSON at line 10"),
        ("check_nbformat3.ipynb", "nbformat 3 is not supported"),
        ("check_duplicate_ids.ipynb", "cells 1 and 3 have the same id 'same'"),
    ],
)
def test_invalid_notebooks_exit_2_with_one_line_naming_file_and_problem(
    project: Path, name: str, problem: str
) -> None:
    copy_notebooks(project, name, "check_error_output.ipynb")
    before = (project / "check_error_output.ipynb").read_text()
    result = check("--fix", "check_error_output.ipynb", name, cwd=project)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert name in result.stderr and problem in result.stderr
    assert (project / "check_error_output.ipynb").read_text() == before  # nothing written


def test_schema_errors_missing_files_and_urls_exit_2(project: Path) -> None:
    bad = json.loads((NOTEBOOKS / "check_clean.ipynb").read_text())
    del bad["cells"][1]["source"]
    (project / "schema.ipynb").write_text(json.dumps(bad))
    for args, problem in [
        (
            ["schema.ipynb"],
            "schema.ipynb is not a valid notebook: cell 2: 'source' is a required property",
        ),
        (["missing.ipynb"], "missing.ipynb does not exist"),
        (["https://example.com/a.ipynb"], "https://example.com/a.ipynb is a URL"),
        (["s3://bucket/a.ipynb"], "s3://bucket/a.ipynb is a URL"),
    ]:
        result = check(*args, cwd=project)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert problem in result.stderr and result.stderr.count("\n") == 1


def test_rules_and_options_come_from_pyproject(project: Path) -> None:
    copy_notebooks(project, "check_big_output.ipynb", "check_error_output.ipynb")
    assert check("check_big_output.ipynb", cwd=project).returncode == 0  # 9 KB < 500 KB
    (project / "pyproject.toml").write_text(
        '[project]\nname = "scratch"\n\n[tool.jupyter-mlops.check]\n'
        'output_size_kb = 4\ndisable = ["error-output"]\n'
    )
    result = check("check_big_output.ipynb", "check_error_output.ipynb", cwd=project)
    assert result.returncode == 1
    assert findings(result.stdout) == [("check_big_output.ipynb", "1", "dump", "output-size")]
    assert "over the 4 KB limit" in result.stdout
    (project / "pyproject.toml").write_text("[tool.jupyter-mlops.check]\noutput_limit = 4\n")
    bad = check("check_big_output.ipynb", cwd=project)
    assert bad.returncode == 2
    assert "pyproject.toml" in bad.stderr and "unknown key output_limit" in bad.stderr


def test_pipeline_steps_without_a_parameters_cell_and_folder_arguments(project: Path) -> None:
    steps = project / "flow"
    (steps / ".ipynb_checkpoints").mkdir(parents=True)
    shutil.copy(NOTEBOOKS / "check_clean.ipynb", steps / "prepare.ipynb")
    shutil.copy(NOTEBOOKS / "check_clean.ipynb", steps / "notes.ipynb")
    shutil.copy(NOTEBOOKS / "check_error_output.ipynb", steps / ".ipynb_checkpoints" / "x.ipynb")
    (steps / "mlops.yaml").write_text("steps:\n  prepare:\n    notebook: prepare.ipynb\n")
    result = check("flow", cwd=project)
    assert result.returncode == 1, result.stderr
    assert findings(result.stdout) == [("flow/prepare.ipynb", None, None, "no-parameters-cell")]
    assert "step 'prepare' of flow/mlops.yaml" in result.stdout
    assert "1 finding in 1 notebook" in result.stdout


def test_the_pre_commit_hook_runs_this_command_on_notebooks() -> None:
    [hook] = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "jupyter-mlops-check"
    assert hook["entry"] == "jupyter-mlops check"
    assert hook["language"] == "python"
    assert re.search(hook["files"], "notebooks/train.ipynb")
    assert not re.search(hook["files"], "train.py")


def test_help_lists_check() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "jupyter-mlops"), "--help"], capture_output=True, text=True, check=True
    )
    assert "check" in result.stdout
    sub = subprocess.run(
        [str(VENV_BIN / "jupyter-mlops"), "check", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--fix" in sub.stdout and "--format" in sub.stdout
