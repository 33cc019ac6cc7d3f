"""The batch's switch of the embedded database to WAL while another connection writes."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from jupyter_mlops.core.settings import resolve_tracking_location
from jupyter_mlops.execution.batch import enable_sqlite_wal


def test_the_switch_to_wal_waits_for_a_writer_instead_of_failing(tmp_path: Path) -> None:
    # Given a database another connection is writing to (as a kernel in Lab, another batch)
    db = tmp_path / "store.db"
    with sqlite3.connect(db) as setup:
        setup.execute("CREATE TABLE t (x INTEGER)")
    writer = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    done = threading.Timer(1.0, lambda: writer.execute("COMMIT"))
    done.start()
    # When the batch switches it to WAL
    enable_sqlite_wal(resolve_tracking_location(f"sqlite:///{db}", cwd=tmp_path))
    done.join()
    writer.close()
    # Then it waited for the writer ("database is locked" at once, before) and switched
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert check.execute("SELECT count(*) FROM t").fetchone()[0] == 1
