"""Shared fixtures: real JupyterLab servers, Debian Chromium for Playwright, scratch projects."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from store_under_test import reset_fresh_store, share_store, team_mode, tracking_env

pytest_plugins = ["store_under_test", "mlflow_server", "postgres_server", "governance_project"]

TESTS = Path(__file__).parent
REPO = TESTS.parent
VENV_BIN = Path(sys.executable).parent
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    """Debian's Chromium; Playwright's own browser downloads are not reachable here."""
    return shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """Launch Debian Chromium. If it is missing the launch fails: a browser test never skips."""
    return {**browser_type_launch_args, "executable_path": chromium_path(), "args": CHROMIUM_FLAGS}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(*, root: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment for a child process: no tracking location leaks in from the caller.

    Under ``--store team`` it names the team server the project at ``root`` (by default,
    the current test's ``project``) tracks into; see ``store_under_test.py``.
    """
    team = tracking_env(root)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "JUPYTER_MLOPS"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(team)
    env.update(extra)
    return env


def processes_with_env(name: str, value: str) -> list[int]:
    """Pids of the processes whose environment sets ``name=value`` (kernels of a run, say)."""
    needle = f"{name}={value}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def run_cli(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``jupyter-mlops ARGS`` as a user runs it: a child process, no tracking env leaking in."""
    return subprocess.run(
        [str(VENV_BIN / "jupyter-mlops"), *args],
        cwd=cwd,
        env=clean_env(root=cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_main(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``jupyter mlops ARGS`` in this process (fast: imports paid once), run_cli's result shape.

    For tests that call the CLI many times; a test of the installed command uses run_cli.
    """
    import contextlib
    import io

    from jupyter_mlops.cli import main

    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    team = tracking_env(cwd)
    saved = {
        k: os.environ.pop(k)
        for k in list(os.environ)
        if k.startswith("MLFLOW_TRACKING") or k in team
    }
    os.environ.update(team)
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(previous)
        for name in team:
            os.environ.pop(name, None)
        os.environ.update(saved)
    stdout, stderr = out.getvalue(), err.getvalue()
    return subprocess.CompletedProcess(["jupyter-mlops", *args], code, stdout, stderr)


def tracked_run(root: Path, notebook: str, *args: str) -> str:
    """``jupyter-mlops run NOTEBOOK ARGS`` in ``root``, which must finish; its run id."""
    result = run_cli(root, "run", notebook, *args)
    assert result.returncode == 0, result.stderr
    match = re.search(r"\b([0-9a-f]{32})\b", result.stdout)
    assert match, result.stdout
    return match.group(1)


def copy_notebook(name: str, project: Path) -> Path:
    """A notebook of ``tests/notebooks`` copied into ``project``."""
    target = project / name
    shutil.copy(TESTS / "notebooks" / name, target)
    return target


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Path:
    """A scratch project root (it holds a pyproject.toml) that is the working directory.

    Its store is empty: the default store is created in it on first use; under ``--store
    team`` the fresh team server is emptied and named in ``MLFLOW_TRACKING_URI``.
    """
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "scratch"\n')
    monkeypatch.chdir(root)
    for name in list(os.environ):
        if name.startswith(("MLFLOW_", "JUPYTER_MLOPS")):
            monkeypatch.delenv(name)
    if team_mode():
        for name, value in reset_fresh_store(request).items():
            monkeypatch.setenv(name, value)
    return root


@dataclass
class LabServer:
    """A running JupyterLab: its URL, token and the folder it serves."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def api(
        self, path: str, *, token: bool = True, method: str = "GET", body: object = None
    ) -> tuple[int, dict]:
        """Call a JSON endpoint; returns (status, body) for 2xx and error answers alike."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"token {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                return error.code, json.loads(body or b"{}")
            except json.JSONDecodeError:
                return error.code, {"raw": body.decode(errors="replace")}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_lab(
    root: Path, workdir: Path, env: dict[str, str] | None = None, extra_args: tuple[str, ...] = ()
) -> LabServer:
    """Start ``jupyter lab`` on a free loopback port, with a token and no anonymous access."""
    port = free_port()
    token = secrets.token_hex(16)
    settings = workdir / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    runtime = workdir / "runtime"
    runtime.mkdir(exist_ok=True)
    command = [
        str(VENV_BIN / "jupyter"),
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        "--ServerApp.allow_unauthenticated_access=False",
        "--ServerApp.port_retries=0",
        f"--LabApp.user_settings_dir={workdir / 'user-settings'}",
        f"--LabApp.workspaces_dir={workdir / 'workspaces'}",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    command += extra_args
    log_path = workdir / "lab.log"
    process = subprocess.Popen(
        command,
        cwd=root,
        env=env or clean_env(root=root, JUPYTER_RUNTIME_DIR=str(runtime)),
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = LabServer(f"http://127.0.0.1:{port}", token, root, process, log_path)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {process.returncode}:\n{server.log()}")
        try:
            if server.api("/api/status")[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.3)
    stop_lab(server)
    raise RuntimeError(f"jupyter lab did not answer within 90 s:\n{server.log()}")


def stop_lab(server: LabServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory, team_stores: None) -> Iterator[LabServer]:
    """One JupyterLab for the session, serving a scratch project with the store under test
    (the default store of its root, or the shared team server)."""
    workdir = tmp_path_factory.mktemp("lab")
    root = workdir / "project"
    root.mkdir()
    share_store(root)
    (root / "pyproject.toml").write_text('[project]\nname = "lab-project"\n')
    server = start_lab(root, workdir)
    yield server
    stop_lab(server)


@pytest.fixture
def workspace(request: pytest.FixtureRequest, page: Any, lab: LabServer) -> Iterator[str]:
    """A Lab workspace of the test's own (no tabs of other tests), dropped afterwards.

    Named after the test module (``test_run_browser`` → ``run-browser-1a2b3c4d``).
    """
    module = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    name = f"{module.replace('_', '-')}-{secrets.token_hex(4)}"
    page.set_viewport_size({"width": 1400, "height": 1000})
    yield name
    for open_page in page.context.pages:  # so that no page saves the workspace again
        open_page.close()
    delete = urllib.request.Request(f"{lab.url}/lab/api/workspaces/{name}", method="DELETE")
    delete.add_header("Authorization", f"token {lab.token}")
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(delete, timeout=10).close()
