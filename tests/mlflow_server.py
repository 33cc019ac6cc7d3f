"""A real ``mlflow server`` for tests: HTTP tracking with proxied artifacts (``--serve-artifacts``).

``start_mlflow_server(workdir)`` starts one on a free loopback port and waits for ``/health``;
``.stop()`` ends its whole process group and ``.start()`` brings it back on the same port, with
the same backend store and artifact folder, so a test can take the store away mid-notebook
and give it back. The backend store URI is a parameter (SQLite by default; a PostgreSQL URI
works the same way); ``extra_args`` are added to the command line and ``extra_env`` to the
server's environment (``--app-name basic-auth`` with ``MLFLOW_AUTH_CONFIG_PATH``, say).

The ``mlflow_server`` fixture shares one server per test session and hands it out running:
a test that stopped it leaves nothing broken for the next one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without tracking settings, and without MLflow's job runner.

    The job runner (huey consumers for GenAI jobs) would add four processes per server that
    no test here uses; on a 2-core CI they cost more than the server itself.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "JUPYTER_MLOPS"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    env.update(extra or {})
    return env


class MlflowServer:
    """One ``mlflow server`` process (group): its URI, its stores, start and stop."""

    def __init__(
        self,
        workdir: Path,
        backend_store_uri: str | None = None,
        port: int | None = None,
        extra_args: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.backend_store_uri = backend_store_uri or f"sqlite:///{workdir / 'server.db'}"
        self.artifacts = workdir / "artifacts"
        self.port = port or _free_port()
        self.extra_args = list(extra_args or [])
        self.extra_env = dict(extra_env or {})
        self.log_path = workdir / "mlflow-server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(VENV_BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--backend-store-uri",
            self.backend_store_uri,
            "--serve-artifacts",
            "--artifacts-destination",
            str(self.artifacts),
            *self.extra_args,
        ]

    def healthy(self, timeout: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=timeout) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> MlflowServer:
        """Start the server (same port, same stores as before) and wait until it answers."""
        if self.running:
            return self
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                env=_server_env(self.extra_env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends uvicorn too
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with {self.process.returncode}:\n{self.log()[-4000:]}"
                )
            if self.healthy(timeout=1.0):
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer within {timeout:.0f} s:\n{self.log()}")

    def stop(self) -> None:
        """End the server's whole process group and wait until its port is closed."""
        process, self.process = self.process, None
        if process is None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # uvicorn's worker may outlive the `mlflow` parent for a moment: wait for the port.
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self.healthy(timeout=0.5) and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):  # anything of the group left over
            os.killpg(process.pid, signal.SIGKILL)


def start_mlflow_server(
    workdir: Path,
    backend_store_uri: str | None = None,
    port: int | None = None,
    extra_args: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> MlflowServer:
    """A started ``mlflow server`` with proxied artifacts under ``workdir/artifacts``."""
    return MlflowServer(workdir, backend_store_uri, port, extra_args, extra_env).start()


@pytest.fixture(scope="session")
def mlflow_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"))
    yield server
    server.stop()


@pytest.fixture
def mlflow_server(mlflow_server_session: MlflowServer) -> MlflowServer:
    """The session's ``mlflow server``, running (restarted if an earlier test stopped it)."""
    return mlflow_server_session.start()
