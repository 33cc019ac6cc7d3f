"""The reproduce verdict on outputs and metrics (core/reproduce.py), without kernels."""

from __future__ import annotations

from typing import Any

from jupyter_mlops.core.reproduce import judge


def notebook(*outputs: dict[str, Any]) -> dict[str, Any]:
    cell = {
        "cell_type": "code",
        "source": "print('accuracy', 0.97)",
        "metadata": {},
        "execution_count": 3,
        "outputs": list(outputs),
    }
    return {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def stream(text: str | list[str], name: str = "stdout") -> dict[str, Any]:
    return {"output_type": "stream", "name": name, "text": text}


def test_a_print_sent_in_two_messages_is_the_same_output() -> None:
    whole = notebook(stream(["accuracy 0.97\n"]))
    split = notebook(stream("accuracy 0.97"), stream("\n"))
    assert judge(whole, split, {}, {}, 0.0).kind == "reproduced"
    assert judge(split, whole, {}, {}, 0.0).kind == "reproduced"


def test_other_text_or_another_order_of_streams_differs() -> None:
    original = notebook(stream("a\n"), stream("b\n", "stderr"), stream("c\n"))
    reordered = notebook(stream("a\nc\n"), stream("b\n", "stderr"))
    verdict = judge(original, reordered, {}, {}, 0.0)
    assert verdict.kind == "differs"
    assert verdict.output_difference is not None
    assert verdict.output_difference.startswith("cell 1 `print('accuracy', 0.97)`: output")
    changed = judge(notebook(stream("a\n")), notebook(stream("b\n")), {}, {}, 0.0)
    assert changed.output_difference == "cell 1 `print('accuracy', 0.97)`: output 'a' became 'b'"


def test_volatile_values_reproduce_after_normalization_and_metrics_keep_their_tolerance() -> None:
    at_nine = notebook(stream("done at 2026-12-06 09:00:01 in 1.5 s\n"))
    at_ten = notebook(stream("done at 2026-12-06 10:11:12 in 2.25 s\n"))
    assert judge(at_nine, at_ten, {}, {}, 0.0).kind == "reproduced after normalization"
    assert judge(at_nine, at_nine, {"f1": 0.9}, {"f1": 0.9 + 1e-9}, 1e-6).kind == "reproduced"
    drifted = judge(at_nine, at_nine, {"f1": 0.9}, {"f1": 0.8}, 1e-6)
    assert drifted.kind == "differs"
    assert drifted.explain() == "differs: metric f1: 0.9 -> 0.8"
