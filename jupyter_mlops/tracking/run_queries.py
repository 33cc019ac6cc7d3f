"""What the run browser reads from the store: experiments, pages of runs, one run, a metric.

The REST handlers parse their query into plain values, call one function here and send
back the plain dicts it returns. Searching, sorting and paging are MLflow's own (its filter
syntax, ``order_by`` and page tokens) so they behave the same on every store, the remote
server included: pages come from the server's :class:`RunIndex` (MLflow's in-memory
search over every run, so a metric sorts as fast as time does) and from MLflow's
``search_runs`` while the index is still loading. A filter or ordering MLflow refuses comes
back as a ``UsageError`` carrying MLflow's message (a 400, not a 500).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from jupyter_mlops.core.errors import NotFoundError, UsageError
from jupyter_mlops.tracking.mlflow_store import MlflowRunStore
from jupyter_mlops.tracking.run_index import RunIndex
from jupyter_mlops.tracking.store import RunRecord

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_FILTER_LENGTH = 2000
DEFAULT_ORDER = "attributes.start_time DESC"
CELLS_ARTIFACT = "cells.jsonl"
#: The MLflow system tags worth showing next to ours (``mlops.*`` are always shown).
SHOWN_MLFLOW_TAGS = frozenset(
    {
        "mlflow.runName",
        "mlflow.user",
        "mlflow.parentRunId",
        "mlflow.source.name",
        "mlflow.source.type",
        "mlflow.source.git.commit",
        "mlflow.note.content",
    }
)
#: ``KEY`` or ``KEY ASC|DESC``; MLflow checks the key itself.
ORDER_BY = re.compile(r"^\s*(?P<key>\S.*?)(?:\s+(?P<direction>asc|desc))?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class RunQuery:
    """One page of a run search, in the terms of ``MlflowClient.search_runs``."""

    experiment_ids: tuple[str, ...] = ()
    filter_string: str = ""
    order_by: str = DEFAULT_ORDER
    page_token: str | None = None
    max_results: int = DEFAULT_PAGE_SIZE


def parse_page_size(text: str | None) -> int:
    """``max_results`` from a query string: an integer from 1 to ``MAX_PAGE_SIZE``."""
    if text is None or not text.strip():
        return DEFAULT_PAGE_SIZE
    try:
        size = int(text)
    except ValueError:
        raise UsageError(f"max_results must be an integer, not {text!r}") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise UsageError(f"max_results must be between 1 and {MAX_PAGE_SIZE}, not {size}")
    return size


def parse_order_by(text: str | None) -> str:
    """One ordering clause, ``metrics.acc DESC``; empty means newest first."""
    if text is None or not text.strip():
        return DEFAULT_ORDER
    match = ORDER_BY.match(text)
    if match is None:  # pragma: no cover - the pattern matches any non-blank text
        raise UsageError(f"cannot read the ordering {text!r}")
    direction = (match.group("direction") or "ASC").upper()
    return f"{match.group('key')} {direction}"


def parse_filter(text: str | None) -> str:
    """An MLflow search filter, checked by MLflow itself when the search runs."""
    value = (text or "").strip()
    if len(value) > MAX_FILTER_LENGTH:
        raise UsageError(f"the filter is over {MAX_FILTER_LENGTH} characters")
    return value


def shown_tags(tags: dict[str, str]) -> dict[str, str]:
    """Our ``mlops.*`` tags and a few of MLflow's; the rest is bookkeeping nobody reads."""
    return {
        k: v for k, v in sorted(tags.items()) if k.startswith("mlops.") or k in SHOWN_MLFLOW_TAGS
    }


def finite(value: float) -> float | None:
    """A metric value JSON can carry: NaN and infinities (MLflow keeps them) become null."""
    return value if math.isfinite(value) else None


def run_summary(record: RunRecord) -> dict[str, Any]:
    """A run as the runs table shows it; times are epoch milliseconds."""
    return {
        "id": record.run_id,
        "name": record.run_name,
        "experiment_id": record.experiment_id,
        "status": record.status,
        "start_time": record.start_time_ms,
        "end_time": record.end_time_ms,
        "params": dict(sorted(record.params.items())),
        "metrics": {k: finite(v) for k, v in sorted(record.metrics.items())},
        "tags": shown_tags(record.tags),
    }


def list_experiments(store: MlflowRunStore) -> list[dict[str, Any]]:
    """Active experiments, most recently created first."""
    found = store._call(
        "listing experiments",
        lambda: store.client.search_experiments(order_by=["creation_time DESC"]),
    )
    return [{"id": str(e.experiment_id), "name": e.name} for e in found]


def _check_experiment(store: MlflowRunStore, experiment_id: str) -> None:
    """``NotFoundError`` for an unknown experiment (MLflow would return no runs)."""
    store._call(
        f"reading experiment {experiment_id}", lambda: store.client.get_experiment(experiment_id)
    )


def search_runs(
    store: MlflowRunStore, query: RunQuery, index: RunIndex | None = None
) -> dict[str, Any]:
    """One page of runs and the token of the next page (None on the last page)."""
    experiment_ids = list(query.experiment_ids)
    for experiment_id in experiment_ids:
        _check_experiment(store, experiment_id)
    if not experiment_ids:
        experiment_ids = store.experiment_ids()
    if not experiment_ids:
        return {"runs": [], "next_page_token": None}
    indexed = None
    if index is not None:
        indexed = index.page(
            experiment_ids,
            query.filter_string,
            query.order_by,
            query.page_token,
            query.max_results,
        )
    if indexed is not None:
        return {
            "runs": [run_summary(MlflowRunStore._record(run)) for run in indexed.runs],
            "next_page_token": indexed.next_page_token,
        }
    page = store._call(
        "searching runs",
        lambda: store.client.search_runs(
            experiment_ids,
            filter_string=query.filter_string,
            max_results=query.max_results,
            order_by=[query.order_by],
            page_token=query.page_token or None,
        ),
    )
    token = page.token
    if isinstance(token, bytes):
        token = token.decode("ascii")
    return {
        "runs": [run_summary(MlflowRunStore._record(run)) for run in page],
        "next_page_token": token or None,
    }


def parse_cells(text: str) -> list[dict[str, Any]]:
    """The records of ``cells.jsonl``; a line that is not a JSON object is left out."""
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def run_details(store: MlflowRunStore, run_id: str) -> dict[str, Any]:
    """A run with its top-level artifacts and its cell records (empty when it has none)."""
    record = store.get_run(run_id)
    infos = store.artifact_infos(run_id, artifact_uri=record.artifact_uri)
    artifacts = [
        {"path": info.path, "is_dir": bool(info.is_dir), "size": info.file_size}
        for info in sorted(infos, key=lambda i: (not i.is_dir, i.path))
    ]
    cells: list[dict[str, Any]] = []
    if any(a["path"] == CELLS_ARTIFACT and not a["is_dir"] for a in artifacts):
        data = store.read_artifact(run_id, CELLS_ARTIFACT)
        cells = parse_cells(data.decode("utf-8", errors="replace"))
    return {**run_summary(record), "artifacts": artifacts, "cells": cells}


def metric_history(store: MlflowRunStore, run_id: str, key: str) -> dict[str, Any]:
    """Every logged value of one metric of a run, by step then time."""
    record = store.get_run(run_id)
    if key not in record.metrics:
        raise NotFoundError(f"run {run_id} has no metric {key!r}")
    points = sorted(store.metric_history(run_id, key), key=lambda p: (p.step, p.timestamp_ms))
    return {
        "key": key,
        "history": [
            {"step": p.step, "value": finite(p.value), "timestamp": p.timestamp_ms} for p in points
        ],
    }
