"""The DataFrames a tracked cell read, logged as MLflow dataset inputs of its run.

What is stored is a digest, a schema, the row and element counts and the variable's name,
never the data. ``mlflow.data.from_pandas`` would do the same but infers the schema from
every row (about 8 s for a million rows with one text column, measured here), so the
digest is computed here with pandas' vectorized row hashing (about 0.1 s for the same
frame) and the schema from the first rows; the result is an ordinary MLflow dataset input,
shown by the MLflow UI and read back by ``jupyter mlops lineage``.

This runs in the writer thread. The kernel hands over shallow copies of the frames: with
pandas' copy-on-write (the default from pandas 3) a later cell that changes a frame in
place does not change the copy, so the digest is that of the data the cell saw.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from jupyter_mlops.tracking.mlflow_store import MlflowRunStore

#: Rows the schema is inferred from.
SCHEMA_ROWS = 1000
#: MLflow's limit on a dataset digest is 36 characters.
DIGEST_LENGTH = 32
#: The input tag MLflow's UI shows as the dataset's context.
CONTEXT_TAG = "mlflow.data.context"
log = logging.getLogger(__name__)

#: (name, digest) pairs already logged, per run: a cell run again logs nothing new.
_logged: dict[str, set[tuple[str, str]]] = {}


def frame_digest(frame: Any) -> str:
    """SHA-256 (cut to 32 hex digits) of a DataFrame's columns, dtypes, index and values."""
    import pandas as pd

    digest = hashlib.sha256()
    columns = [[str(name), str(dtype)] for name, dtype in frame.dtypes.items()]
    digest.update(json.dumps([list(frame.shape), columns]).encode())
    try:
        rows = pd.util.hash_pandas_object(frame, index=True)
    except TypeError:  # unhashable cells (lists, dicts): hash their text instead
        rows = pd.util.hash_pandas_object(frame.astype(str), index=True)
    digest.update(rows.to_numpy().tobytes())
    return digest.hexdigest()[:DIGEST_LENGTH]


def _schema(frame: Any) -> str | None:
    from mlflow.types.utils import _infer_schema

    try:
        schema = _infer_schema(frame.head(SCHEMA_ROWS))
    except Exception as error:  # an exotic column: the digest still identifies the data
        log.debug("no schema for a dataset: %s", error)
        return None
    return json.dumps({"mlflow_colspec": schema.to_dict()})


def dataset_inputs(
    frames: dict[str, Any], source_tags: dict[str, str], context: str
) -> list[tuple[str, str, Any]]:
    """``(name, digest, DatasetInput)`` for each frame."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.entities import Dataset, DatasetInput, InputTag

    source = CodeDatasetSource(tags=source_tags)
    found = []
    for name, frame in frames.items():
        digest = frame_digest(frame)
        dataset = Dataset(
            name=name,
            digest=digest,
            source_type=source._get_source_type(),
            source=source.to_json(),
            schema=_schema(frame),
            profile=json.dumps({"num_rows": len(frame), "num_elements": int(frame.size)}),
        )
        found.append((name, digest, DatasetInput(dataset, [InputTag(CONTEXT_TAG, context)])))
    return found


def log_dataframes(
    store: MlflowRunStore,
    run_id: str,
    frames: dict[str, Any],
    source_tags: dict[str, str] | None = None,
    context: str = "tracked cell",
) -> list[str]:
    """Log ``{variable: DataFrame}`` as dataset inputs of the run; returns the new digests."""
    seen = _logged.setdefault(run_id, set())
    inputs = [
        item
        for item in dataset_inputs(frames, dict(source_tags or {}), context)
        if (item[0], item[1]) not in seen
    ]
    if not inputs:
        return []
    store._call(
        f"logging datasets {', '.join(name for name, _, _ in inputs)}",
        lambda: store.client.log_inputs(run_id, datasets=[i for _, _, i in inputs]),
        # Another run of the experiment may be creating the same dataset right now.
        retry_duplicates=True,
    )
    seen.update((name, digest) for name, digest, _ in inputs)
    return [digest for _, digest, _ in inputs]
