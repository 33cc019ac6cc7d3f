"""The store probe sends the credentials MLflow's client would send, and never shows them.

A stub server in a thread stands for MLflow's basic-auth app (``/health`` open to anyone,
the API behind credentials) or for a proxy that checks every path; the real app is in
``tests/team/test_basic_auth.py``.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from jupyter_mlops.core.settings import TrackingLocation
from jupyter_mlops.tracking.health import probe_store, server_problem

PASSWORD = "pa55-" + "x" * 12
GOOD = "Basic " + base64.b64encode(f"ada:{PASSWORD}".encode()).decode()
TOKEN = "tok-" + "y" * 16


class Stub(BaseHTTPRequestHandler):
    guard_health = False  # a proxy in front: every path needs credentials
    seen: list[tuple[str, str | None]]

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        open_path = self.path == "/health" and not self.guard_health
        allowed = self.headers.get("Authorization") in (GOOD, f"Bearer {TOKEN}")
        self.send_response(200 if open_path or allowed else 401)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=[False, True], ids=["open-health", "proxy"])
def stub(request: pytest.FixtureRequest) -> Iterator[tuple[str, list]]:
    seen: list[tuple[str, str | None]] = []
    handler = type("Handler", (Stub,), {"guard_health": request.param, "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def location(uri: str) -> TrackingLocation:
    return TrackingLocation(uri, "environment", "MLFLOW_TRACKING_URI", Path.cwd())


def test_the_right_password_answers(stub: tuple[str, list]) -> None:
    uri, seen = stub
    env = {"MLFLOW_TRACKING_USERNAME": "ada", "MLFLOW_TRACKING_PASSWORD": PASSWORD}
    health = probe_store(location(uri), environ=env)
    assert health.ok, health
    assert {header for _, header in seen} == {GOOD}


def test_a_token_is_sent_as_bearer(stub: tuple[str, list]) -> None:
    uri, _ = stub
    assert probe_store(location(uri), environ={"MLFLOW_TRACKING_TOKEN": TOKEN}).ok


def test_a_wrong_password_is_refused_without_being_shown(stub: tuple[str, list]) -> None:
    uri, _ = stub
    wrong = "wr0ng-" + "z" * 12
    env = {"MLFLOW_TRACKING_USERNAME": "ada", "MLFLOW_TRACKING_PASSWORD": wrong}
    health = probe_store(location(uri), environ=env)
    assert not health.ok
    assert "refused the credentials (HTTP 401)" in health.message, health
    assert "MLFLOW_TRACKING_PASSWORD" in health.message
    assert wrong not in health.message and "\n" not in health.message


def test_no_credentials_says_the_server_asks_for_them(stub: tuple[str, list]) -> None:
    uri, seen = stub
    health = probe_store(location(uri), environ={})
    assert not health.ok and "asks for credentials (HTTP 401)" in health.message, health
    assert all(header is None for _, header in seen)


def test_the_writers_quick_probe_counts_a_refusal_as_answering(stub: tuple[str, list]) -> None:
    # server_problem only asks "is it down?": a 401 from a proxy is an answer
    uri, _ = stub
    assert server_problem(uri) is None
