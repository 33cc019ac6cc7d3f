"""Team mode behind MLflow's basic-auth app: ``mlflow server --app-name basic-auth``.

One server per module (SQLite backend, ``--workers 1``, no job runner), its users in their
own SQLite file named by a ``basic_auth.ini`` in the test's temporary folder (never the
venv's). The admin creates a non-admin user through the auth REST API; that user's
``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` is all the children (CLI, kernels, JupyterLab)
are given. A wrong password fails in one line that says so, and the password is nowhere in
what we print or write.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from mlflow_server import MlflowServer, start_mlflow_server
from nbrun import only_run, running_kernel, stream_text
from store_under_test import HTTP_LIMITS

from conftest import TESTS, VENV_BIN, clean_env, start_lab, stop_lab

NOTEBOOK = "run_params.ipynb"
USER = "ada"


@dataclass
class AuthServer:
    server: MlflowServer
    auth_db: Path
    password: str  # USER's
    admin_password: str

    def as_admin(self, path: str) -> dict:
        """``GET path`` of the auth app's REST API with the admin's credentials."""
        request = urllib.request.Request(
            f"{self.uri}{path}", headers={"Authorization": _basic("admin", self.admin_password)}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return dict(json.loads(response.read()))

    @property
    def uri(self) -> str:
        return self.server.uri

    def env(self, password: str | None = None, **extra: str) -> dict[str, str]:
        """A team member's environment: the server, USER and a password, nothing leaking in."""
        return clean_env(
            MLFLOW_TRACKING_URI=self.uri,
            MLFLOW_TRACKING_USERNAME=USER,
            MLFLOW_TRACKING_PASSWORD=password or self.password,
            **HTTP_LIMITS,
            **extra,
        )


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    workdir = tmp_path_factory.mktemp("basic-auth-server")
    auth_db = workdir / "auth.db"
    admin_password = "admin-" + secrets.token_hex(8)
    config = workdir / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{auth_db}\n"
        "admin_username = admin\n"
        f"admin_password = {admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    server = start_mlflow_server(
        workdir,
        extra_args=["--app-name", "basic-auth"],
        extra_env={
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),  # the app's CSRF key
        },
    )
    try:
        # the admin creates a plain user through the auth REST API
        password = "ada-" + secrets.token_hex(8)
        request = urllib.request.Request(
            f"{server.uri}/api/2.0/mlflow/users/create",
            data=json.dumps({"username": USER, "password": password}).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": _basic("admin", admin_password),
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["user"]["username"] == USER
        yield AuthServer(server, auth_db, password, admin_password)
    finally:
        server.stop()


def auth_cli(
    auth: AuthServer, cwd: Path, *args: str, password: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``jupyter-mlops ARGS`` in a child process with USER's credentials (or ``password``)."""
    return subprocess.run(
        [str(VENV_BIN / "jupyter-mlops"), *args],
        cwd=cwd,
        env=auth.env(password),
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.fixture
def authed_client(auth_server: AuthServer, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    """An MlflowClient in this process with USER's credentials."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", auth_server.password)
    for name, value in HTTP_LIMITS.items():
        monkeypatch.setenv(name, value)
    return MlflowClient(auth_server.uri)


def new_project(root: Path, *notebooks: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "basic-auth"\n')
    for name in notebooks:
        (root / name).write_text((TESTS / "notebooks" / name).read_text())
    return root


@dataclass
class AuthProject:
    root: Path
    run_id: str
    output: str  # the run's stdout and stderr


@pytest.fixture(scope="module")
def auth_project(auth_server: AuthServer, tmp_path_factory: pytest.TempPathFactory) -> AuthProject:
    """``jupyter mlops run run_params.ipynb -p lr 0.3`` with USER's credentials."""
    root = new_project(tmp_path_factory.mktemp("basic-auth-project"), NOTEBOOK)
    result = auth_cli(auth_server, root, "run", NOTEBOOK, "-p", "lr", "0.3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("jupyter mlops run: FINISHED"), result.stdout
    found = re.search(r"\brun ([0-9a-f]{32})\b", result.stdout)
    assert found, result.stdout
    run_id = found.group(1)
    return AuthProject(root, run_id, result.stdout + result.stderr)


def test_the_server_refuses_requests_without_credentials(auth_server: AuthServer) -> None:
    # /health is open (our probe and the helper wait on it), the API is not
    assert auth_server.server.healthy()
    request = urllib.request.Request(f"{auth_server.uri}/api/2.0/mlflow/experiments/search")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    # the users live in the test's own SQLite file, not in the venv
    assert auth_server.auth_db.is_file()


def test_run_with_credentials_writes_params_metrics_and_the_executed_notebook(
    auth_server: AuthServer, auth_project: AuthProject, authed_client: MlflowClient
) -> None:
    run = authed_client.get_run(auth_project.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.3"
    assert run.data.metrics["score"] == pytest.approx(1 - 1 / (1 + 0.3 * 3), abs=1e-6)
    # the server knows who wrote it: USER created the experiment, so USER manages it
    granted = auth_server.as_admin(f"/api/3.0/mlflow/users/permissions/list?username={USER}")
    assert {
        (p["resource_type"], p["resource_pattern"], p["permission"]) for p in granted["permissions"]
    } >= {("experiment", run.info.experiment_id, "MANAGE")}, granted
    assert [(m.step, m.value) for m in authed_client.get_metric_history(run.info.run_id, "curve")]
    # the executed notebook went through the authenticated server
    executed = authed_client.download_artifacts(
        run.info.run_id, f"executed/{NOTEBOOK}", str(auth_project.root / "downloaded")
    )
    text = Path(executed).read_text()
    assert "lr = 0.3" in text
    assert auth_server.password not in text and auth_server.password not in auth_project.output
    assert not (auth_project.root / ".mlops" / "mlflow.db").exists()


def test_tracking_magics_in_a_kernel_write_with_the_credentials(
    auth_server: AuthServer, authed_client: MlflowClient, tmp_path: Path
) -> None:
    root = new_project(tmp_path / "kernel", "tracked_params_metrics.ipynb")
    notebook = root / "tracked_params_metrics.ipynb"
    env = auth_server.env(MLOPS_TEST_SECRET_TOKEN="s3cr3t-value-from-env-0042")
    env = {k: v for k, v in env.items() if k.startswith(("MLFLOW_", "MLOPS_"))}
    with running_kernel(notebook, **env) as kernel:
        cells = [kernel.run(index) for index in range(len(kernel.nb.cells))]
    outputs = [o for c in cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"], outputs
    assert "tracked cells" in stream_text(cells[5], "stdout")
    assert "mlops:" not in stream_text(cells[6], "stderr"), cells[6].outputs  # nothing kept
    run = only_run(authed_client, "tracked-test")
    assert run.info.status == "FINISHED" and run.data.params["lr"] == "0.01"
    assert run.data.params["api_key"] == "***MASKED***"
    history = [(m.step, m.value) for m in authed_client.get_metric_history(run.info.run_id, "acc")]
    assert history == [(3, 0.9), (4, 0.95)]
    assert auth_server.password not in notebook.read_text()


def test_a_kernel_with_a_wrong_password_says_to_set_the_credentials(
    auth_server: AuthServer, tmp_path: Path
) -> None:
    wrong = "wr0ng-" + secrets.token_hex(8)
    root = new_project(tmp_path / "kernel-wrong", "tracked_params_metrics.ipynb")
    notebook = root / "tracked_params_metrics.ipynb"
    env = auth_server.env(wrong, MLOPS_TEST_SECRET_TOKEN="s3cr3t-value-from-env-0042")
    env = {k: v for k, v in env.items() if k.startswith(("MLFLOW_", "MLOPS_"))}
    with running_kernel(notebook, **env) as kernel:
        cells = [kernel.run(index) for index in range(len(kernel.nb.cells))]
    outputs = [o for c in cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"], outputs  # cells kept working
    stop = stream_text(cells[6], "stderr")
    assert "refused the credentials (HTTP 401)" in stop, cells[6].outputs
    assert "%env MLFLOW_TRACKING_PASSWORD" in stop and "records are kept" in stop, stop
    shown = json.dumps([c.get("outputs", []) for c in cells])
    assert wrong not in shown


def test_a_wrong_password_fails_in_one_line_without_showing_it(
    auth_server: AuthServer, tmp_path: Path
) -> None:
    wrong = "wr0ng-" + secrets.token_hex(8)
    root = new_project(tmp_path / "wrong", NOTEBOOK)
    # `run`: exit 3 (store_unavailable in core/errors.py), one line that names the refusal
    result = auth_cli(auth_server, root, "run", NOTEBOOK, password=wrong)
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "refused the credentials (HTTP 401)" in result.stderr, result.stderr
    # `status`: the server answers /health to anyone, but refuses the credentials
    status = auth_cli(auth_server, root, "status", password=wrong)
    assert status.returncode == 3, status.stdout + status.stderr
    store_line = next(line for line in status.stdout.splitlines() if line.startswith("store:"))
    assert "refused the credentials (HTTP 401)" in store_line, status.stdout
    assert "MLFLOW_TRACKING_PASSWORD" in store_line
    as_json = auth_cli(auth_server, root, "status", "--json", password=wrong)
    assert as_json.returncode == 3 and json.loads(as_json.stdout)["store"]["ok"] is False
    # and the password is in none of the outputs, nor in any file the run left behind
    for shown in (result, status, as_json):
        assert wrong not in shown.stdout + shown.stderr
    written = [p for p in root.rglob("*") if p.is_file()]
    assert not [p for p in written if wrong in p.read_text(errors="replace")], written
    # the right password makes status answer
    good = auth_cli(auth_server, root, "status")
    assert good.returncode == 0 and "answers (HTTP 200)" in good.stdout, good.stdout


def test_status_without_credentials_says_the_server_asks_for_them(
    auth_server: AuthServer, tmp_path: Path
) -> None:
    root = new_project(tmp_path / "anonymous")
    env = clean_env(MLFLOW_TRACKING_URI=auth_server.uri, **HTTP_LIMITS)
    status = subprocess.run(
        [str(VENV_BIN / "jupyter-mlops"), "status", "--json"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 3, status.stdout + status.stderr
    message = json.loads(status.stdout)["store"]["message"]
    assert "asks for credentials (HTTP 401)" in message, message


def test_rest_api_of_a_lab_lists_the_runs_of_the_authenticated_server(
    auth_server: AuthServer, auth_project: AuthProject, tmp_path: Path
) -> None:
    lab = start_lab(
        auth_project.root,
        tmp_path,
        env=auth_server.env(JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime")),
    )
    try:
        status, body = lab.api("/jupyter-mlops/api/status")
        assert status == 200, body
        assert body["tracking"]["uri"] == auth_server.uri
        assert body["store"]["ok"] is True, body
        status, page = lab.api("/jupyter-mlops/api/runs")
        assert status == 200, page
        assert auth_project.run_id in [run["id"] for run in page["runs"]], page
        status, run = lab.api(f"/jupyter-mlops/api/runs/{auth_project.run_id}")
        assert status == 200 and run["params"]["lr"] == "0.3", run
        assert auth_server.password not in json.dumps([body, page, run])
    finally:
        stop_lab(lab)
    assert auth_server.password not in lab.log()
