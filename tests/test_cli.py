"""``jupyter mlops`` as a user calls it: through the ``jupyter`` launcher, in a subprocess."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import VENV_BIN, clean_env


def run_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "jupyter"), "mlops", *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_lists_subcommands_through_both_entry_points(project: Path) -> None:
    launcher = run_cli("--help", cwd=project)
    direct = subprocess.run(
        [str(VENV_BIN / "jupyter-mlops"), "--help"], capture_output=True, text=True, check=True
    )
    assert launcher.returncode == 0, launcher.stderr
    assert "status" in launcher.stdout
    assert launcher.stdout.replace("jupyter-mlops", "jupyter mlops") == direct.stdout.replace(
        "jupyter-mlops", "jupyter mlops"
    )


@pytest.mark.own_store
def test_status_reports_the_default_store_and_how_it_was_chosen(project: Path) -> None:
    nested = project / "notebooks"
    nested.mkdir()
    result = run_cli("status", cwd=nested)
    assert result.returncode == 0, result.stderr
    assert f"sqlite:///{project.resolve()}/.mlops/mlflow.db" in result.stdout
    assert "chosen by:     default" in result.stdout
    assert "not created yet" in result.stdout


def test_status_json_with_environment_location(project: Path) -> None:
    result = run_cli("status", "--json", cwd=project, MLFLOW_TRACKING_URI="http://127.0.0.1:9")
    data = json.loads(result.stdout)
    assert data["tracking"]["source"] == "environment"
    assert data["store"]["ok"] is False
    assert "does not answer" in data["store"]["message"]
    assert result.returncode == 3


@pytest.mark.own_store
def test_status_with_broken_pyproject_is_one_line_and_exit_2(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.jupyter-mlops\n")
    result = run_cli("status", cwd=project)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "pyproject.toml" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_subcommand_exits_2(project: Path) -> None:
    result = run_cli("frobnicate", cwd=project)
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_the_cli_reads_notebooks_without_compiling_iri_grammars() -> None:
    """nbformat's jsonschema would import rfc3987-syntax (2.5 s of grammar compiling)."""
    import subprocess
    import sys
    from pathlib import Path

    notebook = Path(__file__).parent / "notebooks" / "check_clean.ipynb"
    code = (
        "import sys\n"
        "from jupyter_mlops.cli import main\n"
        f"code = main(['check', {str(notebook)!r}])\n"
        "import nbformat, jsonschema\n"
        "print(code, sys.modules.get('rfc3987_syntax') is None)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == "0 True", result.stdout + result.stderr


def test_the_batch_opens_its_store_without_pandas_and_numpy_which_stay_importable(
    tmp_path: Path,
) -> None:
    """MLflow imports them only where it can do without; the batch orchestrator skips them
    (0.35 s of its start-up) and a later import still works."""
    import sys

    code = (
        "import sys\n"
        "from jupyter_mlops.fast_imports import without_dataframe_libraries\n"
        "with without_dataframe_libraries():\n"
        "    from mlflow.tracking import MlflowClient\n"
        f"    client = MlflowClient('sqlite:///{tmp_path}/mlflow.db')\n"
        "    run = client.create_run('0')\n"
        "    client.log_metric(run.info.run_id, 'm', 1.5)\n"
        "    client.set_terminated(run.info.run_id)\n"
        "skipped = 'pandas' not in sys.modules and 'numpy' not in sys.modules\n"
        "import pandas\n"
        "print(skipped, client.get_run(run.info.run_id).data.metrics, pandas.__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.stdout.strip().splitlines()[-1] == "True {'m': 1.5} pandas", result.stderr
