"""Error bodies and log lines of our handlers carry no traceback, token or password.

A Lab tracks to a server URI with credentials in it, on a port where nothing answers;
every route that touches the store fails, and neither the answers nor the server's log
after start-up may show the password, the Lab's token or a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import LabServer, clean_env, start_lab, stop_lab

pytestmark = pytest.mark.server
PASSWORD = "s3cretPW-do-not-show"
RUN = "0123456789abcdef0123456789abcdef"
CALLS = [
    ("GET", "/jupyter-mlops/api/status", None),
    ("GET", "/jupyter-mlops/api/experiments", None),
    ("GET", "/jupyter-mlops/api/runs", None),
    ("GET", f"/jupyter-mlops/api/runs/{RUN}", None),
    ("GET", f"/jupyter-mlops/api/diff?a={RUN}&b=run:{RUN}", None),
    ("GET", "/jupyter-mlops/api/reviews", None),
    ("POST", "/jupyter-mlops/api/reviews", {"candidate": RUN}),
    ("GET", "/jupyter-mlops/api/models", None),
    ("GET", "/jupyter-mlops/api/reviews/rv-00000000", None),
    ("POST", "/jupyter-mlops/api/batches", {"notebook": "x.ipynb", "grid": {"a": [1]}}),
]


@pytest.fixture(scope="module")
def lab_with_credentials(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    workdir = tmp_path_factory.mktemp("lab-creds")
    root = workdir / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "creds"\n')
    runtime = workdir / "runtime"
    runtime.mkdir()
    env = clean_env(
        JUPYTER_RUNTIME_DIR=str(runtime),
        MLFLOW_TRACKING_URI=f"http://alice:{PASSWORD}@127.0.0.1:9/",
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        MLFLOW_HTTP_REQUEST_TIMEOUT="2",
    )
    server = start_lab(root, workdir, env=env)
    yield server
    stop_lab(server)


def test_failures_show_no_password_token_or_traceback(lab_with_credentials: LabServer) -> None:
    lab = lab_with_credentials
    started_log = len(lab.log())
    answers = []
    for method, path, body in CALLS:
        status, answer = lab.api(path, method=method, body=body)
        answers.append((path, status, answer))
    # Every call answered (a 4xx/5xx for what needs the store), as JSON
    assert all(status < 600 for _, status, _ in answers)
    failed = [a for a in answers if a[1] >= 400]
    assert len(failed) >= 5, answers
    text = repr(answers)
    log = lab.log()[started_log:]
    for where, content in (("answers", text), ("log", log)):
        assert PASSWORD not in content, where
        assert lab.token not in content, where
        assert "Traceback" not in content, where
    # The tracking location is still named, with the credentials hidden
    status = answers[0][2]
    assert status["tracking"]["uri"] == "http://***@127.0.0.1:9/"
