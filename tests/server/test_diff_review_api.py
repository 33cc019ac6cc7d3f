"""Diff and review endpoints on a real JupyterLab, over real runs in its default store."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from conftest import LabServer, copy_notebook, tracked_run

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def runs(lab: LabServer) -> list[str]:
    """Two papermill runs of run_params.ipynb (lr 0.2 and 0.5) in the lab's store."""
    copy_notebook("run_params.ipynb", lab.root)
    return [
        tracked_run(lab.root, "run_params.ipynb", "-p", "lr", lr, "--output", "o.ipynb")
        for lr in ("0.2", "0.5")
    ]


def _q(**params: str) -> str:
    return urllib.parse.urlencode(params)


def test_diff_returns_the_base_and_nbdimes_diff(lab: LabServer, runs: list[str]) -> None:
    status, body = lab.api(f"/jupyter-mlops/api/diff?{_q(a=runs[0], b=runs[1])}")
    assert status == 200, body
    assert set(body) == {"a", "b", "base", "diff"}
    assert body["a"]["ref"] == runs[0] and runs[1][:8] in body["b"]["label"]
    assert body["base"]["nbformat"] == 4
    assert any(entry["key"] == "cells" for entry in body["diff"])
    status, quiet = lab.api(
        f"/jupyter-mlops/api/diff?{_q(a=runs[0], b=runs[1], ignore_outputs='1')}"
    )
    assert status == 200 and "outputs" not in json.dumps(quiet["diff"])


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ({"a": "run_params.ipynb"}, 400, "usage"),
        ({"a": "https://example.com/x.ipynb", "b": "run_params.ipynb"}, 403, "forbidden_path"),
        ({"a": "../outside.ipynb", "b": "run_params.ipynb"}, 403, "forbidden_path"),
        ({"a": "/etc/hostname", "b": "run_params.ipynb"}, 403, "forbidden_path"),
        ({"a": "git:HEAD:../../x.ipynb", "b": "run_params.ipynb"}, 403, "forbidden_path"),
        ({"a": "missing.ipynb", "b": "run_params.ipynb"}, 404, "not_found"),
        ({"a": "pyproject.toml", "b": "run_params.ipynb"}, 422, "invalid_notebook"),
        ({"a": "models:/x", "b": "run_params.ipynb"}, 400, "usage"),
    ],
)
def test_bad_diff_references_answer_json_4xx(
    lab: LabServer, runs: list[str], query: dict[str, str], status: int, code: str
) -> None:
    got, body = lab.api(f"/jupyter-mlops/api/diff?{_q(**query)}")
    assert (got, body.get("code")) == (status, code), body
    assert body["message"]


def test_review_over_rest_records_the_server_user(lab: LabServer, runs: list[str]) -> None:
    # When a review is opened, commented and approved through the API
    status, review = lab.api(
        "/jupyter-mlops/api/reviews", method="POST", body={"candidate": runs[1]}
    )
    assert status == 201, review
    assert review["base"]["ref"] == f"run:{runs[0]}"
    assert review["diff_url"].startswith("/jupyter-mlops/api/diff?")
    cell = review["cells"][2]
    path = f"/jupyter-mlops/api/reviews/{review['id']}"
    status, after = lab.api(
        f"{path}/comments", method="POST", body={"cell_id": cell, "text": "check this"}
    )
    assert status == 200 and after["comments"][0]["cell_id"] == cell
    status, decided = lab.api(f"{path}/decision", method="POST", body={"decision": "approve"})
    assert status == 200 and decided["state"] == "approved"
    # Then the same review reads back, in the list too, and the diff URL answers
    assert lab.api(path)[1]["state"] == "approved"
    listed = lab.api("/jupyter-mlops/api/reviews")[1]["reviews"]
    assert review["id"] in [r["id"] for r in listed]
    assert lab.api(review["diff_url"])[0] == 200
    assert decided["decided_by"] and decided["created_by"]  # jupyter_server's user names


@pytest.mark.parametrize(
    ("suffix", "body", "status"),
    [
        ("/comments", {"cell_id": "nope", "text": "x"}, 404),
        ("/comments", {"cell_id": "", "text": "x"}, 400),
        ("/decision", {"decision": "merge"}, 400),
        ("/decision", ["approve"], 400),
    ],
)
def test_bad_review_bodies_are_4xx(
    lab: LabServer, runs: list[str], suffix: str, body: object, status: int
) -> None:
    _, review = lab.api("/jupyter-mlops/api/reviews", method="POST", body={"candidate": runs[0]})
    got, answer = lab.api(
        f"/jupyter-mlops/api/reviews/{review['id']}{suffix}", method="POST", body=body
    )
    assert got == status, answer
    assert lab.api(f"/jupyter-mlops/api/reviews/{review['id']}")[1]["state"] == "open"


def test_unknown_review_is_404(lab: LabServer) -> None:
    status, body = lab.api("/jupyter-mlops/api/reviews/rv-00000000")
    assert (status, body["code"]) == (404, "not_found")


def test_post_with_a_cookie_but_without_xsrf_is_403(lab: LabServer, runs: list[str]) -> None:
    # Given a browser-like session logged in with a cookie (no token header)
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{lab.url}/lab?token={lab.token}", timeout=30).read()
    assert any(c.name.startswith("username-") for c in jar)
    # When it POSTs without the _xsrf token
    request = urllib.request.Request(
        f"{lab.url}/jupyter-mlops/api/reviews",
        data=json.dumps({"candidate": runs[0]}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(request, timeout=30)
    # Then it is refused, and with the token from the cookie it is accepted
    assert refused.value.code == 403
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    request.add_header("X-XSRFToken", xsrf)
    with opener.open(request, timeout=60) as response:
        assert response.status == 201


def test_paths_are_read_under_the_served_root_only(lab: LabServer, runs: list[str]) -> None:
    outside = Path(lab.root).parent / "outside.ipynb"
    outside.write_text((Path(lab.root) / "run_params.ipynb").read_text())
    status, body = lab.api(f"/jupyter-mlops/api/diff?{_q(a='../outside.ipynb', b='o.ipynb')}")
    assert status == 403 and "outside the folder this server serves" in body["message"]
