"""A real PostgreSQL for tests, and the team set-up on it: ``mlflow server`` with proxied artifacts.

``start_postgres()`` runs ``initdb`` on a temporary folder and ``pg_ctl start -w`` on a free
loopback port, with its unix socket in that folder, then creates the database ``mlflow``.
``initdb`` refuses to run as root: as root, the folder is given to the ``postgres`` system
user (Debian's package creates it) and every server command runs through ``runuser``.

The binaries are looked up in ``PATH`` first, then under ``/usr/lib/postgresql/*/bin``
(Debian's layout; ``make test`` installs the ``postgresql`` package when both are empty).

The session fixture ``team_server`` is ONE ``mlflow server --workers 1`` on that database
with ``--serve-artifacts`` (see ``mlflow_server.py``), shared by the whole test session:
the third set-up of the README, what a team runs.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mlflow_server import MlflowServer, _free_port, start_mlflow_server

DEBIAN_BINARIES = "/usr/lib/postgresql/*/bin"
SYSTEM_USER = "postgres"
DATABASE = "mlflow"
ROLE = "mlflow"


def postgres_bin_dir() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``: from ``PATH``, else Debian's newest."""
    found = shutil.which("initdb")
    if found and (Path(found).parent / "pg_ctl").exists():
        return Path(found).parent
    candidates = sorted(
        (p.parent for p in Path("/").glob(DEBIAN_BINARIES.lstrip("/") + "/initdb")),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)] or [0],
    )
    if not candidates:
        raise RuntimeError(
            "PostgreSQL is not installed (no initdb in PATH or under "
            f"{DEBIAN_BINARIES}): run `make system-deps` or `apt-get install -y postgresql`"
        )
    return candidates[-1]


@dataclass
class Snapshot:
    """The rows of a database's tables at one moment (see ``PostgresServer.snapshot``)."""

    tables: list[str]
    rows: dict[str, list[tuple[Any, ...]]]


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in a temporary folder: its URI, start and stop."""

    folder: Path
    port: int
    bin_dir: Path
    as_user: str | None  # the system user running the server commands (None: ourselves)
    log_lines: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log_path(self) -> Path:
        return self.folder / "postgres.log"

    @property
    def uri(self) -> str:
        """The SQLAlchemy URI of the database ``mlflow``."""
        return self.uri_for(DATABASE)

    def uri_for(self, database: str) -> str:
        """The SQLAlchemy URI MLflow takes (psycopg2: SQLAlchemy 2.1's plain
        ``postgresql://`` means psycopg 3, which is not installed)."""
        return f"postgresql+psycopg2://{ROLE}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_user:
            command = ["runuser", "-u", self.as_user, "--", *command]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=self.folder
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited with {result.returncode}:\n"
                f"{result.stdout}{result.stderr}{self.log()}"
            )
        return result

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            ROLE,
            "--auth=trust",  # loopback and a private socket folder only
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )

    def start(self) -> PostgresServer:
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "start"
        )
        return self

    def _connect(self, database: str) -> Any:
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=ROLE, dbname=database)

    def create_database(self, name: str = DATABASE) -> None:
        connection = self._connect("postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {name}")
        finally:
            connection.close()

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        """Rows of ``sql`` in the ``mlflow`` database, read with psycopg2 (not through MLflow)."""
        connection = self._connect(DATABASE)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def snapshot(self, database: str) -> Snapshot:
        """Every table's rows of ``database`` (MLflow's schema: a few rows once migrated)."""
        connection = self._connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version' ORDER BY tablename"
                )
                tables = [str(row[0]) for row in cursor.fetchall()]
                rows = {}
                for table in tables:
                    cursor.execute(f'SELECT * FROM "{table}"')
                    rows[table] = list(cursor.fetchall())
            return Snapshot(tables, rows)
        finally:
            connection.close()

    def restore(self, database: str, snapshot: Snapshot) -> None:
        """Put ``database`` back to ``snapshot``: truncate every table, reinsert its rows.

        One transaction with foreign keys deferred by ``session_replication_role``, so the
        order of the inserts does not matter; sequences restart (ids begin again).
        """
        connection = self._connect(database)
        try:
            with connection, connection.cursor() as cursor:
                names = ", ".join(f'"{t}"' for t in snapshot.tables)
                cursor.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
                cursor.execute("SET LOCAL session_replication_role = replica")
                for table, rows in snapshot.rows.items():
                    for row in rows:
                        marks = ", ".join(["%s"] * len(row))
                        cursor.execute(f'INSERT INTO "{table}" VALUES ({marks})', row)
        finally:
            connection.close()

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


def start_postgres() -> PostgresServer:
    """A running PostgreSQL on a free loopback port with an empty database ``mlflow``."""
    bin_dir = postgres_bin_dir()
    as_user = None
    # A short path (the socket path must stay under 108 bytes) that the postgres user can
    # reach: pytest's own temporary folders are private to the user running the tests.
    folder = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            shutil.rmtree(folder)
            raise RuntimeError(
                f"initdb refuses to run as root and there is no '{SYSTEM_USER}' user "
                "(Debian's postgresql package creates it)"
            ) from None
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_user = SYSTEM_USER
    server = PostgresServer(folder, _free_port(), bin_dir, as_user)
    try:
        server.init()
        server.start()
        server.create_database()
    except BaseException:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = start_postgres()
    yield server
    try:
        server.stop()
    finally:
        shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def team_server(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    """ONE ``mlflow server --workers 1`` on PostgreSQL with proxied artifacts, per session."""
    server = start_mlflow_server(
        tmp_path_factory.mktemp("team-server"), backend_store_uri=postgres_server.uri
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def team_fresh_server(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    """A second team server, on the database ``mlflow_fresh`` that ``--store team`` empties
    for every test's project (see ``store_under_test.py``)."""
    from store_under_test import FRESH_DATABASE

    postgres_server.create_database(FRESH_DATABASE)
    server = start_mlflow_server(
        tmp_path_factory.mktemp("team-fresh-server"),
        backend_store_uri=postgres_server.uri_for(FRESH_DATABASE),
    )
    yield server
    server.stop()
