"""The run browser's first page against MLflow's own ``runs/search``, with 10,000 runs.

Builds a SQLite MLflow store with 10,000 runs in one experiment (5 params, 5 metrics and
2 tags each; the rows are inserted in bulk into MLflow's own tables, because logging them
through MLflow would take minutes), then starts on 127.0.0.1:

* ``mlflow server`` on that store, and times ``POST /api/2.0/mlflow/runs/search``;
* ``jupyter server`` with jupyter-mlops on the same store, and times
  ``GET /jupyter-mlops/api/runs`` once its read index has loaded;

for the first page of 50 runs ordered by start time, by a metric and by a param, and
filtered. Prints the median and p95 of each and the ratio MLflow / ours. The target: the
first page under 150 ms in every ordering, a metric as fast as start time.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
RUNS = 10_000
PAGE = 50
REPEATS = 15
TARGET_MS = 150.0
QUERIES = (
    ("start time", "attributes.start_time DESC", ""),
    ("metric", "metrics.acc DESC", ""),
    ("param", "params.lr ASC", ""),
    ("metric, filtered", "metrics.f1 DESC", "metrics.acc > 0.5 and params.model = 'gb'"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_store(folder: Path) -> tuple[str, str]:
    """A SQLite store with ``RUNS`` runs; returns its URI and the experiment id."""
    from mlflow.tracking import MlflowClient

    db = folder / "mlflow.db"
    uri = f"sqlite:///{db}"
    experiment = MlflowClient(uri).create_experiment("bench", artifact_location=str(folder / "a"))
    rng = random.Random(3)
    start = int(time.time() * 1000) - RUNS * 1000
    runs, params, latest, metrics, tags = [], [], [], [], []
    for i in range(RUNS):
        run_id = uuid.uuid4().hex
        begun = start + i * 1000
        runs.append(
            (run_id, f"run-{i}", "LOCAL", "", "", "bench", "FINISHED", begun, begun + 500, "",
             "active", f"{folder}/a/{run_id}", int(experiment))
        )  # fmt: skip
        params += [
            ("lr", rng.choice(["0.1", "0.01", "0.001"]), run_id),
            ("model", rng.choice(["rf", "gb", "lr"]), run_id),
            ("depth", str(rng.randint(2, 12)), run_id),
            ("seed", str(i), run_id),
            ("batch", rng.choice(["32", "64", "128"]), run_id),
        ]
        for key in ("acc", "loss", "f1", "auc", "seconds"):
            value = rng.random()
            latest.append((key, value, begun, 0, 0, run_id))
            metrics.append((key, value, begun, run_id, 0, 0))
        tags += [("mlflow.runName", f"run-{i}", run_id), ("mlops.notebook", "train.ipynb", run_id)]
    with sqlite3.connect(db) as connection:
        connection.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
            "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
            "artifact_uri, experiment_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            runs,
        )
        connection.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?,?,?)", params)
        connection.executemany(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
            "VALUES (?,?,?,?,?,?)",
            latest,
        )
        connection.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
            "VALUES (?,?,?,?,?,?)",
            metrics,
        )
        connection.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?,?,?)", tags)
    return uri, str(experiment)


def wait_for(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer within 120 s")


def timed(request: urllib.request.Request) -> tuple[float, Any, str]:
    """Milliseconds, the JSON answer, and our index's state header (empty for MLflow)."""
    began = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as answer:
        body = json.loads(answer.read())
        index_state = answer.headers.get("X-MLOps-Run-Index", "")
    return (time.perf_counter() - began) * 1000, body, index_state


def ours(base: str, token: str, experiment: str, order: str, filt: str) -> urllib.request.Request:
    query = urllib.parse.urlencode(
        {"experiment": experiment, "order_by": order, "filter": filt, "max_results": PAGE}
    )
    return urllib.request.Request(
        f"{base}/jupyter-mlops/api/runs?{query}", headers={"Authorization": f"token {token}"}
    )


def mlflows(base: str, experiment: str, order: str, filt: str) -> urllib.request.Request:
    body = {
        "experiment_ids": [experiment],
        "order_by": [order],
        "filter": filt,
        "max_results": PAGE,
    }
    return urllib.request.Request(
        f"{base}/api/2.0/mlflow/runs/search",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )


def summary(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-api-") as scratch:
        folder = Path(scratch)
        began = time.perf_counter()
        uri, experiment = build_store(folder)
        print(f"store: {RUNS} runs in {time.perf_counter() - began:.1f} s", flush=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        mlflow_port, lab_port, token = free_port(), free_port(), secrets.token_hex(16)
        mlflow_server = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
             "--workers", "1", "--backend-store-uri", uri,
             "--default-artifact-root", str(folder / "a")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        jupyter_server = subprocess.Popen(
            [str(BIN / "jupyter"), "server", "--no-browser", "--ip=127.0.0.1",
             f"--port={lab_port}", f"--ServerApp.root_dir={folder}",
             f"--IdentityProvider.token={token}", "--allow-root",
             f"--MlopsExtensionApp.tracking_uri={uri}"],
            cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        try:
            mlflow_base = f"http://127.0.0.1:{mlflow_port}"
            lab_base = f"http://127.0.0.1:{lab_port}"
            wait_for(f"{mlflow_base}/health", mlflow_server, "mlflow server")
            wait_for(f"{lab_base}/api/status?token={token}", jupyter_server, "jupyter server")
            began = time.perf_counter()
            while True:  # the first pages come from MLflow while the index loads
                _, _, index_state = timed(ours(lab_base, token, experiment, QUERIES[0][1], ""))
                if index_state == "ready":
                    break
                if time.perf_counter() - began > 300:
                    raise RuntimeError("the read index did not load within 300 s")
                time.sleep(0.2)
            print(f"read index ready {time.perf_counter() - began:.1f} s after the first page")
            print(f"\nfirst page of {PAGE} of {RUNS} runs, {REPEATS} times each (ms)")
            print(f"{'ordering':<18}{'ours med':>10}{'p95':>8}{'mlflow med':>12}{'p95':>8}"
                  f"{'ratio':>8}  target")  # fmt: skip
            missed = 0
            for label, order, filt in QUERIES:
                our_times, their_times = [], []
                for _ in range(REPEATS):
                    ms, our_page, _ = timed(ours(lab_base, token, experiment, order, filt))
                    our_times.append(ms)
                for _ in range(max(3, REPEATS // 5) if "metric" in label else REPEATS):
                    ms, their_page, _ = timed(mlflows(mlflow_base, experiment, order, filt))
                    their_times.append(ms)
                same = [r["id"] for r in our_page["runs"]] == [
                    r["info"]["run_id"] for r in their_page.get("runs", [])
                ]
                our_med, our_p95 = summary(our_times)
                their_med, their_p95 = summary(their_times)
                met = our_p95 < TARGET_MS
                missed += not met
                print(
                    f"{label:<18}{our_med:>10.1f}{our_p95:>8.1f}{their_med:>12.1f}"
                    f"{their_p95:>8.1f}{their_med / our_med:>7.1f}x  "
                    f"{'met' if met else 'MISSED'}{'' if same else '  (pages differ!)'}"
                )
            return 1 if missed else 0
        finally:
            for process in (jupyter_server, mlflow_server):
                process.terminate()
            for process in (jupyter_server, mlflow_server):
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()


if __name__ == "__main__":
    sys.exit(main())
