"""``jupyter mlops sweep``: end the RUNNING runs whose process died, as KILLED.

Which runs are stale is :func:`jupyter_mlops.core.heartbeat.stale_runs`'s decision; this
module reads the RUNNING runs of every experiment and ends the stale ones.
"""

from __future__ import annotations

from typing import Any

from jupyter_mlops.core.heartbeat import TAG_SWEPT, StaleRun, stale_runs
from jupyter_mlops.core.settings import TrackingLocation
from jupyter_mlops.tracking.heartbeat import now_ms
from jupyter_mlops.tracking.store import Batch


def sweep(location: TrackingLocation, stale_after_s: float, dry_run: bool) -> list[StaleRun]:
    from jupyter_mlops.tracking.mlflow_store import MlflowRunStore

    if location.store_missing():
        return []
    store: Any = MlflowRunStore(location)
    running = store.find_runs(store.experiment_ids(), "attributes.status = 'RUNNING'", 5000)
    now = now_ms()
    found = stale_runs(running, now, stale_after_s)
    if not dry_run:
        for run in found:
            store.log_batch(run.run_id, Batch(tags={TAG_SWEPT: run.reason(now)}))
            store.end_run(run.run_id, "KILLED")
    return found
