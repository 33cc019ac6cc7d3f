"""Batches started from JupyterLab: ``jupyter mlops batch`` as a child process of the server.

The server never executes notebooks in its own process: a batch is the same command a
user types, started in the served root, its output in ``.mlops/batches/<job>.log``. Its
progress is read back from the lines the command prints for each point, so the job shows
exactly what the shell would. Stopping a job sends SIGTERM, which the command treats as
Ctrl-C: kernels shut down, runs KILLED, the batch resumable.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from jupyter_mlops.core.errors import NotFoundError, UsageError
from jupyter_mlops.core.parameters import check_name
from jupyter_mlops.core.settings import ENV_TRACKING_URI

JOB_ID = re.compile(r"bj-[0-9a-f]{8}")
MAX_WORKERS = 8
MAX_POINTS = 1000
POINT_LINE = re.compile(r"^point (\d+) (FINISHED|FAILED|KILLED|SKIPPED)\b", re.MULTILINE)
BATCH_LINE = re.compile(r"^batch ([0-9a-f]{32}): (\d+)/(\d+) points finished", re.MULTILINE)


@dataclass(frozen=True)
class BatchSpec:
    """What a user asks for: a notebook under the root, a grid, a number of workers."""

    notebook: str
    grid: dict[str, list[Any]]
    workers: int = 2

    @property
    def points(self) -> int:
        return math.prod(len(values) for values in self.grid.values())

    def arguments(self) -> list[str]:
        args = ["batch", self.notebook, "--workers", str(self.workers)]
        for name, values in self.grid.items():
            args += ["--grid", f"{name}={','.join(_grid_text(v) for v in values)}"]
        return args


def _grid_text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return repr(value)
    return str(value)


def parse_spec(body: dict[str, Any]) -> BatchSpec:
    """Check a request body; every problem is one ``UsageError`` naming the field."""
    notebook = body.get("notebook")
    if not isinstance(notebook, str) or not notebook.strip():
        raise UsageError("'notebook' must be the path of a notebook")
    grid = body.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise UsageError("'grid' must map parameter names to lists of values")
    checked: dict[str, list[Any]] = {}
    for name, values in grid.items():
        check_name(str(name))
        if not isinstance(values, list) or not values:
            raise UsageError(f"grid {name!r}: give a non-empty list of values")
        for value in values:
            if not isinstance(value, (str, int, float, bool)) or (
                isinstance(value, str) and ("," in value or not value.strip())
            ):
                raise UsageError(
                    f"grid {name!r}: {value!r} is not a value a sweep can take",
                    hint="numbers, booleans and non-empty text without commas",
                )
        checked[str(name)] = values
    workers = body.get("workers", 2)
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= MAX_WORKERS:
        raise UsageError(f"'workers' must be a whole number from 1 to {MAX_WORKERS}")
    spec = BatchSpec(notebook.strip(), checked, workers)
    if spec.points > MAX_POINTS:
        raise UsageError(f"the grid has {spec.points} points; at most {MAX_POINTS} from here")
    return spec


@dataclass
class BatchJob:
    id: str
    spec: BatchSpec
    created_by: str
    created_at: str
    log_path: Path
    process: subprocess.Popen[bytes]
    _log: IO[bytes] | None = field(default=None, repr=False)

    def state(self) -> str:
        code = self.process.poll()
        if code is None:
            return "running"
        if code == 0:
            return "finished"
        return "stopped" if code < 0 or code >= 128 else "failed"

    def as_json(self, log_tail: int = 0) -> dict[str, Any]:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        statuses = [m.group(2) for m in POINT_LINE.finditer(text)]
        batch = BATCH_LINE.search(text)
        data: dict[str, Any] = {
            "id": self.id,
            "state": self.state(),
            "exit_code": self.process.poll(),
            "notebook": self.spec.notebook,
            "grid": self.spec.grid,
            "workers": self.spec.workers,
            "points": self.spec.points,
            "done": statuses.count("FINISHED") + statuses.count("SKIPPED"),
            "failed": statuses.count("FAILED") + statuses.count("KILLED"),
            "batch_run_id": batch.group(1) if batch else _batch_id(text),
            "created_by": self.created_by,
            "created_at": self.created_at,
        }
        if log_tail:
            data["log"] = "\n".join(text.splitlines()[-log_tail:])
        return data


def _batch_id(text: str) -> str | None:
    found = re.search(r"--resume ([0-9a-f]{32})", text)
    return found.group(1) if found else None


class BatchJobs:
    """The jobs this server started (kept in memory; their runs are in the store)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._jobs: dict[str, BatchJob] = {}
        self._lock = threading.Lock()

    def start(
        self,
        spec: BatchSpec,
        user: str,
        environ: dict[str, str] | None = None,
        tracking_uri: str | None = None,
    ) -> BatchJob:
        """Start ``jupyter mlops batch`` in the root; ``tracking_uri`` is its location.

        Given as ``MLFLOW_TRACKING_URI`` to the command (which passes it to its kernels);
        the command runs in the root, so a relative SQLite or folder URI names the same
        store as in the server, which anchors it at the root.
        """
        job_id = f"bj-{secrets.token_hex(4)}"
        env = dict(environ if environ is not None else os.environ)
        if tracking_uri:
            env[ENV_TRACKING_URI] = tracking_uri
        folder = self.root / ".mlops" / "batches"
        folder.mkdir(parents=True, exist_ok=True)
        log_path = folder / f"{job_id}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyter_mlops.cli", *spec.arguments()],
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        job = BatchJob(
            job_id,
            spec,
            user,
            datetime.now(timezone.utc).isoformat(timespec="seconds"),
            log_path,
            process,
            log,
        )
        with self._lock:
            self._jobs[job_id] = job
        return job

    def get(self, job_id: str) -> BatchJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"there is no batch job {job_id} on this server")
        return job

    def all(self) -> list[BatchJob]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created_at, reverse=True)

    def stop(self, job_id: str) -> BatchJob:
        """SIGTERM to the command (it ends its runs KILLED and leaves the batch resumable)."""
        job = self.get(job_id)
        if job.process.poll() is None:
            job.process.send_signal(signal.SIGTERM)
        return job

    def close(self) -> None:
        """At server shutdown: stop what still runs, so no kernel outlives the server."""
        for job in self.all():
            if job.process.poll() is None:
                job.process.send_signal(signal.SIGTERM)
        for job in self.all():
            try:
                job.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                job.process.kill()
            if job._log is not None:
                job._log.close()
