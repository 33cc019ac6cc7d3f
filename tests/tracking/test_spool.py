"""The offline spool: journal, replay in order, resume, idempotency, torn lines, a full disk.

Replays go into a real MLflow SQLite store; the writer's use of the spool is tested with
the same store behind a switch that makes it "unreachable".
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlops.core.errors import StoreUnavailableError
from jupyter_mlops.core.settings import resolve_tracking_location, spool_folder
from jupyter_mlops.tracking import spool as spool_module
from jupyter_mlops.tracking.mlflow_store import MlflowRunStore
from jupyter_mlops.tracking.spool import Journal, Spool, SpoolError, SpoolingStore
from jupyter_mlops.tracking.store import TAG_CREATION_KEY, Batch, MetricPoint
from jupyter_mlops.tracking.writer import AsyncWriter


@pytest.fixture
def store(project: Path) -> MlflowRunStore:
    return MlflowRunStore(resolve_tracking_location())


@pytest.fixture
def spool(store: MlflowRunStore) -> Spool:
    return Spool(spool_folder(store.location), store.tracking_uri)


def new_run(store: MlflowRunStore) -> str:
    return store.start_run("spool", None, {}).run_id


def points(key: str, values: range, t0: int = 1_700_000_000_000) -> list[MetricPoint]:
    return [MetricPoint(key, float(v), v, t0 + v) for v in values]


def history(store: MlflowRunStore, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in store.metric_history(run_id, key))


def journals(spool: Spool) -> list[Path]:
    return spool.journal_paths()


class Switch:
    """The real store, or a dead one: every call raises while ``down``; counts calls."""

    def __init__(self, real: MlflowRunStore) -> None:
        self.real = real
        self.tracking_uri = real.tracking_uri
        self.down = False
        self.fail_after: int | None = None
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.real, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.fail_after is not None and len(self.calls) >= self.fail_after:
                self.down = True
            if self.down:
                raise StoreUnavailableError("tracking server http://127.0.0.1:9 does not answer")
            self.calls.append(name)
            return attribute(*args, **kwargs)

        return call


def test_records_replay_in_order_and_the_spool_is_empty_after(
    store: MlflowRunStore, spool: Spool
) -> None:
    run_id = new_run(store)
    journal = spool.journal()
    offline = SpoolingStore(journal)
    offline.log_batch(run_id, Batch(params={"lr": "0.1"}, metrics=points("loss", range(5))))
    offline.log_batch(run_id, Batch(tags={"stage": "first"}, metrics=points("loss", range(5, 9))))
    offline.put_artifact(run_id, "notes/a.txt", b"version 1")
    offline.log_batch(run_id, Batch(tags={"stage": "second"}))
    offline.put_artifact(run_id, "notes/a.txt", b"version 2")
    offline.end_run(run_id, "FINISHED")
    ended_at = json.loads(journal.own[0].read_text().splitlines()[-1])["end_time_ms"]
    assert spool.pending_count() == 6
    assert store.get_run(run_id).status == "RUNNING", "nothing reached the store yet"

    report = spool.replay(store, own=journal)

    assert report.replayed == 6 and report.skipped == []
    run = store.get_run(run_id)
    assert run.status == "FINISHED" and run.end_time_ms == ended_at
    assert run.params == {"lr": "0.1"}
    assert run.tags["stage"] == "second", "the later tag wins: records keep their order"
    assert history(store, run_id, "loss") == [(s, float(s)) for s in range(9)]
    assert store.read_artifact(run_id, "notes/a.txt") == b"version 2"
    assert journals(spool) == [] and spool.pending_count() == 0


def test_a_replay_that_stops_resumes_where_it_stopped_and_writes_nothing_twice(
    store: MlflowRunStore, spool: Spool
) -> None:
    runs = [new_run(store) for _ in range(3)]
    journal = spool.journal()
    offline = SpoolingStore(journal)
    for index, run_id in enumerate(runs):  # runs alternate: one group per record
        offline.log_batch(run_id, Batch(metrics=points("m", range(index * 10, index * 10 + 10))))
        offline.end_run(run_id, "FINISHED")
    # When the store goes away after two writes of the replay
    flaky = Switch(store)
    flaky.fail_after = 2
    with pytest.raises(StoreUnavailableError):
        spool.replay(flaky, own=journal)
    assert flaky.calls == ["log_batch", "end_run"]
    assert store.get_run(runs[0]).status == "FINISHED"
    assert store.get_run(runs[1]).status == "RUNNING"
    assert spool.pending_count() == 4, "the journal is kept, from where it stopped"
    # Then the next replay starts after what was written
    flaky.down, flaky.fail_after, flaky.calls = False, None, []
    report = spool.replay(flaky, own=journal)
    assert report.replayed == 4
    assert flaky.calls.count("end_run") == 2
    for index, run_id in enumerate(runs):
        assert store.get_run(run_id).status == "FINISHED"
        assert history(store, run_id, "m") == [
            (s, float(s)) for s in range(index * 10, index * 10 + 10)
        ]
    assert journals(spool) == []


def test_replaying_the_same_journal_twice_gives_the_same_store(
    store: MlflowRunStore, spool: Spool
) -> None:
    run_id = new_run(store)
    journal = spool.journal()
    offline = SpoolingStore(journal)
    offline.log_batch(run_id, Batch(params={"a": "1"}, metrics=points("m", range(20))))
    offline.put_artifact(run_id, "x.txt", b"x")
    offline.end_run(run_id, "FINISHED")
    path = journal.own[0]
    copy = path.read_bytes()
    spool.replay(store, own=journal)
    first = store.get_run(run_id)
    # When the journal comes back (a crash before its end was recorded) and is replayed again
    path.write_bytes(copy)
    report = spool.replay(store)
    assert report.replayed == 3
    again = store.get_run(run_id)
    assert (again.params, again.tags, again.status, again.end_time_ms) == (
        first.params,
        first.tags,
        first.status,
        first.end_time_ms,
    )
    assert history(store, run_id, "m") == [(s, float(s)) for s in range(20)], "no duplicate"


def test_uncertain_records_are_checked_against_the_histories_first(spool: Spool) -> None:
    class Recording:
        tracking_uri = spool.tracking_uri

        def __init__(self) -> None:
            self.logged: list[MetricPoint] = [MetricPoint("m", 0.0, 0, 5)]

        def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
            return [p for p in self.logged if p.key == key]

        def log_batch(self, run_id: str, batch: Batch) -> None:
            self.logged += batch.metrics

    journal = spool.journal()
    SpoolingStore(journal, uncertain=True).log_batch(
        "r", Batch(metrics=[MetricPoint("m", 0.0, 0, 5), MetricPoint("m", 1.0, 1, 6)])
    )
    target = Recording()
    spool.replay(target, own=journal)
    assert target.logged == [MetricPoint("m", 0.0, 0, 5), MetricPoint("m", 1.0, 1, 6)]


def test_a_torn_last_line_is_ignored(store: MlflowRunStore, spool: Spool) -> None:
    run_id = new_run(store)
    journal = spool.journal()
    SpoolingStore(journal).log_batch(run_id, Batch(metrics=points("m", range(3))))
    path = journal.own[0]
    journal.close()
    with path.open("ab") as handle:  # a crash in the middle of the next record
        handle.write(b'{"id":"x","op":"log_batch","run_id":"' + run_id.encode() + b'","par')
    (info,) = spool.pending()
    assert len(info.pending) == 1 and info.torn == 1 and not info.live
    report = spool.replay(store)
    assert report.replayed == 1
    assert history(store, run_id, "m") == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert journals(spool) == [], "a journal of an ended process is deleted once replayed"


def test_a_live_writers_journal_is_replayed_but_kept(store: MlflowRunStore, spool: Spool) -> None:
    run_id = new_run(store)
    journal = spool.journal()  # its writer (this test) is alive: the file is locked
    SpoolingStore(journal).log_batch(run_id, Batch(tags={"t": "1"}))
    report = spool.replay(store)  # as `jupyter mlops sync` in another process would
    assert report.replayed == 1 and store.get_run(run_id).tags["t"] == "1"
    assert journals(spool) == journal.own and spool.pending_count() == 0
    SpoolingStore(journal).log_batch(run_id, Batch(tags={"t": "2"}))
    assert spool.pending_count() == 1, "appends after a replay are pending"
    spool.replay(store, own=journal)
    assert store.get_run(run_id).tags["t"] == "2" and journals(spool) == []


def test_a_full_disk_is_one_clear_error_and_the_journal_stays_replayable(
    store: MlflowRunStore, spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = new_run(store)
    journal = spool.journal()
    offline = SpoolingStore(journal)
    offline.log_batch(run_id, Batch(metrics=points("m", range(3))))
    real_write = os.write

    def full(fd: int, data: Any) -> int:
        real_write(fd, bytes(data)[:7])  # a part of the line reaches the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool_module.os, "write", full)
    with pytest.raises(SpoolError) as raised:
        offline.log_batch(run_id, Batch(metrics=points("m", range(3, 6))))
    assert str(raised.value) == f"cannot spool: disk full at {spool.folder}"
    monkeypatch.setattr(spool_module.os, "write", real_write)
    first = journal.own[0]
    assert first.read_bytes().endswith(b"\n"), "the partial line was cut off"
    # When there is room again, the next record goes to a new journal
    offline.log_batch(run_id, Batch(metrics=points("m", range(6, 9))))
    assert len(journal.own) == 2
    spool.replay(store, own=journal)
    assert history(store, run_id, "m") == [(s, float(s)) for s in (0, 1, 2, 6, 7, 8)]
    assert journals(spool) == []


def test_the_writer_spools_while_the_store_is_down_and_replays_in_order_when_it_answers(
    store: MlflowRunStore, spool: Spool
) -> None:
    run_id = new_run(store)
    switch = Switch(store)
    switch.down = True
    writer = AsyncWriter(lambda: switch, linger_s=0, spool=spool)  # type: ignore[arg-type,return-value]

    def ref() -> str:
        return run_id

    for step in range(30):
        writer.log(ref, Batch(metrics=[MetricPoint("m", float(step), step, 1000 + step)]))
    writer.call(lambda s: s.put_artifact(run_id, "cells.jsonl", b"{}\n"))
    writer.call(lambda s: s.end_run(run_id, "FINISHED"))
    # Then a flush ends in seconds with everything on disk, none of it in memory
    started = time.monotonic()
    assert writer.flush(10)
    assert time.monotonic() - started < 3
    assert writer.offline and writer.pending_count() == 0
    assert writer.spooled_count() >= 3 and spool.pending_count() == writer.spooled_count()
    assert "does not answer" in str(writer.last_error)
    # When it answers again, a flush replays the journal and what comes next follows it
    switch.down = False
    writer.log(ref, Batch(tags={"after": "yes"}))
    assert writer.flush(10)
    assert not writer.offline and writer.last_error is None and writer.spooled_count() == 0
    assert history(store, run_id, "m") == [(s, float(s)) for s in range(30)]
    run = store.get_run(run_id)
    assert run.status == "FINISHED" and run.tags["after"] == "yes"
    assert store.read_artifact(run_id, "cells.jsonl") == b"{}\n"
    assert journals(spool) == []
    writer.close()


def runs_with_key(store: MlflowRunStore, key: str) -> list[str]:
    experiment = store.client.get_experiment_by_name("spool")
    found = store.find_runs([experiment.experiment_id], f"tags.`{TAG_CREATION_KEY}` = '{key}'")
    return [run.run_id for run in found]


def test_a_run_started_offline_is_created_once_when_the_store_answers(
    store: MlflowRunStore, spool: Spool
) -> None:
    # Given a store that is down when a run starts, and records that follow it
    switch = Switch(store)
    switch.down = True
    created: list[dict[str, Any]] = []
    writer = AsyncWriter(lambda: switch, linger_s=0, spool=spool, on_created=created.append)  # type: ignore[arg-type,return-value]
    handle: list[str] = []
    writer.call(
        lambda s: handle.append(s.start_run("spool", None, {TAG_CREATION_KEY: "k1"}).run_id)
    )
    writer.log(lambda: handle[-1], Batch(metrics=[MetricPoint("m", 1.0, 1, 1)]))
    writer.call(lambda s: s.end_run(handle[-1], "FINISHED"))
    # Then the run gets a provisional id and everything is on disk, nothing in memory
    assert writer.flush(5), "a flush is done once the records are spooled"
    assert handle == ["offline-k1"]
    assert writer.pending_count() == 0 and spool.pending_count() == 3
    # When the store answers
    switch.down = False
    assert writer.flush(15)
    # Then the run exists once, with its records, and the writer said which id it got
    [run_id] = runs_with_key(store, "k1")
    [handles] = created
    assert handles["offline-k1"].run_id == run_id and handles["offline-k1"].experiment_id
    assert history(store, run_id, "m") == [(1, 1.0)]
    assert store.run_status(run_id) == "FINISHED"
    assert spool.pending_count() == 0
    writer.close()


def test_the_run_panel_says_a_run_started_offline_is_not_created_then_shows_its_real_id(
    store: MlflowRunStore, spool: Spool
) -> None:
    from jupyter_mlops.core.session import TrackingSession
    from jupyter_mlops.kernel.widgets import NOT_CREATED, RunPanel

    # Given a session started while the store is down, its panel refreshed on each start
    switch = Switch(store)
    switch.down = True
    sessions: list[TrackingSession] = []
    writer = AsyncWriter(
        lambda: switch,  # type: ignore[arg-type,return-value]
        linger_s=0,
        spool=spool,
        on_created=lambda created: sessions[0].adopt_created_runs(created),
    )
    told: list[str] = []
    session = TrackingSession(
        writer, experiment="spool", on_started=lambda handle: told.append(handle.run_id)
    )
    sessions.append(session)
    assert writer.flush(5)
    panel = RunPanel(session, None)
    # Then the panel says the run is not in the store yet
    [provisional] = told
    assert provisional.startswith("offline-")
    assert panel.plain().endswith(NOT_CREATED) and NOT_CREATED in panel.html()
    # When the store answers and the spool is replayed
    switch.down = False
    assert writer.flush(15)
    # Then whoever shows the run was told its real id, and the panel no longer says so
    assert len(told) == 2 and told[1] == session.handle.run_id  # type: ignore[union-attr]
    assert store.run_status(told[1]) == "RUNNING"
    assert told[1] in panel.plain() and NOT_CREATED not in panel.plain()
    assert NOT_CREATED not in panel.html()
    writer.close()


def test_a_start_whose_answer_was_lost_or_replayed_twice_makes_one_run(
    store: MlflowRunStore, spool: Spool
) -> None:
    # Given a run the store created although its answer never came back
    first_try = store.start_run("spool", "lost", {TAG_CREATION_KEY: "k2"}).run_id
    # and the same start spooled again, with a record for it, in a journal
    journal = spool.journal()
    offline = SpoolingStore(journal)
    provisional = offline.start_run("spool", "lost", {TAG_CREATION_KEY: "k2"}).run_id
    offline.log_batch(provisional, Batch(metrics=[MetricPoint("m", 2.0, 1, 1)]))
    journal.close()
    copy = journal.own[0].read_bytes()
    # When it is replayed, and replayed again from the start
    report = spool.replay(store)
    journal.own[0].write_bytes(copy)
    again = spool.replay(store)
    # Then both replays found the run instead of making another one
    assert report.created == {provisional: first_try} and again.created == report.created
    assert runs_with_key(store, "k2") == [first_try]
    assert history(store, first_try, "m") == [(1, 2.0)]


def test_a_full_disk_while_offline_keeps_records_in_memory_and_says_so(
    store: MlflowRunStore, spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = new_run(store)
    switch = Switch(store)
    switch.down = True

    def full(_fd: int, _data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool_module.os, "write", full)
    writer = AsyncWriter(lambda: switch, linger_s=0, spool=spool)  # type: ignore[arg-type,return-value]
    writer.log(lambda: run_id, Batch(metrics=[MetricPoint("m", 1.0, 1, 1)]))
    assert not writer.flush(1.5)
    assert str(writer.last_error) == f"cannot spool: disk full at {spool.folder}"
    assert writer.pending_count() == 1
    monkeypatch.undo()
    switch.down = False
    assert writer.flush(15)
    assert history(store, run_id, "m") == [(1, 1.0)]
    writer.close()


def test_journal_lines_are_whole_json_records_with_unique_ids(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "spool", "http://user:secret@host:5000")
    offline = SpoolingStore(journal)
    for step in range(5):
        offline.log_batch("r", Batch(metrics=[MetricPoint("m", float(step), step, 0)]))
    lines = [json.loads(line) for line in journal.own[0].read_text().splitlines()]
    assert lines[0]["op"] == "header" and "secret" not in lines[0]["tracking_uri"]
    ids = [line["id"] for line in lines[1:]]
    assert len(set(ids)) == 5


def test_what_needs_the_store_itself_waits_in_memory_and_the_rest_is_spooled(
    store: MlflowRunStore, spool: Spool
) -> None:
    run_id = new_run(store)
    switch = Switch(store)
    switch.down = True
    writer = AsyncWriter(lambda: switch, linger_s=0, spool=spool)  # type: ignore[arg-type,return-value]
    writer.log(lambda: run_id, Batch(tags={"first": "1"}))
    assert writer.flush(10) and writer.offline
    order: list[str] = []
    writer.call(lambda s: order.append(f"client {s.client is not None}"))  # dataset inputs
    writer.log(lambda: run_id, Batch(metrics=[MetricPoint("m", 1.0, 1, 1)]))
    assert writer.flush(10)
    assert writer.pending_count() == 1 and writer.spooled_count() == 2 and order == []
    switch.down = False
    assert writer.flush(10) and writer.pending_count() == 0
    assert order == ["client True"]
    assert history(store, run_id, "m") == [(1, 1.0)] and store.get_run(run_id).tags["first"] == "1"
    writer.close()
