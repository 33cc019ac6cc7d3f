"""Did a re-execution reproduce a run? Comparing metrics and outputs, without IPython.

Two levels of sameness for outputs:

* **identical**: after removing what always differs between two executions (execution
  counts, cell and notebook metadata, the injected-parameters cell's timing);
* **identical after normalization**: after also masking values that change from run to
  run without meaning anything: timestamps, durations, memory addresses, run ids, temp
  paths.

Metrics compare within a tolerance (relative and absolute).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jupyter_mlops.core.snapshot import join_multiline

VOLATILE_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"),
        "<TIME>",
    ),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}(?:\.\d+)?\b"), "<TIME>"),
    (re.compile(r"\b0x[0-9a-fA-F]{6,16}\b"), "<ADDRESS>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<RUN_ID>"),
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|s|sec|seconds|µs|us|ns)\b"), "<DURATION>"),
    (re.compile(r"/tmp/[^\s'\"]+"), "<TMP>"),  # noqa: S108 (a pattern, not a file)
    # %mlops_register's report: a re-execution registers the next version number.
    (re.compile(r"\bversion \d+ \(models:/([^\s)]+)/\d+\)"), r"version <N> (models:/\1/<N>)"),
]
#: Output types whose content is not a result: widget views and our own run panel.
SKIPPED_MIME = ("application/vnd.jupyter.widget-view+json",)


def _clean_outputs(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Outputs without metadata and counts; consecutive text of one stream as one output
    (the kernel sends ``print``'s text and its newline in one message or in two, as its
    flush timer falls, and a notebook shows both the same)."""
    cleaned: list[dict[str, Any]] = []
    for output in outputs:
        previous = cleaned[-1] if cleaned else {}
        if (
            output.get("output_type") == "stream"
            and previous.get("output_type") == "stream"
            and previous.get("name") == output.get("name")
        ):
            previous["text"] = str(previous.get("text", "")) + str(output.get("text", ""))
            continue
        output = dict(output)
        output.pop("execution_count", None)
        output["metadata"] = {}
        data = output.get("data")
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in SKIPPED_MIME}
            if set(data) <= {"text/plain"} and any(
                "mlops: tracking run" in str(v) for v in data.values()
            ):
                continue  # the run panel's text fallback names the run: not a result
            output["data"] = data
        cleaned.append(output)
    return cleaned


def comparable(notebook: Mapping[str, Any], normalize_values: bool) -> dict[str, Any]:
    """A copy keeping only what a reproduction must match: code, outputs, in order."""
    nb = join_multiline(copy.deepcopy(dict(notebook)))
    cells = []
    for cell in nb["cells"]:
        tags = (cell.get("metadata") or {}).get("tags") or []
        if "injected-parameters" in tags or "papermill-error-cell-tag" in tags:
            continue
        kept: dict[str, Any] = {
            "cell_type": cell.get("cell_type"),
            "source": cell.get("source", ""),
        }
        if cell.get("cell_type") == "code":
            kept["outputs"] = _clean_outputs(cell.get("outputs") or [])
            kept["execution_count"] = None
        kept["metadata"] = {}
        cells.append(kept)
    if normalize_values:
        for cell in cells:
            for output in cell.get("outputs", []):
                _mask_volatile(output)
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _mask(text: str) -> str:
    for pattern, replacement in VOLATILE_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _mask_volatile(output: dict[str, Any]) -> None:
    if isinstance(output.get("text"), str):
        output["text"] = _mask(output["text"])
    if isinstance(output.get("evalue"), str):
        output["evalue"] = _mask(output["evalue"])
    if isinstance(output.get("traceback"), list):
        output["traceback"] = [_mask(str(line)) for line in output["traceback"]]
    for mime, value in (output.get("data") or {}).items():
        if isinstance(value, str):
            output["data"][mime] = _mask(value)


@dataclass
class MetricDifference:
    name: str
    original: float | None
    reproduced: float | None

    def __str__(self) -> str:
        return f"metric {self.name}: {self.original} -> {self.reproduced}"


@dataclass
class Verdict:
    kind: str  # reproduced | reproduced after normalization | differs
    metric_differences: list[MetricDifference] = field(default_factory=list)
    output_difference: str | None = None

    @property
    def reproduced(self) -> bool:
        return self.kind != "differs"

    def explain(self) -> str:
        if self.reproduced:
            return self.kind
        parts = [str(d) for d in self.metric_differences]
        if self.output_difference:
            parts.append(self.output_difference)
        return "differs: " + "; ".join(parts)


def compare_metrics(
    original: Mapping[str, float], reproduced: Mapping[str, float], tolerance: float
) -> list[MetricDifference]:
    differences = []
    for name in sorted(set(original) | set(reproduced)):
        a, b = original.get(name), reproduced.get(name)
        if (
            a is None
            or b is None
            or (
                not (math.isnan(a) and math.isnan(b))
                and not math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)
            )
        ):
            differences.append(MetricDifference(name, a, b))
    return differences


def first_output_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    """The first cell whose source or outputs differ between two ``comparable`` notebooks."""
    cells_a, cells_b = a["cells"], b["cells"]
    for index, (cell_a, cell_b) in enumerate(zip(cells_a, cells_b, strict=False), start=1):
        if cell_a == cell_b:
            continue
        what = "source" if cell_a.get("source") != cell_b.get("source") else "output"
        first = str(cell_a.get("source", "")).strip().splitlines()
        label = f"cell {index}" + (f" `{first[0][:60]}`" if first else "")
        if what == "output":
            before, after = _output_text(cell_a), _output_text(cell_b)
            for line_a, line_b in zip(before.splitlines(), after.splitlines(), strict=False):
                if line_a != line_b:
                    return f"{label}: output {line_a[:80]!r} became {line_b[:80]!r}"
            return f"{label}: outputs differ"
        return f"{label}: source differs"
    if len(cells_a) != len(cells_b):
        return f"the notebooks have {len(cells_a)} and {len(cells_b)} cells"
    return None


def _output_text(cell: Mapping[str, Any]) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(str(output.get("text", "")))
        for value in (output.get("data") or {}).values():
            parts.append(str(value))
        if output.get("ename"):
            parts.append(f"{output.get('ename')}: {output.get('evalue')}")
    return "\n".join(parts) + "\n<end>"


def judge(
    original_nb: Mapping[str, Any] | None,
    reproduced_nb: Mapping[str, Any],
    original_metrics: Mapping[str, float],
    reproduced_metrics: Mapping[str, float],
    tolerance: float,
    diff: Any = None,
) -> Verdict:
    """The verdict; ``diff(a, b)`` (nbdime's ``diff_notebooks``) decides output equality."""
    metric_differences = compare_metrics(original_metrics, reproduced_metrics, tolerance)

    def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return not diff(a, b) if diff is not None else a == b

    if original_nb is None:
        kind = "reproduced"
        output_difference = None
    else:
        strict_a, strict_b = comparable(original_nb, False), comparable(reproduced_nb, False)
        loose_a, loose_b = comparable(original_nb, True), comparable(reproduced_nb, True)
        if same(strict_a, strict_b):
            kind, output_difference = "reproduced", None
        elif same(loose_a, loose_b):
            kind, output_difference = "reproduced after normalization", None
        else:
            kind, output_difference = "differs", first_output_difference(loose_a, loose_b)
    if metric_differences:
        kind = "differs"
    return Verdict(kind, metric_differences, output_difference)
