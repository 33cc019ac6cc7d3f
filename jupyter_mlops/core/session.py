"""A tracking session: the rules of what a tracked notebook writes to its run.

Used by the magics and the Python API alike, with plain values; it knows nothing of
IPython. Every write goes through a writer (a background queue in production) so the
session itself never waits for the store. It returns the messages an adapter should
show instead of printing them.

The rules:

* **params keep their first value.** MLflow refuses to change a logged param. When a
  cell binds a param again with another value, the run keeps the first value as the
  param, appends ``{name, value, step, cell}`` to the ``params_history.jsonl`` artifact,
  sets the tag ``mlops.params_changed`` to the names that changed, and tells the user
  once per name.
* **metrics say where they came from.** Each tracked cell appends a record to
  ``cells.jsonl`` with its execution count, source hash and the metrics (with step) it
  logged.
* **snapshots are content-addressed.** ``snapshots/<sha256>.ipynb``, written once per
  run per distinct content; the tag ``mlops.snapshot`` names the latest.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

from jupyter_mlops.core.cells import (
    CellAnalysis,
    analyze_source,
    is_metric_value,
    metric_float,
    pick_metrics,
    source_hash,
)
from jupyter_mlops.core.errors import UsageError
from jupyter_mlops.core.lineage import TAG_ENVIRONMENT_HASH
from jupyter_mlops.core.order import NotebookIndex, out_of_order_reason
from jupyter_mlops.core.secrets import SecretMasker
from jupyter_mlops.core.snapshot import prepare_snapshot
from jupyter_mlops.tracking.store import (
    TAG_CREATION_KEY,
    Batch,
    MetricPoint,
    RunHandle,
    RunStore,
)

MAX_KEY_LENGTH = 250
TAG_SNAPSHOT = "mlops.snapshot"
TAG_PARAMS_CHANGED = "mlops.params_changed"
TAG_OUT_OF_ORDER = "mlops.out_of_order"
TAG_SECRETS_MASKED = "mlops.secrets_masked"
TAG_CELLS = "mlops.tracked_cells"


class Writer(Protocol):
    def call(self, action: Callable[[RunStore], None], key: str | None = None) -> None: ...

    def log(self, run_ref: Callable[[], str], batch: Batch) -> None: ...

    def flush(self, timeout: float | None = None) -> bool: ...


@dataclass
class CellRecord:
    """One tracked cell execution, as written to ``cells.jsonl``."""

    execution_count: int | None
    cell_id: str | None
    source: str
    source_sha256: str
    started: float
    duration_s: float
    status: str
    step: int
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    error: dict[str, str] | None = None
    snapshot: str | None = None


#: The fields of ``CellRecord``, in order: the keys of a ``cells.jsonl`` line.
CELL_FIELDS = tuple(f.name for f in fields(CellRecord))


def param_text(value: Any) -> str:
    """How MLflow stores a param value (``str()``), so our values equal ``mlflow.log_param``'s."""
    return str(value)


def check_key(name: str, what: str) -> None:
    if not name or len(name) > MAX_KEY_LENGTH:
        raise UsageError(f"{what} name {name[:40]!r} must be 1 to {MAX_KEY_LENGTH} characters")


class TrackingSession:
    """One MLflow run being written by a notebook (or a script through the Python API)."""

    def __init__(
        self,
        writer: Writer,
        *,
        experiment: str,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        resume_run_id: str | None = None,
        masker: SecretMasker | None = None,
        environment: Callable[[], tuple[str, str]] | None = None,
        on_started: Callable[[RunHandle], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.writer = writer
        self.experiment = experiment
        self.masker = masker or SecretMasker()
        self.clock = clock
        self.handle: RunHandle | None = None
        self.enabled = True
        self.ended = False
        self.params: dict[str, str] = {}
        self.latest_metrics: dict[str, float] = {}
        self.cells: list[CellRecord] = []
        self.params_history: list[dict[str, Any]] = []
        self.changed_params: list[str] = []
        self.out_of_order: str | None = None
        self._snapshots_written: set[str] = set()
        # cells.jsonl records already masked (writer thread only), each with its line and
        # the snapshot the line was made with: a record's snapshot is set after it is recorded.
        self._cell_lines: list[tuple[dict[str, Any], str | None, str]] = []
        self._masked_count_written = -1
        self._executed_positions: list[int] = []
        # Told the handle once the run is started (in the writer's thread), and again when a
        # run started offline gets its real id from the store.
        self._on_started = on_started
        self._start(run_name, dict(tags or {}), resume_run_id, environment)

    # -- run lifecycle -----------------------------------------------------------
    def _start(
        self,
        run_name: str | None,
        tags: dict[str, str],
        resume_run_id: str | None,
        environment: Callable[[], tuple[str, str]] | None,
    ) -> None:
        # The same key on every try: a retry, or the spool's replay, finds the run it made.
        created_tags = {**tags, TAG_CREATION_KEY: uuid.uuid4().hex}

        def start(store: RunStore) -> None:
            if resume_run_id:
                self.handle = store.resume_run(resume_run_id)
                self.params.update(
                    {
                        k: v
                        for k, v in store.logged_params(resume_run_id).items()
                        if k not in self.params
                    }
                )
                store.log_batch(resume_run_id, Batch(tags=tags))
            else:
                self.handle = store.start_run(self.experiment, run_name, created_tags)
            if environment is not None:
                listing, digest = environment()
                store.put_artifact(self.handle.run_id, "environment.txt", listing.encode())
                store.log_batch(self.handle.run_id, Batch(tags={TAG_ENVIRONMENT_HASH: digest}))
            if self._on_started is not None:
                self._on_started(self.handle)

        self.writer.call(start)

    def adopt_created_runs(self, created: Mapping[str, RunHandle]) -> None:
        """The store created the run that was started offline: use its real id from now.

        Called by the writer thread once it replayed the spool (records still queued ask
        ``run_id()`` when they are written, so they go to the real run).
        """
        if self.handle is None or self.handle.run_id not in created:
            return
        real = created[self.handle.run_id]
        self.handle = replace(
            self.handle,
            run_id=real.run_id,
            experiment_id=real.experiment_id or self.handle.experiment_id,
            run_name=real.run_name or self.handle.run_name,
            artifact_uri=real.artifact_uri or self.handle.artifact_uri,
        )
        if self._on_started is not None:  # what shows the provisional id shows the real one
            self._on_started(self.handle)

    def run_id(self) -> str:
        """The run id; only valid in the writer thread after the start or after a flush."""
        if self.handle is None:
            raise UsageError("the run has not started yet (is the tracking store reachable?)")
        return self.handle.run_id

    def stop(self, status: str = "FINISHED") -> None:
        if self.ended:
            return
        self.ended = True

        def end(store: RunStore) -> None:
            masked = str(self.masker.masked_count)
            store.log_batch(self.run_id(), Batch(tags={TAG_SECRETS_MASKED: masked}))
            store.end_run(self.run_id(), status)

        self.writer.call(end)

    # -- params and metrics --------------------------------------------------------
    def log_params(
        self, params: Mapping[str, Any], step: int | None = None, cell: str | None = None
    ) -> list[str]:
        """Log params under the first-value rule; returns messages for the user."""
        return self._log_param_texts(self._masked_texts(params), step, cell)

    def _masked_texts(self, params: Mapping[str, Any]) -> dict[str, str]:
        """Param values as MLflow stores them, secrets masked: what is logged and recorded."""
        return {name: param_text(self.masker.mask_param(name, v)) for name, v in params.items()}

    def _log_param_texts(
        self, texts: Mapping[str, str], step: int | None, cell: str | None
    ) -> list[str]:
        """The first-value rule on already masked param texts."""
        messages: list[str] = []
        new: dict[str, str] = {}
        for name, text in texts.items():
            check_key(name, "param")
            if name not in self.params:
                self.params[name] = text
                new[name] = text
            elif self.params[name] != text:
                self.params_history.append(
                    {"name": name, "value": text, "step": step, "cell": cell}
                )
                if name not in self.changed_params:
                    self.changed_params.append(name)
                    first = self.params[name]
                    messages.append(
                        f"mlops: param {name!r} changed from {first} to {text}; the run keeps "
                        f"{first} (MLflow params cannot change) and records each new value in "
                        "params_history.jsonl"
                    )
        if new:
            self.writer.log(self.run_id, Batch(params=new))
        if messages or (self.params_history and texts):
            history = "".join(json.dumps(h) + "\n" for h in self.params_history)
            self.writer.call(
                lambda store: store.put_artifact(
                    self.run_id(), "params_history.jsonl", history.encode()
                ),
                key="params_history",
            )
            self._write_tags({TAG_PARAMS_CHANGED: ",".join(self.changed_params)})
        return messages

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> dict[str, float]:
        """Log numeric metrics at ``step``; a value that is not a number is a usage error."""
        return self._log_metrics(metrics, step)

    def _log_metrics(
        self, metrics: Mapping[str, Any], step: int | None, tags: dict[str, str] | None = None
    ) -> dict[str, float]:
        """Metrics (and ``tags``) in one batch: one write for what a cell logs."""
        now_ms = int(self.clock() * 1000)
        points: list[MetricPoint] = []
        accepted: dict[str, float] = {}
        for name, value in metrics.items():
            check_key(name, "metric")
            if not is_metric_value(value):
                raise UsageError(
                    f"metric {name!r} is {type(value).__name__} {str(value)[:40]!r}, not a number"
                )
            number = metric_float(value)
            accepted[name] = number
            points.append(MetricPoint(name, number, step or 0, now_ms))
        if points:
            self.latest_metrics.update(accepted)
        if points or tags:
            self.writer.log(self.run_id, Batch(metrics=points, tags=tags or {}))
        return accepted

    def _write_tags(self, tags: dict[str, str]) -> None:
        self.writer.log(self.run_id, Batch(tags=dict(tags)))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._write_tags({k: str(v) for k, v in tags.items()})

    def log_artifact_bytes(self, path: str, data: bytes) -> None:
        self.writer.call(
            lambda store: store.put_artifact(self.run_id(), path, data), key=f"artifact:{path}"
        )

    # -- tracked cells ------------------------------------------------------------
    def record_cell(
        self,
        *,
        source: str,
        execution_count: int | None,
        started: float,
        duration_s: float,
        namespace: Mapping[str, Any],
        error: BaseException | None = None,
        param_names: list[str] | None = None,
        metric_names: list[str] | None = None,
        step: int | None = None,
        notebook: Callable[[], dict[str, Any] | None] | None = None,
        cell_id: str | None = None,
    ) -> list[str]:
        """Log what a tracked cell bound, its record, and a snapshot; return user messages."""
        analysis = analyze_source(source)
        digest = source_hash(source)
        the_step = step if step is not None else (execution_count or len(self.cells) + 1)
        messages: list[str] = []

        if param_names is not None:
            missing = [n for n in param_names if n not in namespace]
            if missing:
                messages.append(f"mlops: --params names not defined: {', '.join(missing)}")
            params = {n: namespace[n] for n in param_names if n in namespace}
        else:
            named_metrics = set(metric_names or ())
            params = {
                n: v
                for n, v in analysis.literal_bindings.items()
                if not n.startswith("_") and n not in named_metrics
            }
        if metric_names is not None:
            missing = [n for n in metric_names if n not in namespace]
            not_numbers = [
                n for n in metric_names if n in namespace and not is_metric_value(namespace[n])
            ]
            if missing:
                messages.append(f"mlops: --metrics names not defined: {', '.join(missing)}")
            if not_numbers:
                messages.append(
                    f"mlops: --metrics names that are not numbers: {', '.join(not_numbers)}"
                )
            metrics = pick_metrics(metric_names, namespace)
        else:
            metrics = pick_metrics(analysis.computed_bindings, namespace)

        param_texts = self._masked_texts(params)
        messages += self._log_param_texts(param_texts, step=the_step, cell=digest[:12])
        count = {TAG_CELLS: str(len(self.cells) + 1)}
        self._log_metrics(metrics, the_step, tags=count)
        record = CellRecord(
            execution_count=execution_count,
            cell_id=cell_id,
            source=source,
            source_sha256=digest,
            started=started,
            duration_s=round(duration_s, 6),
            status="error" if error is not None else "ok",
            step=the_step,
            params=param_texts,
            metrics=metrics,
            error=(
                {"ename": type(error).__name__, "evalue": str(error)[:2000]}
                if error is not None
                else None
            ),
        )
        self.cells.append(record)
        if notebook is not None:
            messages += self._check_order(notebook, record, analysis)
            self._snapshot(notebook, record)
        self._write_cells()
        return messages

    def _check_order(
        self,
        notebook: Callable[[], dict[str, Any] | None],
        record: CellRecord,
        analysis: CellAnalysis,
    ) -> list[str]:
        if self.out_of_order is not None:
            return []
        nb = notebook()
        if nb is None:
            return []
        index = NotebookIndex.of(nb)
        position = index.position(record.cell_id, record.source_sha256)
        if position is None:
            return []
        reason = out_of_order_reason(index, position, analysis, self._executed_positions)
        self._executed_positions.append(position)
        if reason is None:
            return []
        self.out_of_order = reason
        self._write_tags({TAG_OUT_OF_ORDER: reason[:500]})
        return [f"mlops: cells ran out of order ({reason}); the run is tagged {TAG_OUT_OF_ORDER}"]

    def _snapshot(self, notebook: Callable[[], dict[str, Any] | None], record: CellRecord) -> None:
        """Snapshot in the writer thread: reading, masking and hashing a notebook take time."""

        def write(store: RunStore) -> None:
            nb = notebook()
            if nb is None:
                return
            digest, data = prepare_snapshot(nb, self.masker)
            record.snapshot = digest
            if digest not in self._snapshots_written:
                store.put_artifact(self.run_id(), f"snapshots/{digest}.ipynb", data)
                self._snapshots_written.add(digest)
                store.log_batch(self.run_id(), Batch(tags={TAG_SNAPSHOT: digest}))

        self.writer.call(write)

    def _masked_record(self, cell: CellRecord) -> dict[str, Any]:
        """The record's fields, secrets masked. Not ``asdict``: its deep copy cost more than
        the rest, and the values are strings, numbers and flat dicts of them that nothing
        changes once recorded (``snapshot`` aside, which ``_record_line`` takes fresh)."""
        data = {name: getattr(cell, name) for name in CELL_FIELDS}
        data["params"] = dict(cell.params)
        data["metrics"] = dict(cell.metrics)
        data["source"] = self.masker.mask(cell.source)
        if cell.error:
            data["error"] = self.masker.mask_value(cell.error)
        return data

    @staticmethod
    def _record_line(data: dict[str, Any], snapshot: str | None) -> str:
        return json.dumps({**data, "snapshot": snapshot}, ensure_ascii=False) + "\n"

    def _write_cells(self) -> None:
        """Rewrite ``cells.jsonl`` in the writer thread (the count tag went with the metrics).

        Each record is masked once and serialized once (again only if its snapshot was
        set since), so a long notebook does not rescan every earlier cell for secrets.
        """

        def write(store: RunStore) -> None:
            lines = self._cell_lines
            for index, cell in enumerate(list(self.cells)):
                snapshot = cell.snapshot
                if index == len(lines):
                    data = self._masked_record(cell)
                    lines.append((data, snapshot, self._record_line(data, snapshot)))
                elif lines[index][1] != snapshot:
                    data = lines[index][0]
                    lines[index] = (data, snapshot, self._record_line(data, snapshot))
            text = "".join(line for _, _, line in lines)
            store.put_artifact(self.run_id(), "cells.jsonl", text.encode())
            masked = self.masker.masked_count
            if masked != self._masked_count_written:
                store.log_batch(self.run_id(), Batch(tags={TAG_SECRETS_MASKED: str(masked)}))
                self._masked_count_written = masked

        self.writer.call(write, key="cells.jsonl")
