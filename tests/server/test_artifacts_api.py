"""``GET /jupyter-mlops/api/runs/<id>/artifacts?path=``: a run's files, served inert."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
from store_under_test import tracking_uri_for

from jupyter_mlops.core.artifacts import artifact_response, check_artifact_path
from jupyter_mlops.core.errors import NotFoundError, TooLargeError, UsageError
from jupyter_mlops.core.settings import resolve_tracking_location
from jupyter_mlops.tracking.mlflow_store import MlflowRunStore

from conftest import LabServer, copy_notebook, tracked_run

pytestmark = pytest.mark.server

HOSTILE_HTML = b"<html><body><script>document.title = 'pwned'</script></body></html>"
HOSTILE_SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
ODD_NAME = 'r\u00e9sum\u00e9 "v1"; final.txt'


def fetch(
    lab: LabServer, run_id: str, path: str | None, *, token: bool = True, **query: str
) -> tuple[int, dict[str, str], bytes]:
    """GET an artifact: (status, headers with lower-case names, body) for any answer."""
    params = {**({"path": path} if path is not None else {}), **query}
    url = f"{lab.url}/jupyter-mlops/api/runs/{run_id}/artifacts?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"token {lab.token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            return response.status, headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def store_of(lab: LabServer) -> MlflowRunStore:
    return MlflowRunStore(resolve_tracking_location(tracking_uri_for(lab.root)))


@pytest.fixture(scope="module")
def run_id(lab: LabServer) -> str:
    """A papermill run of run_params.ipynb, plus an HTML, an SVG and an oddly named file."""
    copy_notebook("run_params.ipynb", lab.root)
    found = tracked_run(
        lab.root,
        "run_params.ipynb",
        "--experiment",
        "artifacts-api",
        "--output",
        "artifacts-api-out.ipynb",
    )
    store = store_of(lab)
    store.put_artifact(found, "reports/report.html", HOSTILE_HTML)
    store.put_artifact(found, "plot.svg", HOSTILE_SVG)
    store.put_artifact(found, ODD_NAME, b"odd\n")
    return found


def test_a_text_artifact_is_served_with_its_type_inline(lab: LabServer, run_id: str) -> None:
    # When cells.jsonl is asked for
    status, headers, body = fetch(lab, run_id, "cells.jsonl")
    # Then it is the run's file, as text, inline, and still inert
    assert status == 200, body
    assert body == store_of(lab).read_artifact(run_id, "cells.jsonl")
    assert all(isinstance(json.loads(line), dict) for line in body.splitlines())
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["content-disposition"] == 'inline; filename="cells.jsonl"'
    assert headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in headers["content-security-policy"]
    # and with download=1 the same bytes come as an attachment
    status, headers, again = fetch(lab, run_id, "cells.jsonl", download="1")
    assert status == 200 and again == body
    assert headers["content-disposition"] == 'attachment; filename="cells.jsonl"'


def test_the_notebook_snapshot_and_the_executed_notebook_download(
    lab: LabServer, run_id: str
) -> None:
    _, run = lab.api(f"/jupyter-mlops/api/runs/{run_id}")
    snapshot = f"snapshots/{run['tags']['mlops.input_snapshot']}.ipynb"
    for path in (snapshot, "executed/run_params.ipynb"):
        status, headers, body = fetch(lab, run_id, path, download="1")
        assert status == 200, body
        notebook = json.loads(body)
        assert notebook["nbformat"] == 4
        assert any("lr * epochs" in "".join(c["source"]) for c in notebook["cells"])
        assert headers["content-type"] == "application/x-ipynb+json"
        name = path.rpartition("/")[2]
        assert headers["content-disposition"] == f'attachment; filename="{name}"'
    # the executed one holds the outputs
    _, _, executed = fetch(lab, run_id, "executed/run_params.ipynb")
    outputs = [o for c in json.loads(executed)["cells"] for o in c.get("outputs", [])]
    assert any("base 0.230769" in "".join(o.get("text", "")) for o in outputs)


@pytest.mark.parametrize(
    ("path", "body"),
    [("reports/report.html", HOSTILE_HTML), ("plot.svg", HOSTILE_SVG)],
    ids=["html", "svg"],
)
@pytest.mark.parametrize("download", [None, "1", "0"])
def test_html_and_svg_are_always_opaque_attachments(
    lab: LabServer, run_id: str, path: str, body: bytes, download: str | None
) -> None:
    query = {} if download is None else {"download": download}
    status, headers, data = fetch(lab, run_id, path, **query)
    assert status == 200, data
    assert data == body
    name = path.rpartition("/")[2]
    assert headers["content-disposition"] == f'attachment; filename="{name}"'
    assert headers["content-type"] == "application/octet-stream"
    assert headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"


def test_a_name_that_is_not_ascii_has_an_rfc_6266_filename(lab: LabServer, run_id: str) -> None:
    status, headers, body = fetch(lab, run_id, ODD_NAME)
    assert status == 200 and body == b"odd\n"
    disposition = headers["content-disposition"]
    assert disposition.startswith('inline; filename="r_sum_ _v1__ final.txt"; ')
    quoted = urllib.parse.quote(ODD_NAME, safe="")
    assert disposition.endswith(f"filename*=UTF-8''{quoted}")


@pytest.mark.parametrize(
    "path",
    [
        "../mlflow.db",
        "../../../../etc/passwd",
        "executed/../../x",
        "/etc/passwd",
        "//etc/passwd",
        "..\\cells.jsonl",
        "snapshots\\x.ipynb",
        "file:///etc/passwd",
        "http://example.com/x",
        "C:/Windows/win.ini",
        "cells.jsonl\x00.png",
        "./cells.jsonl",
        "executed//run_params.ipynb",
        "executed/",
        "x" * 2000,
        "",
        "   ",
    ],
)
def test_paths_that_leave_the_run_or_are_not_paths_are_400(
    lab: LabServer, run_id: str, path: str
) -> None:
    status, headers, body = fetch(lab, run_id, path)
    assert status == 400, body
    assert json.loads(body)["code"] == "usage"
    assert "content-disposition" not in headers


def test_a_missing_path_parameter_is_400(lab: LabServer, run_id: str) -> None:
    status, _, body = fetch(lab, run_id, None)
    assert status == 400 and "'path'" in json.loads(body)["message"]


def test_a_folder_is_400_and_what_does_not_exist_is_404(lab: LabServer, run_id: str) -> None:
    status, _, body = fetch(lab, run_id, "executed")
    assert status == 400 and "folder" in json.loads(body)["message"]
    status, _, body = fetch(lab, run_id, "no-such-file.txt")
    assert status == 404 and json.loads(body)["code"] == "not_found"
    status, _, body = fetch(lab, run_id, "no-such-folder/x.txt")
    assert status == 404, body
    status, _, body = fetch(lab, "0" * 32, "cells.jsonl")
    assert status == 404 and json.loads(body)["code"] == "not_found"


def test_without_credentials_it_is_403(lab: LabServer, run_id: str) -> None:
    status, headers, _ = fetch(lab, run_id, "cells.jsonl", token=False)
    assert status == 403
    assert "content-disposition" not in headers


def test_an_artifact_over_the_cap_is_too_large(lab: LabServer, run_id: str) -> None:
    from jupyter_mlops.server.artifact_handlers import read_run_artifact

    location = resolve_tracking_location(tracking_uri_for(lab.root))
    assert read_run_artifact(location, run_id, "plot.svg", limit=len(HOSTILE_SVG)) == HOSTILE_SVG
    with pytest.raises(TooLargeError, match="over"):
        read_run_artifact(location, run_id, "plot.svg", limit=len(HOSTILE_SVG) - 1)
    with pytest.raises(NotFoundError):
        read_run_artifact(location, run_id, "snapshots/missing.ipynb")


# -- the rules, without a server ------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["cells.jsonl", "snapshots/ab12.ipynb", "a b/c d.txt", "x..y", ".hidden", "a/...b"]
)
def test_ordinary_artifact_paths_pass(path: str) -> None:
    assert check_artifact_path(path) == path


@pytest.mark.parametrize("path", ["..", "a/..", "a/./b", "a\tb", "a\nb", "\x7f", "data:x", "a:b"])
def test_odd_artifact_paths_are_refused(path: str) -> None:
    with pytest.raises(UsageError):
        check_artifact_path(path)


@pytest.mark.parametrize(
    ("path", "download", "content_type", "kind"),
    [
        ("m.json", False, "application/json", "inline"),
        ("img/p.PNG", False, "image/png", "inline"),
        ("t.csv", True, "text/csv; charset=utf-8", "attachment"),
        ("r.HTM", False, "application/octet-stream", "attachment"),
        ("x.xhtml", False, "application/octet-stream", "attachment"),
        ("feed.xml", False, "application/octet-stream", "attachment"),
        ("model.pkl", False, "application/octet-stream", "attachment"),
        ("MLmodel", False, "application/octet-stream", "attachment"),
        ("doc.pdf", False, "application/octet-stream", "attachment"),
    ],
)
def test_types_are_whitelisted_and_active_ones_are_attachments(
    path: str, download: bool, content_type: str, kind: str
) -> None:
    response = artifact_response(path, download)
    assert response.content_type == content_type
    assert response.disposition.startswith(f"{kind}; filename=")


def test_the_filename_cannot_break_out_of_its_quotes() -> None:
    disposition = artifact_response('a"; filename=evil.html\\.txt', False).disposition
    assert disposition.startswith('inline; filename="a__ filename=evil.html_.txt"; filename*=')
    assert disposition.count('"') == 2
