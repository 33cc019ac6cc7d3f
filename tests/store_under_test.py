"""Which tracking store the suite runs against: the embedded default, or the team set-up.

``pytest`` runs every test against the embedded SQLite default (``.mlops/mlflow.db`` of a
project root). ``pytest --store team`` (or ``MLOPS_TEST_STORE=team``; ``make test-team``)
runs the same tests against the team set-up instead: a real PostgreSQL and ``mlflow server
--serve-artifacts`` in front of it, reached over HTTP by the CLI, kernels, Lab and the
tests' own ``MlflowClient``.

Two team servers per session (per xdist worker), on two databases of one PostgreSQL:

* **fresh**: what a per-test ``project`` tracks into. Its database is reset to the state
  right after the server started (every table truncated, the rows it had then put back)
  when a test's ``project`` is made, so a test finds an empty store as it does by default.
* **shared**: what the session-wide projects (the Lab server, the governance project) and
  ``tests/team`` track into. Never reset: like the default store of a session-wide root,
  it keeps what earlier tests wrote.

Tests read a project's store through :func:`tracking_uri_for` / :func:`store_client`, never
by spelling ``sqlite:///ROOT/.mlops/mlflow.db``. A test that picks its store itself is marked
``@pytest.mark.own_store``: one about the embedded default (SQLite locking, how the default
location is chosen, the status line naming it, ``make demo``) or about another set-up (a
folder store, a server of its own). The switch does not apply to it, so ``--store team``
deselects it (pytest reports the count as deselected).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

STORES = ("default", "team")
FRESH_DATABASE = "mlflow_fresh"
# A dead server must fail a test in seconds, not after MLflow's minutes of retries.
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "60", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2"}


@dataclass
class _State:
    store: str = "default"
    fresh_uri: str | None = None
    shared_uri: str | None = None
    baseline: Any = None  # the fresh database's rows right after its server started


_STATE = _State()
_ROOTS: dict[Path, str] = {}  # a session-wide root -> the team URI it tracks into


def team_mode() -> bool:
    return _STATE.store == "team"


def tracking_uri_for(root: Path | str) -> str:
    """The tracking URI a project at ``root`` writes to under the store being tested."""
    resolved = Path(root).resolve()
    if not team_mode():
        return f"sqlite:///{resolved}/.mlops/mlflow.db"
    for known, uri in _ROOTS.items():
        if resolved == known or resolved.is_relative_to(known):
            return uri
    current = os.environ.get("MLFLOW_TRACKING_URI")
    if current and current == _STATE.fresh_uri:
        return current
    assert _STATE.shared_uri, "the team servers are not started"
    return _STATE.shared_uri


def store_client(root: Path | str) -> Any:
    """An ``MlflowClient`` on the store a project at ``root`` writes to."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri_for(root))


def location_for(root: Path | str) -> Any:
    """The resolved tracking location of a project at ``root`` (the package's own type)."""
    from jupyter_mlops.core.settings import resolve_tracking_location

    return resolve_tracking_location(cwd=Path(root), environ=tracking_env(root))


def tracking_env(root: Path | str | None = None) -> dict[str, str]:
    """What a child's environment needs to track where a project at ``root`` does.

    Nothing under the default store (the child finds ``.mlops/`` itself); the team URI and
    short HTTP limits under the team store. Without ``root``: the current test's project.
    """
    if not team_mode():
        return {}
    if root is not None:
        uri = tracking_uri_for(root)
    else:
        uri = os.environ.get("MLFLOW_TRACKING_URI") or _STATE.shared_uri or ""
    return {"MLFLOW_TRACKING_URI": uri, **HTTP_LIMITS}


def share_store(root: Path) -> None:
    """Make ``root`` (a session-wide project) track into the shared team server."""
    if team_mode():
        assert _STATE.shared_uri, "the team servers are not started"
        _ROOTS[root.resolve()] = _STATE.shared_uri


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store",
        choices=STORES,
        default=os.environ.get("MLOPS_TEST_STORE", "default"),
        help="the tracking store every test uses: the embedded SQLite default, or the team "
        "set-up (PostgreSQL + mlflow server); also MLOPS_TEST_STORE",
    )


def pytest_configure(config: pytest.Config) -> None:
    _STATE.store = config.getoption("--store")
    config.addinivalue_line(
        "markers",
        "own_store: the test picks its tracking store itself (the embedded default, a "
        "folder, a server of its own); deselected under --store team",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not team_mode():
        return
    kept = [item for item in items if item.get_closest_marker("own_store") is None]
    left_out = [item for item in items if item.get_closest_marker("own_store") is not None]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


def pytest_report_header(config: pytest.Config) -> str:
    if team_mode():
        return "store: team (PostgreSQL + mlflow server --serve-artifacts)"
    return "store: default (embedded SQLite under each project's .mlops/)"


@pytest.fixture(scope="session")
def team_stores(request: pytest.FixtureRequest) -> Iterator[None]:
    """Under ``--store team``: the fresh and the shared team servers, started once."""
    if not team_mode():
        yield
        return
    postgres = request.getfixturevalue("postgres_server")
    shared = request.getfixturevalue("team_server")
    fresh = request.getfixturevalue("team_fresh_server")
    _STATE.shared_uri, _STATE.fresh_uri = shared.uri, fresh.uri
    _STATE.baseline = postgres.snapshot(FRESH_DATABASE)
    yield
    _STATE.shared_uri = _STATE.fresh_uri = None


def reset_fresh_store(request: pytest.FixtureRequest) -> dict[str, str]:
    """Empty the fresh team store for this test (see the module docstring); the environment
    that names it."""
    request.getfixturevalue("team_stores")
    postgres = request.getfixturevalue("postgres_server")
    postgres.restore(FRESH_DATABASE, _STATE.baseline)
    return {"MLFLOW_TRACKING_URI": str(_STATE.fresh_uri), **HTTP_LIMITS}
