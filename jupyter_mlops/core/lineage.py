"""Where a registered model came from, and who may move an alias to it.

A model version registered by jupyter-mlops carries its lineage as tags, frozen when it
is registered: the run that produced it, the notebook and the SHA-256 of its snapshot,
the SHA-256 of the run's params (canonical JSON), the git commit, the environment hash
and the digests of the datasets the run read. ``jupyter mlops lineage`` reads them back
with the run and prints the chain model -> run -> notebook snapshot -> params -> data ->
environment.

The review gate: ``[tool.jupyter-mlops] require_review_for = ["champion"]`` in the
project's ``pyproject.toml`` refuses to point those aliases at a version unless the
version, or the run that produced it, carries an approved review; aliases listed in
``require_reproduced_for`` also need the run's reproduction verdict to be a success.
A promotion is recorded on the version (who, when, which review).

Everything here is plain values: the tracking adapter reads the store, this module
decides and renders.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jupyter_mlops.core.errors import ConfigError, UsageError
from jupyter_mlops.core.parameters import canonical_params
from jupyter_mlops.core.review import TAG_REVIEW_ID, TAG_REVIEW_STATE
from jupyter_mlops.core.settings import PYPROJECT_TABLE, load_project_config

# -- tags on a model version (written at registration) ---------------------------------
TAG_RUN_ID = "mlops.run_id"
TAG_NOTEBOOK = "mlops.notebook"
TAG_SNAPSHOT = "mlops.snapshot"
TAG_PARAMS_HASH = "mlops.params_hash"
TAG_GIT_COMMIT = "mlops.git_commit"
TAG_ENVIRONMENT_HASH = "mlops.environment_hash"
TAG_DATASETS = "mlops.datasets"
TAG_ARTIFACT = "mlops.artifact_path"
TAG_FLAVOR = "mlops.flavor"
#: ``mlops.promoted.<alias>``: JSON of who promoted the version to the alias, when, why.
PROMOTED_PREFIX = "mlops.promoted."

# -- tags on runs, written elsewhere and read here ---------------------------------------
#: ``tracking.environment.run_tags`` writes the git commit under MLflow's own key.
RUN_TAG_GIT_COMMIT = "mlflow.source.git.commit"
RUN_TAG_GIT_DIRTY = "mlops.git.dirty"
#: The sessions and the runner tag the environment listing's hash under the same key.
RUN_TAG_ENVIRONMENT_HASH = TAG_ENVIRONMENT_HASH

# -- reviews: tags on the model version or on its run (``core.review`` writes them) ------
REVIEW_APPROVED = "approved"
#: The verdict ``jupyter mlops reproduce`` tags on the original run
#: (``execution.reproduce.TAG_VERDICT``; a test keeps the two equal).
TAG_REPRODUCED = "mlops.reproduced"
REPRODUCED_VERDICTS = frozenset({"reproduced", "reproduced after normalization"})

POLICY_REVIEW_KEY = "require_review_for"
POLICY_REPRODUCED_KEY = "require_reproduced_for"


# -- references --------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelRef:
    """``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``."""

    name: str
    version: str | None = None
    alias: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}" if self.version else self.alias_uri

    @property
    def alias_uri(self) -> str:
        return f"models:/{self.name}@{self.alias}"


def parse_model_uri(text: str) -> ModelRef:
    """Parse ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``; anything else is a usage error."""
    prefix = "models:/"
    usage = f"{text!r} is not a model reference; use models:/NAME/VERSION or models:/NAME@ALIAS"
    if not text.startswith(prefix):
        raise UsageError(usage)
    rest = text[len(prefix) :].strip("/")
    if "/" in rest:
        name, _, version = rest.rpartition("/")
        if not version.isdigit() or not name or "/" in name:
            raise UsageError(usage)
        return ModelRef(name, version=str(int(version)))
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        if not name or not alias:
            raise UsageError(usage)
        return ModelRef(name, alias=alias)
    raise UsageError(usage)


# -- what a run contributes --------------------------------------------------------------
@dataclass(frozen=True)
class DatasetFact:
    """A dataset input of a run: its name, digest and size as MLflow recorded them."""

    name: str
    digest: str
    rows: int | None = None
    context: str | None = None


@dataclass(frozen=True)
class Review:
    """An approved review and where it was found: on the version or on its run."""

    review_id: str
    on: str  # version | run


@dataclass(frozen=True)
class RunFacts:
    """The facts of a run that a model version's lineage records, as plain values."""

    run_id: str
    experiment: str | None = None
    status: str | None = None
    notebook: str | None = None
    snapshot: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    git_dirty: str | None = None
    environment_hash: str | None = None
    datasets: tuple[DatasetFact, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def params_hash(self) -> str:
        return params_hash(self.params)

    @property
    def verdict(self) -> str | None:
        return self.tags.get(TAG_REPRODUCED)


def params_hash(params: Mapping[str, Any]) -> str:
    """SHA-256 of the params' canonical JSON (keys sorted): equal params, equal hash."""
    return hashlib.sha256(canonical_params(params).encode()).hexdigest()


def dataset_digests(datasets: Iterable[DatasetFact]) -> str:
    """The ``mlops.datasets`` tag: digests in the order read, each once, comma-separated."""
    return ",".join(dict.fromkeys(d.digest for d in datasets))


def version_tags(facts: RunFacts) -> dict[str, str]:
    """The lineage tags of a version registered from the run ``facts`` describes.

    A fact the run does not have (no git repository, no snapshot) is left out rather
    than recorded empty; ``mlops.datasets`` is always set (empty: the run read none).
    """
    tags = {
        TAG_RUN_ID: facts.run_id,
        TAG_PARAMS_HASH: facts.params_hash,
        TAG_DATASETS: dataset_digests(facts.datasets),
    }
    optional = {
        TAG_NOTEBOOK: facts.notebook,
        TAG_SNAPSHOT: facts.snapshot,
        TAG_GIT_COMMIT: facts.git_commit,
        TAG_ENVIRONMENT_HASH: facts.environment_hash,
    }
    tags.update({k: v for k, v in optional.items() if v})
    return tags


# -- the review gate --------------------------------------------------------------------
@dataclass(frozen=True)
class PromotionPolicy:
    """Which aliases need an approved review, and which also a reproduced run."""

    require_review_for: frozenset[str] = frozenset()
    require_reproduced_for: frozenset[str] = frozenset()
    source: str = "pyproject.toml"

    def gates(self, alias: str) -> bool:
        return alias in self.require_review_for or alias in self.require_reproduced_for


def _alias_list(table: Mapping[str, Any], key: str, source: Path) -> frozenset[str]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(
            f"{source}: [tool.{PYPROJECT_TABLE}] {key} must be a list of alias names, not {value!r}"
        )
    return frozenset(value)


def load_policy(project_root: Path) -> PromotionPolicy:
    """The promotion policy of the project at ``project_root`` (none: every alias is free)."""
    table = load_project_config(project_root)
    source = project_root / "pyproject.toml"
    return PromotionPolicy(
        require_review_for=_alias_list(table, POLICY_REVIEW_KEY, source),
        require_reproduced_for=_alias_list(table, POLICY_REPRODUCED_KEY, source),
        source=str(source),
    )


def approved_review(
    version_tags: Mapping[str, str] | None, run_tags: Mapping[str, str] | None
) -> Review | None:
    """The approved review of the version, else of the run that produced it."""
    for on, tags in (("version", version_tags), ("run", run_tags)):
        if tags and tags.get(TAG_REVIEW_STATE) == REVIEW_APPROVED:
            return Review(tags.get(TAG_REVIEW_ID) or "(no id)", on)
    return None


def is_reproduced(verdict: str | None) -> bool:
    return verdict in REPRODUCED_VERDICTS


def missing_for_promotion(
    policy: PromotionPolicy,
    alias: str,
    review: Review | None,
    verdict: str | None,
    run_id: str | None,
) -> list[str]:
    """What the policy requires for ``alias`` and the version lacks; empty: allowed."""
    missing: list[str] = []
    run = f"run {run_id}" if run_id else "its run"
    if alias in policy.require_review_for and review is None:
        missing.append(
            f"an approved review of the version or of its {run} "
            f"(tag {TAG_REVIEW_STATE}={REVIEW_APPROVED})"
        )
    if alias in policy.require_reproduced_for and not is_reproduced(verdict):
        how = f"`jupyter mlops reproduce {run_id or 'RUN_ID'}`"
        found = f"its verdict is {verdict!r}" if verdict else f"never reproduced: {how}"
        missing.append(f"a reproduced verdict on the run ({found})")
    return missing


def refusal_message(name: str, version: str | None, alias: str, missing: list[str]) -> str:
    what = f"{name} version {version}" if version else f"a new version of {name}"
    return f"the policy refuses to point alias {alias!r} at {what}: it needs " + " and ".join(
        missing
    )


@dataclass(frozen=True)
class Promotion:
    """Who pointed an alias at a version, when, on the strength of which review."""

    alias: str
    version: str
    by: str
    at: str
    review_id: str | None = None
    review_on: str | None = None
    note: str | None = None

    @property
    def tag_key(self) -> str:
        return PROMOTED_PREFIX + self.alias

    def tag_value(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if k != "alias"}, sort_keys=True)

    @classmethod
    def from_tag(cls, key: str, value: str) -> Promotion | None:
        if not key.startswith(PROMOTED_PREFIX):
            return None
        try:
            data = json.loads(value)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        return cls(
            alias=key[len(PROMOTED_PREFIX) :],
            version=str(data.get("version", "")),
            by=str(data.get("by", "")),
            at=str(data.get("at", "")),
            review_id=data.get("review_id"),
            review_on=data.get("review_on"),
            note=data.get("note"),
        )


# -- the lineage chain -------------------------------------------------------------------
@dataclass(frozen=True)
class Lineage:
    """A model version and everything it came from, as recorded."""

    name: str
    version: str
    aliases: tuple[str, ...]
    source: str
    version_tags: Mapping[str, str]
    run: RunFacts | None
    run_problem: str | None = None

    @property
    def promotions(self) -> list[Promotion]:
        found = (Promotion.from_tag(k, v) for k, v in sorted(self.version_tags.items()))
        return [p for p in found if p is not None]

    @property
    def review(self) -> Review | None:
        return approved_review(self.version_tags, self.run.tags if self.run else None)

    def _recorded(self, tag: str, from_run: str | None) -> str | None:
        """The value frozen on the version, else (older versions) what the run says now."""
        return self.version_tags.get(tag) or from_run

    def to_json(self) -> dict[str, Any]:
        run = self.run
        review = self.review
        snapshot = self._recorded(TAG_SNAPSHOT, run.snapshot if run else None)
        digests = self.version_tags.get(TAG_DATASETS)
        recorded_digests = digests.split(",") if digests else []
        datasets = [asdict(d) for d in run.datasets] if run else []
        known = {d["digest"] for d in datasets}
        datasets += [{"name": None, "digest": d} for d in recorded_digests if d not in known]
        return {
            "model": {
                "name": self.name,
                "version": self.version,
                "uri": f"models:/{self.name}/{self.version}",
                "aliases": list(self.aliases),
                "source": self.source,
                "flavor": self.version_tags.get(TAG_FLAVOR),
            },
            "run": {
                "id": self._recorded(TAG_RUN_ID, run.run_id if run else None),
                "experiment": run.experiment if run else None,
                "status": run.status if run else None,
                "problem": self.run_problem,
            },
            "notebook": {
                "path": self._recorded(TAG_NOTEBOOK, run.notebook if run else None),
                "snapshot": snapshot,
                "snapshot_artifact": f"snapshots/{snapshot}.ipynb" if snapshot else None,
            },
            "params": {
                "hash": self._recorded(TAG_PARAMS_HASH, run.params_hash if run else None),
                "values": dict(run.params) if run else None,
            },
            "data": datasets,
            "environment": {
                "hash": self._recorded(TAG_ENVIRONMENT_HASH, run.environment_hash if run else None),
                "git_commit": self._recorded(TAG_GIT_COMMIT, run.git_commit if run else None),
                "git_dirty": run.git_dirty if run else None,
            },
            "review": {"id": review.review_id, "on": review.on} if review else None,
            "reproduced": run.verdict if run else None,
            "promotions": {
                p.alias: {k: v for k, v in asdict(p).items() if k != "alias"}
                for p in self.promotions
            },
        }


def _short(value: str | None, width: int = 12) -> str:
    return value[:width] if value else "not recorded"


def render_lineage(lineage: Lineage) -> str:
    """The chain as indented text, one fact per line."""
    data = lineage.to_json()
    model, run, notebook = data["model"], data["run"], data["notebook"]
    aliases = f" (aliases: {', '.join(model['aliases'])})" if model["aliases"] else ""
    flavor = f", {model['flavor']}" if model["flavor"] else ""
    lines = [f"model        {model['uri']}{aliases}{flavor}", f"  source     {model['source']}"]
    run_line = f"run          {run['id'] or 'not recorded'}"
    if run["experiment"] is not None:
        run_line += f" in experiment {run['experiment']!r}, {run['status']}"
    if run["problem"]:
        run_line += f" ({run['problem']})"
    lines.append(run_line)
    lines.append(f"notebook     {notebook['path'] or 'not recorded'}")
    snapshot = notebook["snapshot"]
    lines.append(
        f"  snapshot   sha256 {snapshot} ({notebook['snapshot_artifact']} in the run)"
        if snapshot
        else "  snapshot   not recorded"
    )
    params = data["params"]
    shown = ""
    if params["values"]:
        items = sorted(params["values"].items())
        shown = ": " + ", ".join(f"{k}={v}" for k, v in items[:8])
        if len(items) > 8:
            shown += f", … ({len(items)} params)"
    elif params["values"] == {}:
        shown = ": none"
    lines.append(f"params       sha256 {_short(params['hash'])}{shown}")
    if data["data"]:
        for item in data["data"]:
            rows = f", {item['rows']} rows" if item.get("rows") is not None else ""
            lines.append(f"data         {item['name'] or '(name unknown)'}: {item['digest']}{rows}")
    else:
        lines.append("data         no dataset inputs recorded")
    env = data["environment"]
    git = env["git_commit"][:12] if env["git_commit"] else "no git commit recorded"
    if env["git_dirty"] == "true":
        git += " (uncommitted changes)"
    lines.append(f"environment  sha256 {_short(env['hash'])} (environment.txt in the run), {git}")
    review = data["review"]
    lines.append(
        f"review       approved, review {review['id']} (on the {review['on']})"
        if review
        else "review       no approved review"
    )
    lines.append(f"reproduced   {data['reproduced'] or 'not checked'}")
    for alias, promotion in data["promotions"].items():
        by_review = f", review {promotion['review_id']}" if promotion.get("review_id") else ""
        lines.append(f"promoted     {alias} by {promotion['by']} at {promotion['at']}{by_review}")
    return "\n".join(lines)
