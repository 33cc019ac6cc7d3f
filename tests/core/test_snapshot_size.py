"""The snapshot size policy: huge outputs become stubs; small ones are kept as they are."""

from __future__ import annotations

import json

from jupyter_mlops.core.secrets import SecretMasker
from jupyter_mlops.core.snapshot import (
    MAX_NOTEBOOK_OUTPUT_CHARS,
    MAX_OUTPUT_CHARS,
    masked_copy,
    prepare_snapshot,
)


def notebook(outputs: list[dict]) -> dict:
    cell = {
        "cell_type": "code",
        "id": "c1",
        "metadata": {},
        "source": "show()",
        "execution_count": 1,
        "outputs": outputs,
    }
    return {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def stream(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": text}


def test_an_output_over_the_limit_becomes_a_stub_naming_size_and_hash() -> None:
    big = {
        "output_type": "display_data",
        "data": {"image/png": "A" * (MAX_OUTPUT_CHARS + 1), "text/plain": "<Figure>"},
        "metadata": {},
    }
    nb = notebook(
        [
            stream("kept\n"),
            big,
            {
                "output_type": "error",
                "ename": "E",
                "evalue": "v",
                "traceback": ["x" * (MAX_OUTPUT_CHARS + 1)],
            },
        ]
    )
    _digest, data = prepare_snapshot(nb, SecretMasker())
    outputs = json.loads(data)["cells"][0]["outputs"]
    assert outputs[0] == stream("kept\n")
    assert outputs[1]["output_type"] == "display_data"
    assert (
        "of 2.0 MB was left out of this copy: over 2 MB; sha256"
        in (outputs[1]["data"]["text/plain"])
    )
    assert "image/png" in outputs[1]["data"]["text/plain"]
    assert outputs[2]["ename"] == "E" and "left out" in outputs[2]["traceback"][0]
    assert len(data) < 10_000


def test_outputs_past_the_notebook_budget_are_stubbed_in_order() -> None:
    piece = "y" * (MAX_OUTPUT_CHARS - 1)
    count = MAX_NOTEBOOK_OUTPUT_CHARS // len(piece) + 3
    copy = masked_copy(notebook([stream(piece) for _ in range(count)]), SecretMasker())
    kept = [o for o in copy["cells"][0]["outputs"] if "left out" not in o["text"]]
    assert len(kept) == MAX_NOTEBOOK_OUTPUT_CHARS // len(piece)
    assert "passed 20 MB" in copy["cells"][0]["outputs"][-1]["text"]


def test_same_big_output_gives_the_same_snapshot() -> None:
    a = prepare_snapshot(notebook([stream("z" * (MAX_OUTPUT_CHARS + 5))]), SecretMasker())
    b = prepare_snapshot(notebook([stream("z" * (MAX_OUTPUT_CHARS + 5))]), SecretMasker())
    c = prepare_snapshot(notebook([stream("w" * (MAX_OUTPUT_CHARS + 5))]), SecretMasker())
    assert a == b and a[0] != c[0]
