"""Which names a cell binds to params (literals) and metrics (computed numbers)."""

from __future__ import annotations

import numpy as np

from jupyter_mlops.core.cells import analyze_source, is_metric_value, pick_metrics


def test_literals_are_params_and_computed_names_are_metric_candidates() -> None:
    analysis = analyze_source(
        'lr = 0.01\nlayers = [64, 32]\nname = "rf"\ncfg = {"a": 1}\nnothing = None\n'
        "acc = model.score(X, y)\nneg = -1\n"
    )
    assert analysis.literal_bindings == {
        "lr": 0.01,
        "layers": [64, 32],
        "name": "rf",
        "cfg": {"a": 1},
        "nothing": None,
        "neg": -1,
    }
    assert analysis.computed_bindings == ("acc",)
    assert {"model", "X", "y"} <= analysis.used_names


def test_magic_lines_are_ignored_and_rebinding_to_computed_wins() -> None:
    analysis = analyze_source("%%mlops_track --step 3\nx = 1\n!ls\nx = f(x)\n")
    assert analysis.literal_bindings == {}
    assert analysis.computed_bindings == ("x",)


def test_long_collections_and_tuple_unpacking_are_not_params() -> None:
    analysis = analyze_source(f"data = {list(range(100))}\na, b = 1, 2\n")
    assert analysis.literal_bindings == {}
    assert set(analysis.computed_bindings) == {"data", "a", "b"}


def test_syntax_error_yields_an_unparsed_analysis() -> None:
    assert analyze_source("def (:\n").parsed is False


def test_metric_values() -> None:
    assert is_metric_value(1) and is_metric_value(0.5) and is_metric_value(np.float32(0.25))
    assert is_metric_value(np.int64(3)) and is_metric_value(np.array(2.0))
    assert not is_metric_value(True) and not is_metric_value(np.bool_(True))
    assert not is_metric_value("0.5") and not is_metric_value([1.0])
    assert pick_metrics(["a", "b", "_c", "missing"], {"a": np.float64(1.5), "b": "x", "_c": 1}) == {
        "a": 1.5
    }
