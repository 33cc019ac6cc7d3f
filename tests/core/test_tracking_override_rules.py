"""The check of a tracking location chosen in JupyterLab (``X-MLOps-Tracking-URI``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from jupyter_mlops.core.errors import UsageError
from jupyter_mlops.core.settings import check_tracking_override, resolve_tracking_override


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A served root with a SQLite store and a folder store, and a store outside it."""
    served = tmp_path / "root"
    (served / "stores" / "mlruns").mkdir(parents=True)
    (served / ".mlops").mkdir()
    for database in (served / "stores" / "team.db", served / ".mlops" / "mlflow.db"):
        sqlite3.connect(database).execute("create table t (x)").connection.close()
    (served / "notes.db").write_text("not a database")
    (tmp_path / "outside").mkdir()
    sqlite3.connect(tmp_path / "outside" / "o.db").execute("create table t (x)").connection.close()
    (served / "escape").symlink_to(tmp_path / "outside")
    return served


@pytest.mark.parametrize(
    ("value", "checked"),
    [
        ("http://mlflow.example:5000", "http://mlflow.example:5000"),
        ("  https://mlflow.example/prefix  ", "https://mlflow.example/prefix"),
        ("sqlite:///stores/team.db", "sqlite:///stores/team.db"),
        ("sqlite:///stores/../stores/team.db", "sqlite:///stores/team.db"),
        ("sqlite:///.mlops/mlflow.db", "sqlite:///.mlops/mlflow.db"),
        ("stores/mlruns", "stores/mlruns"),
        ("stores/mlruns/", "stores/mlruns"),
    ],
)
def test_accepted_values_come_back_relative_to_the_root(
    root: Path, value: str, checked: str
) -> None:
    assert check_tracking_override(value, root) == checked


def test_absolute_spellings_inside_the_root_are_made_relative(root: Path) -> None:
    assert check_tracking_override(f"sqlite:///{root}/stores/team.db", root) == (
        "sqlite:///stores/team.db"
    )
    assert check_tracking_override(f"file://{root}/stores/mlruns", root) == "stores/mlruns"
    assert check_tracking_override(f"{root}/stores/mlruns", root) == "stores/mlruns"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "empty"),
        ("http://user:pw@host", "credentials"),
        ("http://user@host", "credentials"),
        ("https://@host", "credentials"),
        ("http://host:99999", "not a valid URI"),
        ("http:///path-only", "names no host"),
        ("ftp://host/x", "not accepted"),
        ("mysql://u:p@h/db", "not accepted"),
        ("databricks://profile", "not accepted"),
        ("sqlite://stores/team.db", "sqlite:///PATH"),
        ("sqlite:///stores/team.db#x", "no host or query"),
        ("sqlite:///notes.db", "not a SQLite database"),
        ("sqlite:///stores/none.db", "no database file"),
        ("sqlite:///stores", "no database file"),
        ("stores/team.db", "no folder"),
        ("missing-folder", "no folder"),
        ("file://host/stores", "file:///PATH"),
        ("~/mlruns", "'~'"),
        ("stores%2Fmlruns", "percent-escapes"),
        ("stores\\mlruns", "not '\\'"),
        ("stores/mlruns\x00", "control characters"),
        ("stores/ml\nruns", "control characters"),
        ("st\u00f6res", "ASCII"),
        ("x" * 3000, "at most"),
        ("//other/share", "not accepted"),
        ("C:/mlruns", "not accepted"),
    ],
)
def test_other_values_are_a_usage_error_naming_the_problem(
    root: Path, value: str, says: str
) -> None:
    with pytest.raises(UsageError) as raised:
        check_tracking_override(value, root)
    assert says in str(raised.value)
    assert "pw@" not in str(raised.value) and ":p@" not in str(raised.value)


@pytest.mark.parametrize(
    "value",
    [
        "sqlite:///../outside/o.db",
        "sqlite:///escape/o.db",
        "../outside",
        "escape",
        "/",
        "..",
        "stores/../../outside",
    ],
)
def test_stores_outside_the_root_are_refused(root: Path, value: str) -> None:
    with pytest.raises(UsageError, match="outside the folder this server serves"):
        check_tracking_override(value, root)


def test_absolute_paths_outside_the_root_are_refused(root: Path) -> None:
    outside = root.parent / "outside"
    for value in (f"sqlite:///{outside}/o.db", str(outside), outside.as_uri()):
        with pytest.raises(UsageError, match="outside the folder"):
            check_tracking_override(value, root)


def test_the_location_keeps_its_artifacts_beside_the_database(root: Path) -> None:
    location = resolve_tracking_override("sqlite:///stores/team.db", root)
    assert location.source == "setting"
    assert location.uri == f"sqlite:///{root.resolve()}/stores/team.db"
    assert location.artifact_uri == (root.resolve() / "stores" / "artifacts").as_uri()
    assert "sqlite:///stores/team.db" in location.detail
    folder = resolve_tracking_override("stores/mlruns", root)
    assert folder.uri == (root.resolve() / "stores" / "mlruns").as_uri()
    assert folder.kind == "file"
    remote = resolve_tracking_override("http://mlflow.example:5000", root)
    assert (remote.uri, remote.kind, remote.artifact_uri) == (
        "http://mlflow.example:5000",
        "http",
        None,
    )
