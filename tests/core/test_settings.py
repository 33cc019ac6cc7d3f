"""The tracking-location resolver: each precedence level, and finding the project root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_mlops.core.errors import ConfigError
from jupyter_mlops.core.settings import (
    find_project_root,
    redact_uri,
    resolve_tracking_location,
    store_kind,
)


def write_pyproject(root: Path, tracking_uri: str | None) -> None:
    table = f'\n[tool.jupyter-mlops]\ntracking_uri = "{tracking_uri}"\n' if tracking_uri else ""
    (root / "pyproject.toml").write_text(f'[project]\nname = "x"\n{table}')


def test_default_is_sqlite_under_dot_mlops_in_project_root(tmp_path: Path) -> None:
    # Given a project with a pyproject.toml and no configuration
    write_pyproject(tmp_path, None)
    # When resolving with no argument and no environment
    location = resolve_tracking_location(cwd=tmp_path, environ={})
    # Then the embedded default is chosen
    assert location.source == "default"
    assert location.uri == f"sqlite:///{tmp_path.resolve()}/.mlops/mlflow.db"
    assert location.artifact_uri == (tmp_path.resolve() / ".mlops" / "artifacts").as_uri()
    assert location.kind == "sqlite"


def test_project_root_found_from_nested_folder(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    nested = tmp_path / "a" / "b" / "c"
    nested.mkdir(parents=True)
    assert find_project_root(nested) == tmp_path.resolve()
    location = resolve_tracking_location(cwd=nested, environ={})
    assert location.project_root == tmp_path.resolve()
    assert location.uri == f"sqlite:///{tmp_path.resolve()}/.mlops/mlflow.db"


def test_nearest_marker_wins_over_outer_one(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    inner = tmp_path / "sub"
    inner.mkdir()
    write_pyproject(inner, None)
    assert find_project_root(inner / ".") == inner.resolve()


def test_without_markers_the_working_directory_is_the_root(tmp_path: Path) -> None:
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    assert not any((p / ".git").exists() for p in lonely.resolve().parents), (
        "test needs a clean /tmp"
    )
    assert find_project_root(lonely) == lonely.resolve()


def test_pyproject_overrides_default_and_is_anchored_at_the_root(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "sqlite:///team/track.db")
    nested = tmp_path / "notebooks"
    nested.mkdir()
    location = resolve_tracking_location(cwd=nested, environ={})
    assert location.source == "pyproject"
    assert location.detail == str(tmp_path.resolve() / "pyproject.toml")
    assert location.uri == f"sqlite:///{tmp_path.resolve()}/team/track.db"


def test_environment_overrides_pyproject(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "sqlite:///team/track.db")
    location = resolve_tracking_location(
        cwd=tmp_path, environ={"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}
    )
    assert location.source == "environment"
    assert location.uri == "http://127.0.0.1:5000"
    assert location.kind == "http"


def test_argument_overrides_environment(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "sqlite:///team/track.db")
    location = resolve_tracking_location(
        "postgresql://u:p@localhost/db",
        cwd=tmp_path,
        environ={"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"},
    )
    assert location.source == "argument"
    assert location.kind == "database"


def test_the_jupyterlab_setting_ranks_between_an_argument_and_the_environment(
    tmp_path: Path,
) -> None:
    write_pyproject(tmp_path, None)
    lab = json.dumps(
        {
            "uri": "sqlite:////srv/stores/team.db",
            "artifact_uri": "file:///srv/stores/artifacts",
            "detail": "trackingUri = sqlite:///stores/team.db",
        }
    )
    environ = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000", "JUPYTER_MLOPS_LAB_TRACKING": lab}
    location = resolve_tracking_location(cwd=tmp_path, environ=environ)
    assert (location.source, location.uri, location.artifact_uri) == (
        "setting",
        "sqlite:////srv/stores/team.db",
        "file:///srv/stores/artifacts",
    )
    assert location.detail == "trackingUri = sqlite:///stores/team.db"
    assert location.project_root == tmp_path.resolve()
    explicit = resolve_tracking_location("http://other:5000", cwd=tmp_path, environ=environ)
    assert explicit.source == "argument"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            '{"error": "tracking location \'/etc\' is outside the folder this server serves"}',
            "the JupyterLab setting Tracking URI was refused: tracking location '/etc' is outside",
        ),
        ("not json", "JUPYTER_MLOPS_LAB_TRACKING is not what JupyterLab sets"),
        ('{"uri": 3, "detail": "x"}', "JUPYTER_MLOPS_LAB_TRACKING is not what JupyterLab sets"),
        ('["sqlite:///x.db"]', "JUPYTER_MLOPS_LAB_TRACKING is not what JupyterLab sets"),
    ],
)
def test_a_refused_or_garbled_jupyterlab_setting_is_an_error_not_a_fallback(
    tmp_path: Path, value: str, message: str
) -> None:
    write_pyproject(tmp_path, None)
    with pytest.raises(ConfigError) as error:
        resolve_tracking_location(cwd=tmp_path, environ={"JUPYTER_MLOPS_LAB_TRACKING": value})
    assert message in str(error.value)


def test_empty_environment_variable_is_ignored(tmp_path: Path) -> None:
    write_pyproject(tmp_path, None)
    location = resolve_tracking_location(
        cwd=tmp_path, environ={"MLFLOW_TRACKING_URI": "  ", "JUPYTER_MLOPS_LAB_TRACKING": " "}
    )
    assert location.source == "default"


def test_home_variable_moves_the_default(tmp_path: Path) -> None:
    write_pyproject(tmp_path, None)
    home = tmp_path / "elsewhere"
    location = resolve_tracking_location(cwd=tmp_path, environ={"JUPYTER_MLOPS_HOME": str(home)})
    assert location.uri == f"sqlite:///{home.resolve()}/mlflow.db"
    assert "JUPYTER_MLOPS_HOME" in location.detail


def test_plain_folder_path_becomes_file_uri(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "runs-folder")
    location = resolve_tracking_location(cwd=tmp_path, environ={})
    assert location.uri == (tmp_path.resolve() / "runs-folder").as_uri()
    assert location.kind == "file"


def test_broken_pyproject_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.jupyter-mlops\ntracking_uri = ")
    with pytest.raises(ConfigError, match=r"pyproject\.toml"):
        resolve_tracking_location(cwd=tmp_path, environ={})


def test_non_string_tracking_uri_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.jupyter-mlops]\ntracking_uri = 5\n")
    with pytest.raises(ConfigError, match="tracking_uri must be"):
        resolve_tracking_location(cwd=tmp_path, environ={})


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("sqlite:////x/y.db", "sqlite"),
        ("file:///x", "file"),
        ("/x/y", "file"),
        ("https://mlflow.example", "http"),
        ("postgresql+psycopg2://h/db", "database"),
        ("databricks", "other"),
    ],
)
def test_store_kind(uri: str, kind: str) -> None:
    assert store_kind(uri) == kind


def test_redact_uri_hides_credentials() -> None:
    assert redact_uri("http://alice:s3cret@host:5000/x") == "http://***@host:5000/x"
    assert "s3cret" not in redact_uri("postgresql://alice:s3cret@db/mlflow")
    assert redact_uri("http://host:5000") == "http://host:5000"
