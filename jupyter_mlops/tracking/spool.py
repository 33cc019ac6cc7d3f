"""The offline spool: records kept on disk while the tracking store does not answer.

Layout, under ``<project root>/.mlops/spool/`` (see :func:`spool_folder`)::

    journal-<host>-<pid>-<ms>-<n>.jsonl          one per writer (process), append-only
    journal-<host>-<pid>-<ms>-<n>.jsonl.applied  how far replay got: {"offset": BYTES}
    blobs/<sha256>                               artifact contents, stored once
    replay.lock                                  one replayer at a time (flock)

A journal starts with a header line (the store it is for, the writer's pid) followed by
one JSON line per record, each with a unique ``id``: ``start_run`` (a run created while
the store did not answer), ``log_batch`` (params, metrics as ``[key, value, step,
timestamp_ms]``, tags), ``put_artifact`` (a path and the sha256 of its blob) and
``end_run`` (status and end time).

MLflow assigns run ids, so a run created offline gets a provisional id,
``offline-<creation key>``, which its later records use. Every run a tracking session
creates carries its creation key as the tag ``mlops.creation_key`` (online too): replay
finds the run by that tag before creating it, so a ``start_run`` replayed twice, or one
whose first try reached the store although its answer was lost, still makes one run.
Replay reports the ids it resolved (``ReplayReport.created``) so that a live writer
switches to the real id.

Every line is written with one ``write`` and ``fsync``; the writer holds an ``flock`` on
its journal while it lives, so a replayer tells a journal whose process died (adopt it,
delete it once replayed) from one still being written (replay it, keep it).

Replay applies records in journal order and moves the ``applied`` offset after each
group (``os.replace`` of a small file), so it resumes where it stopped. It is
idempotent: params and tags are written with the same values, artifacts replace
themselves, ``end_run`` sets the same status and end time, and MLflow's SQL stores
(SQLite, PostgreSQL behind a server) keep one row per identical metric
``(key, value, step, timestamp)``. The records that may already be in the store (the
first group after a replay that stopped, and a write that failed half-way before it was
spooled, marked ``uncertain``) are compared with the metric histories first, so a
folder store gets no duplicate either. A last line without its newline (a crash or a
full disk in the middle of a write) is ignored.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_mlops.core.errors import MlopsError, StoreUnavailableError, UsageError
from jupyter_mlops.core.settings import redact_uri
from jupyter_mlops.tracking.store import (
    TAG_CREATION_KEY,
    Batch,
    MetricPoint,
    RunHandle,
    with_creation_key,
)

FORMAT_VERSION = 1
JOURNAL_GLOB = "journal-*.jsonl"
APPLIED_SUFFIX = ".applied"
BLOBS_DIRNAME = "blobs"
#: A blob nobody references is deleted only once it is this old (its record may be
#: about to be written by a live process).
BLOB_GRACE_S = 60.0
#: Records of one run merged into one ``log_batch`` on replay (MLflow's limits are
#: handled by the store, which splits a batch into requests).
MAX_GROUP_METRICS = 5000
#: The prefix of a run id given offline (then ``offline-<creation key>``).
OFFLINE_PREFIX = "offline-"
_counter = 0


class SpoolError(MlopsError):
    """Records cannot be written to the spool (disk full, no permission)."""

    code = "spool"


class NotSpoolable(Exception):
    """An operation needs the store itself (creating a run, reading it back).

    ``blocking``: what comes after it depends on it (a run that must exist first), so it
    and everything after it wait in memory; otherwise only it waits.
    """

    def __init__(self, what: str, blocking: bool) -> None:
        super().__init__(what)
        self.blocking = blocking


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _spool_failure(path: Path, error: OSError) -> SpoolError:
    if error.errno == errno.ENOSPC:
        return SpoolError(f"cannot spool: disk full at {path}")
    if error.errno == errno.EDQUOT:
        return SpoolError(f"cannot spool: disk quota exceeded at {path}")
    return SpoolError(f"cannot spool at {path}: {error.strerror or error}")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _atomic_write(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    partial.replace(path)


def prepare_folder(folder: Path) -> None:
    """Create the spool folder; a new ``.mlops`` gets the same ``.gitignore`` as the store's."""
    if folder.is_dir():
        return
    parent = folder.parent
    if parent.name == ".mlops" and not parent.exists():
        parent.mkdir(parents=True, exist_ok=True)
        (parent / ".gitignore").write_text("# tracking data of jupyter-mlops\n*\n")
    (folder / BLOBS_DIRNAME).mkdir(parents=True, exist_ok=True)


class Journal:
    """The append-only journal of one writer; the file is created on the first record."""

    def __init__(self, folder: Path, tracking_uri: str) -> None:
        self.folder = folder
        self.tracking_uri = redact_uri(tracking_uri)
        self.path: Path | None = None
        self._fd: int | None = None
        self._size = 0
        #: Journals this writer wrote (a full disk starts a new one), not replayed yet.
        self.own: list[Path] = []

    # -- writing ----------------------------------------------------------------
    def _open(self) -> int:
        global _counter
        if self._fd is not None:
            return self._fd
        prepare_folder(self.folder)
        _counter += 1
        name = (
            f"journal-{socket.gethostname()[:40]}-{os.getpid()}-{int(time.time() * 1000)}"
            f"-{_counter}.jsonl"
        )
        path = self.folder / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # alive: replayers keep this file
        header = {
            "op": "header",
            "version": FORMAT_VERSION,
            "tracking_uri": self.tracking_uri,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "created_ms": int(time.time() * 1000),
        }
        self._fd, self.path, self._size = fd, path, 0
        self.own.append(path)
        try:
            self._write_line(header)
        except OSError:
            self._abandon()
            raise
        _fsync_dir(self.folder)
        return fd

    def _write_line(self, record: dict[str, Any]) -> None:
        assert self._fd is not None
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        try:
            _write_all(self._fd, line)
            os.fsync(self._fd)
        except OSError:
            # Cut a partial line off, so a later record never follows torn bytes.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(line)

    def _abandon(self) -> None:
        """Stop appending to the current file (after a failed write): the next record
        starts a new journal, the old one stays replayable up to its last whole line."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None
        if self.path is not None and self._size == 0:
            with contextlib.suppress(OSError):
                self.path.unlink()
            with contextlib.suppress(ValueError):
                self.own.remove(self.path)
        self.path = None

    def append(self, record: dict[str, Any]) -> None:
        """Write one record durably, or raise ``SpoolError`` naming the folder."""
        record = {"id": uuid.uuid4().hex, **record}
        try:
            self._open()
            self._write_line(record)
        except OSError as error:
            self._abandon()
            raise _spool_failure(self.folder, error) from None

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` once under its sha256; returns the digest."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.folder / BLOBS_DIRNAME / digest
        try:
            prepare_folder(self.folder)
            if path.is_file() and path.stat().st_size == len(data):
                os.utime(path)  # young again: garbage collection leaves it alone
                return digest
            _atomic_write(path, data)
        except OSError as error:
            raise _spool_failure(self.folder, error) from None
        return digest

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None
        self.path = None

    def forget(self, path: Path) -> None:
        """``path`` was replayed and deleted: the next record starts a new file."""
        if path == self.path:
            self.close()
        with contextlib.suppress(ValueError):
            self.own.remove(path)


class SpoolingStore:
    """A ``RunStore`` that writes into a journal instead of the store.

    The writer runs its queued operations against it while the store does not answer.
    Creating a run and reading one back need the store: they raise ``NotSpoolable``.
    """

    def __init__(self, journal: Journal, uncertain: bool = False) -> None:
        self.journal = journal
        self.tracking_uri = journal.tracking_uri
        self.uncertain = uncertain
        self.records = 0

    def _append(self, record: dict[str, Any]) -> None:
        if self.uncertain:
            record["uncertain"] = True
        self.journal.append(record)
        self.records += 1

    def start_run(
        self,
        experiment: str,
        run_name: str | None,
        tags: dict[str, str],
        parent_run_id: str | None = None,
        start_time_ms: int | None = None,
    ) -> RunHandle:
        """Record the run's creation; its records use a provisional id until replay."""
        keyed = with_creation_key(tags)
        run_id = OFFLINE_PREFIX + keyed[TAG_CREATION_KEY]
        self._append(
            {
                "op": "start_run",
                "run_id": run_id,
                "experiment": experiment,
                "run_name": run_name,
                "tags": keyed,
                "parent_run_id": parent_run_id,
                "start_time_ms": start_time_ms or int(time.time() * 1000),
            }
        )
        return RunHandle(run_id, "", experiment, run_name or "", "")

    def resume_run(self, run_id: str) -> RunHandle:
        # The run exists (its id is known); its status is left as it is.
        return RunHandle(run_id, "", "", "", "")

    def logged_params(self, run_id: str) -> dict[str, str]:
        return {}

    def log_batch(self, run_id: str, batch: Batch) -> None:
        if not batch:
            return
        self._append(
            {
                "op": "log_batch",
                "run_id": run_id,
                "params": dict(batch.params),
                "metrics": [[m.key, m.value, m.step, m.timestamp_ms] for m in batch.metrics],
                "tags": dict(batch.tags),
            }
        )

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.log_batch(run_id, Batch(tags=dict(tags)))

    def put_artifact(self, run_id: str, path: str, data: bytes) -> None:
        relative = Path(path)
        if relative.is_absolute() or ".." in relative.parts:
            raise UsageError(f"artifact path {path!r} must be relative and stay inside the run")
        digest = self.journal.put_blob(data)
        self._append(
            {
                "op": "put_artifact",
                "run_id": run_id,
                "path": path,
                "blob": digest,
                "size": len(data),
            }
        )

    def end_run(self, run_id: str, status: str) -> None:
        self._append(
            {
                "op": "end_run",
                "run_id": run_id,
                "status": status,
                "end_time_ms": int(time.time() * 1000),
            }
        )

    def run_status(self, run_id: str) -> str:
        raise NotSpoolable("reading a run", blocking=True)

    def __getattr__(self, name: str) -> Any:
        # Anything else (dataset inputs through the MLflow client, ...) waits in memory.
        raise NotSpoolable(f"store.{name}", blocking=False)


# -- reading and replaying --------------------------------------------------------------
@dataclass
class JournalInfo:
    """A journal on disk: for which store, whether its writer lives, what is left."""

    path: Path
    tracking_uri: str
    pid: int | None
    live: bool
    pending: list[dict[str, Any]] = field(default_factory=list)
    torn: int = 0

    def describe(self) -> str:
        counts: dict[str, int] = {}
        metrics = 0
        runs: set[str] = set()
        for record in self.pending:
            counts[record["op"]] = counts.get(record["op"], 0) + 1
            metrics += len(record.get("metrics") or ())
            runs.add(str(record.get("run_id")))
        parts = [f"{n} {op}" for op, n in sorted(counts.items())]
        if metrics:
            parts.append(f"{metrics} metric values")
        owner = "written by a live process" if self.live else "its process ended"
        what = ", ".join(parts) or "nothing"
        return (
            f"{self.path.name}: {len(self.pending)} records ({what}) for {len(runs)} run(s) "
            f"at {self.tracking_uri}; {owner}"
        )


@dataclass
class ReplayReport:
    replayed: int = 0
    journals: int = 0
    skipped: list[str] = field(default_factory=list)
    #: Journals left for another store (their URIs).
    other_stores: list[str] = field(default_factory=list)
    #: Provisional ids of runs created offline -> their ids in the store.
    created: dict[str, str] = field(default_factory=dict)


def _read_offset(path: Path) -> int:
    marker = path.with_name(path.name + APPLIED_SUFFIX)
    try:
        return int(json.loads(marker.read_text())["offset"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _write_offset(path: Path, offset: int) -> None:
    marker = path.with_name(path.name + APPLIED_SUFFIX)
    _atomic_write(marker, json.dumps({"offset": offset}).encode())


def _lines(data: bytes, start: int) -> Iterator[tuple[int, bytes]]:
    """Whole lines of ``data`` from ``start``: ``(offset after the line, line)``.

    A last line without its newline was torn by a crash or a full disk: left out.
    """
    position = start
    while True:
        end = data.find(b"\n", position)
        if end < 0:
            return
        yield end + 1, data[position:end]
        position = end + 1


def _is_live(path: Path) -> bool:
    """Whether a process still holds the journal's lock (it may append to it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops our lock, if we got it
    return False


def _header(data: bytes) -> tuple[dict[str, Any], int]:
    end = data.find(b"\n")
    if end < 0:
        return {}, 0
    try:
        header = json.loads(data[:end])
    except ValueError:
        return {}, 0
    return (header if isinstance(header, dict) else {}), end + 1


class Spool:
    """The spool folder of a project, for one tracking store."""

    def __init__(self, folder: Path, tracking_uri: str) -> None:
        self.folder = folder
        self.tracking_uri = redact_uri(tracking_uri)

    def journal(self) -> Journal:
        return Journal(self.folder, self.tracking_uri)

    def journal_paths(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob(JOURNAL_GLOB), key=lambda p: (p.stat().st_mtime, p.name))

    def read(self, path: Path, own: bool = False) -> JournalInfo | None:
        """The records of ``path`` not replayed yet (None when the file is gone)."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        header, body = _header(data)
        offset = max(_read_offset(path), body)
        info = JournalInfo(
            path,
            str(header.get("tracking_uri", "")),
            header.get("pid"),
            live=own or _is_live(path),
        )
        for _end, line in _lines(data, offset):
            try:
                record = json.loads(line)
            except ValueError:
                info.torn += 1
                continue
            if isinstance(record, dict) and "op" in record:
                info.pending.append(record)
        info.torn += 1 if not data.endswith(b"\n") and data else 0
        return info

    def pending(self) -> list[JournalInfo]:
        """Every journal with records left, for any store."""
        found = [self.read(path) for path in self.journal_paths()]
        return [info for info in found if info is not None and info.pending]

    def pending_count(self, any_store: bool = True) -> int:
        return sum(
            len(info.pending)
            for info in self.pending()
            if any_store or info.tracking_uri == self.tracking_uri
        )

    @contextlib.contextmanager
    def _replay_lock(self) -> Iterator[None]:
        prepare_folder(self.folder)
        with (self.folder / "replay.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def replay(
        self,
        store: Any,
        own: Journal | None = None,
        include_live: bool = True,
        on_skipped: Callable[[str], None] | None = None,
    ) -> ReplayReport:
        """Apply every journal for this store, oldest first, then delete what is done.

        ``own``: the caller's journal, replayed first (and deleted, since its writer is the
        caller). Journals of live processes are replayed (unless ``include_live`` is False)
        but kept. Raises ``StoreUnavailableError`` when the store stops answering; what was
        applied until then is not applied again.
        """
        report = ReplayReport()
        if not self.folder.is_dir():
            return report
        own_paths = list(own.own) if own is not None else []
        with self._replay_lock():
            others = [p for p in self.journal_paths() if p not in own_paths]
            for path in [*own_paths, *others]:
                is_own = path in own_paths
                if not is_own and not include_live and _is_live(path):
                    continue
                info = self.read(path, own=is_own)
                if info is None:
                    if own is not None:
                        own.forget(path)
                    continue
                if info.tracking_uri != self.tracking_uri:
                    report.other_stores.append(info.tracking_uri)
                    continue
                report.journals += 1
                report.replayed += self._replay_journal(path, store, report, on_skipped)
                if is_own or not info.live:
                    self._delete(path)
                    if own is not None:
                        own.forget(path)
            self._collect_blobs()
        return report

    def _replay_journal(
        self,
        path: Path,
        store: Any,
        report: ReplayReport,
        on_skipped: Callable[[str], None] | None,
    ) -> int:
        data = path.read_bytes()
        _header_record, body = _header(data)
        start = _read_offset(path)
        resumed = start > body  # a replay stopped here before: its last group is uncertain
        offset = max(start, body)
        replayed = 0
        group: list[dict[str, Any]] = []
        group_end = offset

        def flush_group() -> None:
            nonlocal replayed, resumed, group
            if not group:
                return
            uncertain = resumed or any(r.get("uncertain") for r in group)
            try:
                _apply(store, group, uncertain, self.folder, report.created)
            except StoreUnavailableError:
                raise
            except (UsageError, SpoolError) as error:
                message = f"not replayed, the store refused it: {error}"
                report.skipped.append(message)
                if on_skipped is not None:
                    on_skipped(message)
            _write_offset(path, group_end)
            replayed += len(group)
            resumed = False
            group = []

        for end, line in _lines(data, offset):
            try:
                record = json.loads(line)
            except ValueError:
                group_end = end
                continue  # a torn line (a crash mid-write) is not a record
            if not isinstance(record, dict) or "op" not in record:
                continue
            if group and not _joins(group, record):
                flush_group()
            group.append(record)
            group_end = end
        flush_group()
        if group_end > offset and not replayed:
            _write_offset(path, group_end)
        return replayed

    def _delete(self, path: Path) -> None:
        for victim in (path, path.with_name(path.name + APPLIED_SUFFIX)):
            with contextlib.suppress(FileNotFoundError):
                victim.unlink()

    def _collect_blobs(self) -> None:
        """Delete blobs no journal names any more (old enough not to be in flight)."""
        blobs = self.folder / BLOBS_DIRNAME
        if not blobs.is_dir():
            return
        wanted: set[str] = set()
        for path in self.journal_paths():
            info = self.read(path, own=True)
            if info is not None:
                wanted.update(str(r.get("blob")) for r in info.pending if r.get("blob"))
        now = time.time()
        for blob in blobs.iterdir():
            with contextlib.suppress(OSError):
                if blob.name not in wanted and now - blob.stat().st_mtime > BLOB_GRACE_S:
                    blob.unlink()


def _joins(group: list[dict[str, Any]], record: dict[str, Any]) -> bool:
    """Whether ``record`` can be written in one ``log_batch`` with ``group``."""
    first = group[0]
    if first["op"] != "log_batch" or record["op"] != "log_batch":
        return False
    if first["run_id"] != record["run_id"]:
        return False
    if any(k in p for p in (r["params"] for r in group) for k in record["params"]):
        return False  # a param logged twice goes in its own write (MLflow refuses both)
    return sum(len(r["metrics"]) for r in group) + len(record["metrics"]) <= MAX_GROUP_METRICS


def is_offline_id(run_id: str) -> bool:
    """Whether ``run_id`` is a provisional id of a run created while offline."""
    return run_id.startswith(OFFLINE_PREFIX)


def _create_once(store: Any, record: dict[str, Any], created: dict[str, str]) -> str:
    """The id of the run a ``start_run`` record describes: found by its creation key,
    else created now (with the time it was started offline)."""
    tags = {str(k): str(v) for k, v in (record.get("tags") or {}).items()}
    existing = store.run_with_tag(TAG_CREATION_KEY, tags[TAG_CREATION_KEY])
    if existing is not None:
        return str(existing)
    parent = record.get("parent_run_id")
    handle = store.start_run(
        str(record["experiment"]),
        record.get("run_name"),
        tags,
        parent_run_id=_store_id(store, str(parent), created) if parent else None,
        start_time_ms=record.get("start_time_ms"),
    )
    return str(handle.run_id)


def _store_id(store: Any, run_id: str, created: dict[str, str]) -> str:
    """The store's id for ``run_id``: itself, or the run a provisional id stands for."""
    if not is_offline_id(run_id):
        return run_id
    if run_id not in created:
        found = store.run_with_tag(TAG_CREATION_KEY, run_id.removeprefix(OFFLINE_PREFIX))
        if found is None:
            raise SpoolError(f"run {run_id} was created offline, but its start is not spooled")
        created[run_id] = str(found)
    return created[run_id]


def _apply(
    store: Any,
    group: list[dict[str, Any]],
    uncertain: bool,
    folder: Path,
    created: dict[str, str],
) -> None:
    first = group[0]
    op = first["op"]
    if op == "start_run":
        created[str(first["run_id"])] = _create_once(store, first, created)
        return
    run_id = _store_id(store, str(first["run_id"]), created)
    if op == "log_batch":
        batch = Batch()
        for record in group:
            batch.params.update(record.get("params") or {})
            batch.tags.update(record.get("tags") or {})
            batch.metrics += [
                MetricPoint(str(k), float(v), int(s), int(t))
                for k, v, s, t in record.get("metrics") or ()
            ]
        if uncertain and batch.metrics:
            batch.metrics = _not_yet_logged(store, run_id, batch.metrics)
        if batch:
            store.log_batch(run_id, batch)
    elif op == "put_artifact":
        blob = folder / BLOBS_DIRNAME / str(first["blob"])
        try:
            data = blob.read_bytes()
        except OSError:
            raise SpoolError(
                f"artifact {first['path']} of run {run_id}: its content {blob} is missing"
            ) from None
        store.put_artifact(run_id, str(first["path"]), data)
    elif op == "end_run":
        store.end_run(run_id, str(first["status"]), end_time_ms=first.get("end_time_ms"))
    else:
        raise SpoolError(f"unknown record {op!r} in the spool (written by a newer version?)")


def _not_yet_logged(store: Any, run_id: str, points: list[MetricPoint]) -> list[MetricPoint]:
    """The points that are not in the run's histories yet (a write that may have landed)."""
    present: set[tuple[str, float, int, int]] = set()
    for key in sorted({p.key for p in points}):
        try:
            history = store.metric_history(run_id, key)
        except UsageError:
            continue  # not storable, or the run is gone: log_batch will say so
        present.update((m.key, m.value, m.step, m.timestamp_ms) for m in history)
    return [p for p in points if (p.key, p.value, p.step, p.timestamp_ms) not in present]
