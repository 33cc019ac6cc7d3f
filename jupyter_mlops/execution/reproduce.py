"""``jupyter mlops reproduce RUN_ID``: re-execute a run's own snapshot and judge the result.

The snapshot and the typed parameters come from the run itself (not from the notebook on
disk, which may have changed since), the execution is a new run tagged with the
original's id, and the verdict is tagged on the original.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_mlops.core.errors import NotFoundError, UsageError
from jupyter_mlops.core.reproduce import Verdict, judge
from jupyter_mlops.core.secrets import SecretMasker
from jupyter_mlops.core.session import TAG_SNAPSHOT
from jupyter_mlops.core.settings import TrackingLocation
from jupyter_mlops.core.snapshot import masked_copy
from jupyter_mlops.execution.runner import (
    EXECUTED_ARTIFACT,
    TAG_INPUT_NOTEBOOK,
    TAG_INPUT_SNAPSHOT,
    RunOutcome,
    RunRequest,
    run_notebook,
)
from jupyter_mlops.tracking.environment import TAG_NOTEBOOK
from jupyter_mlops.tracking.store import Batch

TAG_REPRODUCES = "mlops.reproduces"
TAG_VERDICT = "mlops.reproduced"
TAG_REPRODUCED_BY = "mlops.reproduced_by"
REPRODUCE_DIRNAME = "reproduce"


@dataclass
class Reproduction:
    original_run_id: str
    outcome: RunOutcome
    verdict: Verdict


def _read_json(store: Any, run_id: str, path: str) -> Any | None:
    try:
        return json.loads(store.read_artifact(run_id, path))
    except NotFoundError:
        return None
    except Exception:  # MLflow raises OSError-likes for a missing local artifact
        return None


def reproduce(run_id: str, location: TrackingLocation, tolerance: float) -> Reproduction:
    from jupyter_mlops.tracking.mlflow_store import MlflowRunStore

    if tolerance < 0:
        raise UsageError(f"--tolerance must not be negative, not {tolerance}")
    if location.store_missing():
        raise NotFoundError(f"no run {run_id}: there is no tracking database yet")
    store = MlflowRunStore(location)
    original = store.get_run(run_id)
    snapshot_sha = original.tags.get(TAG_INPUT_SNAPSHOT) or original.tags.get(TAG_SNAPSHOT)
    if not snapshot_sha:
        raise UsageError(f"run {run_id} has no notebook snapshot to re-execute")
    snapshot = _read_json(store, run_id, f"snapshots/{snapshot_sha}.ipynb")
    if snapshot is None:
        raise NotFoundError(f"run {run_id}: its snapshot {snapshot_sha[:12]} is not in the store")
    params = _read_json(store, run_id, "parameters.json") or {}
    notebook_path = original.tags.get(TAG_INPUT_NOTEBOOK) or original.tags.get(TAG_NOTEBOOK)
    name = Path(notebook_path).name if notebook_path else f"{snapshot_sha[:12]}.ipynb"
    original_executed = _read_json(store, run_id, f"{EXECUTED_ARTIFACT}/{name}")
    if original_executed is None and not original.tags.get(TAG_INPUT_SNAPSHOT):
        original_executed = snapshot  # an interactive run: its snapshot holds its outputs
    # The snapshot runs where the original ran, so relative data paths mean the same files.
    folder = Path(notebook_path).parent if notebook_path else None
    workdir = location.project_root / ".mlops" / REPRODUCE_DIRNAME / run_id
    workdir.mkdir(parents=True, exist_ok=True)
    copy = workdir / f"snapshot-{name}"
    copy.write_text(json.dumps(snapshot), encoding="utf-8")
    experiment = store.client.get_experiment(original.experiment_id).name
    outcome = run_notebook(
        RunRequest(
            notebook=copy,
            params=params,
            experiment=experiment,
            run_name=f"reproduce-{original.run_name or run_id[:8]}",
            output=workdir / name,
            kernel=original.tags.get("mlops.kernel"),
            allow_unknown_params=True,
            tags={TAG_REPRODUCES: run_id},
            cwd=folder if folder is not None and folder.is_dir() else None,
        ),
        location,
        store=store,
    )
    # The original's executed notebook was stored masked: compare like with like, or a
    # run id that the masker takes for a secret reads as a difference.
    reproduced_nb = masked_copy(
        json.loads(outcome.output_path.read_text(encoding="utf-8")), SecretMasker()
    )
    verdict = judge(
        original_executed,
        reproduced_nb,
        original.metrics,
        outcome.metrics,
        tolerance,
        diff=_nbdime_diff,
    )
    if outcome.status != "FINISHED" and original.status == "FINISHED":
        verdict.kind = "differs"
        verdict.output_difference = f"the re-execution {outcome.status}: {outcome.summary()}"
    store.log_batch(
        run_id,
        Batch(tags={TAG_VERDICT: verdict.explain()[:500], TAG_REPRODUCED_BY: outcome.run_id}),
    )
    store.log_batch(outcome.run_id, Batch(tags={"mlops.verdict": verdict.explain()[:500]}))
    return Reproduction(run_id, outcome, verdict)


def _nbdime_diff(a: dict[str, Any], b: dict[str, Any]) -> Any:
    import nbformat
    from nbdime import diff_notebooks

    return diff_notebooks(
        nbformat.from_dict(a),  # type: ignore[no-untyped-call]
        nbformat.from_dict(b),  # type: ignore[no-untyped-call]
    )
