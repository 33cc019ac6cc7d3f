"""``GET /jupyter-mlops/api/status`` on a real JupyterLab with authentication required."""

from __future__ import annotations

from store_under_test import team_mode, tracking_uri_for

import jupyter_mlops

from conftest import LabServer


def test_status_without_token_is_forbidden(lab: LabServer) -> None:
    status, body = lab.api("/jupyter-mlops/api/status", token=False)
    assert status == 403
    assert "version" not in body


def test_status_with_wrong_token_is_forbidden(lab: LabServer) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{lab.url}/jupyter-mlops/api/status")
    request.add_header("Authorization", "token not-the-token")
    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as error:
        assert error.code == 403
    else:
        raise AssertionError("a wrong token was accepted")


def test_status_with_token_reports_version_location_and_store(lab: LabServer) -> None:
    status, body = lab.api("/jupyter-mlops/api/status")
    assert status == 200
    assert body["version"] == jupyter_mlops.__version__
    tracking = body["tracking"]
    assert tracking["uri"] == tracking_uri_for(lab.root)
    assert tracking["project_root"] == str(lab.root.resolve())
    if team_mode():  # the Lab server was given the team server's URI
        assert (tracking["source"], tracking["kind"]) == ("environment", "http")
    else:
        assert (tracking["source"], tracking["kind"]) == ("default", "sqlite")
    assert set(body["store"]) == {"ok", "kind", "message"}
    assert body["store"]["ok"] is True


#: A value for each named group of the route patterns, to request a concrete URL.
ROUTE_SAMPLES = {
    "review_id": "rv-0123abcd",
    "run_id": "0123abcd",
    "key": "acc",
    "job_id": "bj-0123abcd",
    "model_name": "some-model",
    "model_version": "1",
}


def concrete_path(pattern: str) -> str:
    import re

    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: ROUTE_SAMPLES[m.group(1)], pattern)
    assert "(" not in path and "[" not in path, f"no sample for a group of {pattern}"
    return path


def test_every_route_rejects_requests_without_credentials(lab: LabServer) -> None:
    from jupyter_mlops.server.routes import route_table

    for pattern, handler in route_table():
        path = concrete_path(pattern)
        methods = [m for m in ("get", "post", "put", "patch", "delete") if m in vars(handler)]
        assert methods, f"{handler.__name__} handles no method"
        for method in methods:
            import urllib.error
            import urllib.request

            request = urllib.request.Request(f"{lab.url}{path}", method=method.upper(), data=None)
            try:
                urllib.request.urlopen(request, timeout=10)
            except urllib.error.HTTPError as error:
                assert error.code == 403, f"{method.upper()} {path} answered {error.code}"
            else:
                raise AssertionError(f"{method.upper()} {path} answered without credentials")
