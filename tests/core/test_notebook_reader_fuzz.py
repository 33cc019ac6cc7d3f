"""Fuzzing the notebook reader: malformed JSON and schema-invalid notebooks raise only
``InvalidNotebookError``, never a parser's or a validator's own exception."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_mlops.core.errors import InvalidNotebookError
from jupyter_mlops.core.notebook_file import parse_notebook

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
CELL_KEYS = ["cell_type", "source", "metadata", "outputs", "execution_count", "id", "attachments"]


def cell() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(
        st.sampled_from(CELL_KEYS),
        st.sampled_from(["code", "markdown", "raw", "x"]) | JSON,
        max_size=6,
    )


NOTEBOOKS = st.fixed_dictionaries(
    {"cells": st.lists(cell(), max_size=4)},
    optional={
        "nbformat": st.sampled_from([3, 4, 5, "4", None]),
        "nbformat_minor": st.sampled_from([0, 4, 5, -1, "x"]),
        "metadata": JSON,
    },
)


def only_our_error(text: str | bytes) -> None:
    try:
        parse_notebook(text, "fuzz.ipynb")
    except InvalidNotebookError as error:
        assert "fuzz.ipynb" in str(error)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data: bytes) -> None:
    only_our_error(data)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_arbitrary_json(value: Any) -> None:
    only_our_error(json.dumps(value))


@settings(max_examples=300, deadline=None)
@given(NOTEBOOKS)
def test_notebook_shaped_json(value: dict[str, Any]) -> None:
    only_our_error(json.dumps(value))


@settings(max_examples=100, deadline=None)
@given(NOTEBOOKS, st.integers(min_value=1, max_value=200))
def test_truncated_notebooks(value: dict[str, Any], cut: int) -> None:
    text = json.dumps(value)
    only_our_error(text[: max(0, len(text) - cut)])
