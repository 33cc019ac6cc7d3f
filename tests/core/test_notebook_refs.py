"""Parsing the references that diff, history and reviews accept."""

from __future__ import annotations

import pytest

from jupyter_mlops.core.errors import ForbiddenPathError, UsageError
from jupyter_mlops.core.notebook_refs import parse_ref

RUN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "kind", "fields"),
    [
        (RUN, "run", {"run_id": RUN}),
        (f"run:{RUN}", "run", {"run_id": RUN}),
        ("run:abc_1", "run", {"run_id": "abc_1"}),
        ("models:/churn/3", "model", {"model_name": "churn", "model_version": "3"}),
        ("models:/churn@champion", "model", {"model_name": "churn", "model_alias": "champion"}),
        ("models:/team/churn/12", "model", {"model_name": "team/churn", "model_version": "12"}),
        ("git:HEAD~1:nb/train.ipynb", "git", {"rev": "HEAD~1", "path": "nb/train.ipynb"}),
        ("notebooks/train.ipynb", "path", {"path": "notebooks/train.ipynb"}),
        (" train.ipynb ", "path", {"path": "train.ipynb"}),
        # 32 characters but not all hex: a file name, not a run id.
        ("0123456789abcdef0123456789abcdeg", "path", {}),
    ],
)
def test_references_parse_to_their_kind(text: str, kind: str, fields: dict[str, str]) -> None:
    ref = parse_ref(text)
    assert ref.kind == kind
    for name, value in fields.items():
        assert getattr(ref, name) == value


@pytest.mark.parametrize(
    "text",
    [
        "https://example.com/nb.ipynb",
        "http://127.0.0.1:5000/x.ipynb",
        "s3://bucket/nb.ipynb",
        "file:///etc/passwd",
        "git://host/repo",
        "models://churn/1",
    ],
)
def test_urls_are_refused(text: str) -> None:
    with pytest.raises(ForbiddenPathError, match="URL"):
        parse_ref(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("models:/churn", "not a model version reference"),
        ("models:/churn/latest", "not a model version reference"),
        ("models:churn/1", "models:/NAME/VERSION"),
        ("git:HEAD", "git:REV:PATH"),
        ("git::nb.ipynb", "git:REV:PATH"),
        ("git:--output=/tmp/x:nb.ipynb", "not a git revision"),
        ("run:../../etc", "not a run id"),
    ],
)
def test_malformed_references_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_ref(text)
