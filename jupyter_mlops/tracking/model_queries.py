"""What the Models panel reads from the Model Registry, and its one write: a promotion.

The REST handlers parse their path and body into plain values, call one function here and
send back the plain dicts it returns. Lineage and promotion are not re-implemented: they
are :func:`jupyter_mlops.tracking.registry.read_lineage` and
:func:`jupyter_mlops.tracking.registry.promote`, the same calls as ``jupyter mlops lineage``
and ``jupyter mlops promote``, so the panel and the shell can never disagree about the gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jupyter_mlops.core.errors import NotFoundError, UsageError
from jupyter_mlops.core.lineage import (
    TAG_FLAVOR,
    TAG_NOTEBOOK,
    PromotionPolicy,
    parse_model_uri,
)
from jupyter_mlops.core.review import TAG_REVIEW_ID, TAG_REVIEW_STATE
from jupyter_mlops.tracking.mlflow_store import MlflowRunStore

MAX_MODELS = 500
MAX_VERSIONS = 500


def _aliases(model: Any) -> dict[str, str]:
    """``{alias: version}`` of a registered model (MLflow 3 gives a dict; older a list)."""
    found = getattr(model, "aliases", None) or {}
    if isinstance(found, Mapping):
        return {str(alias): str(version) for alias, version in found.items()}
    return {str(a.alias): str(a.version) for a in found if hasattr(a, "alias")}


def _version_number(text: str) -> str:
    """A version from a URL: digits only, without leading zeros (MLflow's own spelling)."""
    cleaned = text.strip()
    if not cleaned.isdigit() or int(cleaned) < 1:
        raise UsageError(f"a model version is a positive number, not {text!r}")
    return str(int(cleaned))


def _filter_name(name: str) -> str:
    """``name = '...'`` in MLflow's search syntax, quoting what the name holds."""
    quote = '"' if "'" in name else "'"
    if quote in name:
        raise UsageError(f"model name {name!r} mixes both kinds of quotes")
    return f"name = {quote}{name}{quote}"


def list_models(store: MlflowRunStore) -> list[dict[str, Any]]:
    """Registered models by name, each with its aliases and its latest version."""
    models = store._call(
        "listing registered models",
        lambda: store.client.search_registered_models(
            max_results=MAX_MODELS, order_by=["name ASC"]
        ),
    )
    found: list[dict[str, Any]] = []
    for model in models:
        latest = [int(v.version) for v in (model.latest_versions or [])]
        found.append(
            {
                "name": model.name,
                "description": model.description or "",
                "aliases": _aliases(model),
                "latest_version": str(max(latest)) if latest else None,
                "last_updated": model.last_updated_timestamp,
                "tags": dict(model.tags or {}),
            }
        )
    return found


def _review(
    version_tags: Mapping[str, str], run_tags: Mapping[str, str] | None
) -> dict[str, Any] | None:
    """The review state of the version, else of its run (where the review gate looks too)."""
    for on, tags in (("version", version_tags), ("run", run_tags)):
        if tags and tags.get(TAG_REVIEW_STATE):
            return {"state": tags[TAG_REVIEW_STATE], "id": tags.get(TAG_REVIEW_ID), "on": on}
    return None


def _run_tags(store: MlflowRunStore, run_ids: set[str]) -> dict[str, dict[str, str]]:
    """The tags of each run that still exists (a deleted run has none)."""
    tags: dict[str, dict[str, str]] = {}
    for run_id in sorted(run_ids):

        def read(found: str = run_id) -> Any:
            return store.client.get_run(found)

        try:
            run = store._call(f"reading run {run_id}", read)
        except NotFoundError:
            continue
        tags[run_id] = dict(run.data.tags)
    return tags


def model_versions(store: MlflowRunStore, name: str) -> dict[str, Any]:
    """The versions of model ``name``, newest first, with aliases, review state and run."""
    model = store._call(
        f"reading registered model {name!r}", lambda: store.client.get_registered_model(name)
    )
    aliases = _aliases(model)
    found = store._call(
        f"listing the versions of {name!r}",
        lambda: store.client.search_model_versions(_filter_name(name), max_results=MAX_VERSIONS),
    )
    versions = sorted(found, key=lambda v: int(v.version), reverse=True)
    runs = _run_tags(store, {v.run_id for v in versions if v.run_id})
    rows: list[dict[str, Any]] = []
    for version in versions:
        tags = dict(version.tags or {})
        number = str(version.version)
        rows.append(
            {
                "version": number,
                "uri": f"models:/{name}/{number}",
                "aliases": sorted(a for a, v in aliases.items() if v == number),
                "run_id": version.run_id or None,
                "run_exists": bool(version.run_id) and version.run_id in runs,
                "review": _review(tags, runs.get(version.run_id or "")),
                "flavor": tags.get(TAG_FLAVOR),
                "notebook": tags.get(TAG_NOTEBOOK),
                "source": version.source or "",
                "status": str(version.status or ""),
                "created": version.creation_timestamp,
                "tags": tags,
            }
        )
    return {"name": name, "aliases": aliases, "versions": rows}


def version_lineage(store: MlflowRunStore, name: str, version: str) -> dict[str, Any]:
    """The chain of ``models:/NAME/VERSION``: what ``jupyter mlops lineage --json`` prints."""
    from jupyter_mlops.tracking.registry import read_lineage

    ref = parse_model_uri(f"models:/{name}/{_version_number(version)}")
    return read_lineage(store, ref).to_json()


def promote_version(
    store: MlflowRunStore,
    name: str,
    version: str,
    alias: str,
    *,
    policy: PromotionPolicy | None,
    note: str | None = None,
    by: str | None = None,
) -> dict[str, Any]:
    """Point ``alias`` at the version through the project's gate (``PolicyError`` if refused)."""
    from jupyter_mlops.tracking.registry import promote

    number = _version_number(version)
    alias = alias.strip()
    if not alias:
        raise UsageError("the alias must not be empty")
    promotion = promote(store, name, number, alias, policy=policy, note=note or None, by=by)
    return {
        "name": name,
        "version": promotion.version,
        "alias": promotion.alias,
        "uri": f"models:/{name}@{promotion.alias}",
        "by": promotion.by,
        "at": promotion.at,
        "review_id": promotion.review_id,
        "review_on": promotion.review_on,
        "note": promotion.note,
    }
