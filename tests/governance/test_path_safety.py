"""References from requests never reach outside the server's root, whatever their spelling.

The validators are exercised directly (no server): a list of known traversal spellings,
then Hypothesis on arbitrary text. "Never looks outside" is checked by recording every
path the resolver asks the file system about.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_mlops.core.errors import ForbiddenPathError, MlopsError
from jupyter_mlops.core.notebook_refs import parse_ref
from jupyter_mlops.core.settings import resolve_tracking_location
from jupyter_mlops.governance.notebook_versions import NotebookVersions

TRAVERSALS = [
    "..",
    "../",
    "../x.ipynb",
    "../../etc/passwd",
    "../../../../../../../../etc/passwd",
    "a/../../x.ipynb",
    "a/b/../../../x.ipynb",
    "./../x.ipynb",
    "a/./../../x.ipynb",
    "/etc/passwd",
    "/etc/hostname",
    "/proc/self/environ",
    "//proc/self/root",
    "///etc/passwd",
    "/",
    "/tmp",
    "~/.ssh/id_rsa",
    "~root/.bashrc",
    "SIBLING/x.ipynb",  # the sibling folder sharing the root's prefix (filled in below)
    "../root-sibling/x.ipynb",
    "link-out/x.ipynb",  # a symlink inside the root pointing outside
    "link-out",
    "link-file.ipynb",
    ".mlops/mlflow.db",
    ".git/config",
    "a/.hidden/x.ipynb",
    ".ipynb_checkpoints/x-checkpoint.ipynb",
    "file:/etc/passwd",
    "file:///etc/passwd",
    "file://localhost/etc/passwd",
    "http://127.0.0.1:8888/api/contents",
    "https://example.com/x.ipynb",
    "s3://bucket/x.ipynb",
    "gs://bucket/x.ipynb",
    "ftp://host/x.ipynb",
    "hdfs:/data/x.ipynb",
    "HTTP://EXAMPLE.COM/x.ipynb",
    "dbfs:/x.ipynb",
    "git:HEAD:../outside.ipynb",
    "git:HEAD:/etc/passwd",
    "git:--upload-pack=touch /tmp/x:a.ipynb",
    "git:-p:a.ipynb",
    "x.ipynb\0../../etc/passwd",
    "\0",
    "a\0b",
    "..\0/x",
    "run:../../x",
    "run:/etc/passwd",
    "models://x/1",
    "models:/../1",
]
# Spellings that stay inside the root: decoded once by the server, they are file names.
INSIDE = [
    "%2e%2e%2fx.ipynb",
    "%252e%252e%252fx.ipynb",
    "..%2fx.ipynb",
    "..\\x.ipynb",
    "..\\..\\windows\\win.ini",
    "\\\\server\\share\\x.ipynb",
    "x.ipynb;rm -rf /",
    "a;b/../c.ipynb",
    "C:\\x.ipynb",
    "....//x.ipynb",
    "..../x.ipynb",
]


@pytest.fixture
def served(tmp_path: Path) -> tuple[NotebookVersions, Path]:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "root-sibling").mkdir()
    (tmp_path / "root-sibling" / "x.ipynb").write_text("{}")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.ipynb").write_text("{}")
    (root / "link-out").symlink_to(tmp_path / "outside")
    (root / "link-file.ipynb").symlink_to(tmp_path / "outside" / "x.ipynb")
    location = resolve_tracking_location(cwd=root, environ={})
    return NotebookVersions(location, cwd=root, root=root), root


def watched_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path the code under test opens or stats, recorded."""
    seen: list[str] = []
    for name in ("stat", "lstat", "open", "readlink", "listdir", "scandir"):
        real = getattr(os, name)

        def spy(path, *args, __real=real, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else "")
            return __real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, spy)
    return seen


def outside(paths: list[str], root: Path) -> list[str]:
    return [p for p in paths if p and not Path(os.path.normpath(p)).is_relative_to(root)]


def test_there_are_fifty_traversal_spellings() -> None:
    assert len(TRAVERSALS) + len(INSIDE) >= 50


@pytest.mark.parametrize("text", TRAVERSALS)
def test_traversals_are_refused_without_looking_outside(
    served: tuple[NotebookVersions, Path], text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    versions, root = served
    text = text.replace("SIBLING", f"../{root.name}-sibling")
    seen = watched_paths(monkeypatch)
    with pytest.raises(MlopsError):
        versions.resolve(text)
    monkeypatch.undo()
    # The symlinks are inside the root; resolving them is what refuses them.
    assert outside(seen, root) == [] or text.startswith("link-")


@pytest.mark.parametrize("text", INSIDE)
def test_odd_spellings_stay_file_names_inside_the_root(
    served: tuple[NotebookVersions, Path], text: str
) -> None:
    versions, root = served
    try:
        path = versions.local_path(parse_ref(text).path or "")
    except ForbiddenPathError as error:
        assert "hidden" not in str(error) or text.startswith(".")
        return
    assert path.is_relative_to(root)


#: Path-like text: pieces of traversals joined at random.
PATHISH = st.lists(
    st.sampled_from(["a", "b", ".", "..", "/", "\\", "%2e", "%2f", "~", ":", ";", "\0", " "]),
    max_size=16,
).map("".join)


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=PATHISH)
def test_any_text_resolves_inside_the_root_or_is_refused(
    served: tuple[NotebookVersions, Path], text: str
) -> None:
    versions, root = served
    try:
        ref = parse_ref(text)
    except MlopsError:
        return
    if ref.kind != "path":
        return
    try:
        path = versions.local_path(ref.path or "")
    except MlopsError:
        return
    assert path.is_relative_to(root)
    assert path.resolve().is_relative_to(root)


@settings(max_examples=300)
@given(text=st.text(max_size=60))
def test_parsing_any_reference_raises_only_our_errors(text: str) -> None:
    with contextlib.suppress(MlopsError):
        parse_ref(text)
