"""The runs table's rules: columns, order, and which compared values differ."""

from __future__ import annotations

import math

import pytest

from jupyter_mlops.core.errors import UsageError
from jupyter_mlops.core.run_table import (
    columns,
    compare,
    sort_keys,
    sort_runs,
    table_rows,
)


def run(run_id: str, start: int, params: dict, metrics: dict) -> dict:
    return {
        "run_id": run_id * 32,
        "run_name": f"r{run_id}",
        "status": "FINISHED",
        "start_time_ms": start,
        "params": params,
        "metrics": metrics,
    }


RUNS = [
    run("a", 1, {"lr": "0.1", "model": "rf"}, {"acc": 0.9}),
    run("b", 2, {"lr": "0.01", "model": "rf"}, {"acc": 0.95, "loss": 0.2}),
    run("c", 3, {"lr": "1", "model": "rf"}, {"acc": math.nan}),
    run("d", 4, {"lr": "high", "model": "rf"}, {}),
]


def names(runs: list) -> list[str]:
    return [r["run_name"] for r in runs]


def test_sort_by_metric_puts_missing_and_nan_last_either_way() -> None:
    assert names(sort_runs(RUNS, "metrics.acc")) == ["rb", "ra", "rc", "rd"]
    assert names(sort_runs(RUNS, "metrics.acc", descending=False)) == ["ra", "rb", "rc", "rd"]


def test_sort_by_param_compares_numbers_as_numbers() -> None:
    # 1 > 0.1 > 0.01 as numbers (as text "1" < "0.1" would be wrong), then the text value
    assert names(sort_runs(RUNS, "params.lr")) == ["rc", "ra", "rb", "rd"]
    assert names(sort_runs(RUNS, "start_time")) == ["rd", "rc", "rb", "ra"]


def test_sort_by_an_unknown_kind_is_refused() -> None:
    with pytest.raises(UsageError, match="cannot sort by"):
        sort_runs(RUNS, "tags.x")


def test_varying_columns_come_first() -> None:
    params, metrics = columns(RUNS)
    assert params == ["lr", "model"]
    assert metrics[0] == "acc"
    assert sort_keys(RUNS)[:2] == ["start_time", "metrics.acc"]
    headers, rows = table_rows(RUNS[:1])
    assert headers == ["run", "status", "started", "lr", "model", "acc"]
    assert rows[0][0] == "ra" and rows[0][-1] == "0.9"


def test_compare_marks_the_values_that_differ() -> None:
    rows = {(r.kind, r.name): r for r in compare(RUNS[:2])}
    assert rows[("param", "lr")].differs and rows[("param", "lr")].values == ("0.1", "0.01")
    assert not rows[("param", "model")].differs
    assert rows[("metric", "loss")].values == ("", "0.2") and rows[("metric", "loss")].differs
    with pytest.raises(UsageError, match="two runs or more"):
        compare(RUNS[:1])
