"""Dataset inputs: runs of one experiment logging the same data at the same moment.

MLflow's ``log_inputs`` looks a dataset up and inserts it when it is missing; two runs
doing that at once both insert, and one failed ("UNIQUE constraint failed"): in the demo,
a batch point's ``%mlops_register`` then found its run unwritten.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from store_under_test import store_client

from conftest import clean_env

PROCESSES = 6
ROUNDS = 3

LOG_AT = """
import sys, time
from pathlib import Path
import pandas as pd
from jupyter_mlops.core.settings import resolve_tracking_location
from jupyter_mlops.tracking.datasets import log_dataframes
from jupyter_mlops.tracking.mlflow_store import MlflowRunStore

store = MlflowRunStore(resolve_tracking_location(cwd=Path(sys.argv[1])))
run = store.start_run("shared-data", f"p{sys.argv[3]}", {})
for round in range(ROUNDS):
    frame = pd.DataFrame({"x": range(100 + round), "y": [i * 0.5 for i in range(100 + round)]})
    ready = Path(sys.argv[2]) / str(round)
    ready.mkdir(exist_ok=True)
    (ready / sys.argv[3]).touch()
    deadline = time.time() + 30
    while len(list(ready.iterdir())) < PROCESSES and time.time() < deadline:  # all together
        time.sleep(0.002)
    log_dataframes(store, run.run_id, {f"train_{round}": frame, f"test_{round}": frame.head(20)})
store.end_run(run.run_id, "FINISHED")
"""


def test_runs_logging_the_same_dataset_at_once_all_succeed(project: Path) -> None:
    # Given processes with a run each in one experiment, and the same frames
    ready = project / "ready"
    ready.mkdir()
    script = LOG_AT.replace("ROUNDS", str(ROUNDS)).replace("PROCESSES", str(PROCESSES))
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(project), str(ready), str(i)],
            cwd=project,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    # When they log the frames at the same moment, round after round
    outcomes = [(p.wait(timeout=180), p.communicate()[1]) for p in processes]
    # Then every one succeeded, and every run has both datasets as inputs
    assert [code for code, _ in outcomes] == [0] * PROCESSES, [err[-1500:] for _, err in outcomes]
    client = store_client(project)
    experiment = client.get_experiment_by_name("shared-data")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == PROCESSES
    for run in runs:
        names = sorted(d.dataset.name for d in run.inputs.dataset_inputs)
        expected = sorted(f"{kind}_{r}" for r in range(ROUNDS) for kind in ("train", "test"))
        assert names == expected, run.info.run_name
    # and each dataset exists once, shared by the runs
    digests = {(d.dataset.name, d.dataset.digest) for r in runs for d in r.inputs.dataset_inputs}
    assert len(digests) == 2 * ROUNDS
