"""``mlops.yaml``: a pipeline of notebook steps, read and checked without running anything.

::

    name: churn                 # optional; default: the folder's name
    experiment: churn-pipeline  # optional; default: the name
    steps:
      prepare:
        notebook: notebooks/prepare.ipynb
        params: {rows: 500}
        inputs: [data/raw.csv]
        outputs: [data/clean.csv]
      train:
        notebook: notebooks/train.ipynb
        needs: [prepare]
        inputs: [data/clean.csv]
        outputs:                # files, and a model to register once the step succeeded
          files: [reports/train.html]
          model: {name: churn-clf, artifact: model, alias: staging}

``outputs`` is a list of files, or a mapping with ``files`` and ``model``: the notebook
logs its model into its run (``jupyter_mlops.log_model(model, "model")``) and the
pipeline registers the run's ``artifact`` as a new version of ``name`` (``alias``
optional, under the project's promotion policy; see docs/registry.md).

Paths are relative to the file's folder and must stay inside the project: a pipeline
never reads or writes outside it. A step's cache key covers everything its result
depends on: the notebook's content, its params, the hashes of its input files and the
keys and output hashes of the steps it needs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jupyter_mlops.core.errors import ConfigError, ForbiddenPathError, NotFoundError
from jupyter_mlops.core.parameters import canonical_params, check_name, load_yaml

STEP_KEYS = {"notebook", "params", "inputs", "outputs", "needs", "kernel", "cell_timeout"}
TOP_KEYS = {"name", "experiment", "steps"}


MODEL_KEYS = {"name", "artifact", "alias"}
OUTPUT_KEYS = {"files", "model"}


@dataclass(frozen=True)
class ModelOutput:
    """A model a step logs into its run, registered by the pipeline after the step succeeded."""

    name: str
    artifact: str
    alias: str | None = None


@dataclass(frozen=True)
class Step:
    name: str
    notebook: Path
    params: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[Path, ...] = ()
    outputs: tuple[Path, ...] = ()
    needs: tuple[str, ...] = ()
    kernel: str | None = None
    cell_timeout: float | None = None
    model: ModelOutput | None = None


@dataclass(frozen=True)
class Pipeline:
    name: str
    experiment: str
    path: Path
    root: Path
    steps: dict[str, Step]

    def order(self) -> list[str]:
        """Steps in an order where every step comes after the steps it needs (stable)."""
        placed: list[str] = []
        remaining = list(self.steps)
        while remaining:
            ready = [s for s in remaining if all(n in placed for n in self.steps[s].needs)]
            if not ready:
                raise ConfigError(
                    f"{self.path}: the steps {', '.join(remaining)} need each other (a cycle)"
                )
            placed += ready
            remaining = [s for s in remaining if s not in ready]
        return placed

    def dependants(self, name: str) -> set[str]:
        """Every step that needs ``name``, directly or through others."""
        found: set[str] = set()
        frontier = {name}
        while frontier:
            frontier = {s for s, step in self.steps.items() if set(step.needs) & frontier} - found
            found |= frontier
        return found


def _inside(root: Path, base: Path, value: Any, what: str, source: Path) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{source}: {what} must be a path string, not {value!r}")
    path = (base / value).resolve()
    if not path.is_relative_to(root):
        raise ForbiddenPathError(f"{source}: {what} {value!r} is outside the project {root}")
    return path


def _paths(root: Path, base: Path, value: Any, what: str, source: Path) -> tuple[Path, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"{source}: {what} must be a list of paths")
    return tuple(_inside(root, base, v, what, source) for v in value)


def _text(value: Any, what: str, source: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{source}: {what} must be a non-empty string, not {value!r}")
    return value.strip()


def _model_output(value: Any, step: str, source: Path) -> ModelOutput:
    what = f"outputs.model of step {step!r}"
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {what} must be a mapping with name: and artifact:")
    bad = set(value) - MODEL_KEYS
    if bad:
        raise ConfigError(f"{source}: {what} has unknown keys {', '.join(sorted(bad))}")
    artifact = _text(value.get("artifact"), f"{what}: artifact", source)
    if artifact.startswith("/") or ".." in artifact.split("/"):
        raise ConfigError(f"{source}: {what}: artifact {artifact!r} must be a path inside the run")
    alias = value.get("alias")
    return ModelOutput(
        name=_text(value.get("name"), f"{what}: name", source),
        artifact=artifact.strip("/"),
        alias=_text(alias, f"{what}: alias", source) if alias is not None else None,
    )


def _step_outputs(
    root: Path, base: Path, value: Any, step: str, source: Path
) -> tuple[tuple[Path, ...], ModelOutput | None]:
    """A list of files, or ``{files: [...], model: {name, artifact, alias}}``."""
    what = f"outputs of step {step!r}"
    if not isinstance(value, dict):
        return _paths(root, base, value, what, source), None
    bad = set(value) - OUTPUT_KEYS
    if bad:
        raise ConfigError(
            f"{source}: {what} has unknown keys {', '.join(sorted(bad))} (use files:, model:)"
        )
    model = value.get("model")
    return (
        _paths(root, base, value.get("files"), what, source),
        _model_output(model, step, source) if model is not None else None,
    )


def parse_pipeline(data: Any, path: Path, project_root: Path) -> Pipeline:
    """Check a loaded ``mlops.yaml`` and resolve its paths."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'steps:'")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ConfigError(
            f"{path}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(sorted(unknown))}"
        )
    raw_steps = data.get("steps")
    if isinstance(raw_steps, list):
        listed: dict[str, Any] = {}
        for item in raw_steps:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise ConfigError(f"{path}: each step in a list needs a 'name:'")
            listed[item["name"]] = {k: v for k, v in item.items() if k != "name"}
        raw_steps = listed
    if not isinstance(raw_steps, dict) or not raw_steps:
        raise ConfigError(f"{path}: 'steps' must name at least one step")
    base = path.parent.resolve()
    root = project_root.resolve()
    steps: dict[str, Step] = {}
    for name, spec in raw_steps.items():
        if not isinstance(name, str) or not name.replace("-", "_").isidentifier():
            raise ConfigError(f"{path}: step name {name!r} must be letters, digits, - and _")
        if not isinstance(spec, dict):
            raise ConfigError(f"{path}: step {name!r} must be a mapping")
        bad = set(spec) - STEP_KEYS
        if bad:
            plural = "s" if len(bad) > 1 else ""
            raise ConfigError(
                f"{path}: step {name!r} has unknown key{plural} {', '.join(sorted(bad))}"
            )
        if "notebook" not in spec:
            raise ConfigError(f"{path}: step {name!r} has no 'notebook:'")
        params = spec.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{path}: params of step {name!r} must be a mapping")
        for param in params:
            check_name(str(param))
        needs = spec.get("needs") or []
        if isinstance(needs, str):
            needs = [needs]
        if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
            raise ConfigError(f"{path}: needs of step {name!r} must be a list of step names")
        timeout = spec.get("cell_timeout")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise ConfigError(f"{path}: cell_timeout of step {name!r} must be a positive number")
        outputs, model = _step_outputs(root, base, spec.get("outputs"), name, path)
        steps[name] = Step(
            name=name,
            notebook=_inside(root, base, spec["notebook"], f"notebook of step {name!r}", path),
            params=dict(params),
            inputs=_paths(root, base, spec.get("inputs"), f"inputs of step {name!r}", path),
            outputs=outputs,
            needs=tuple(needs),
            kernel=spec.get("kernel"),
            cell_timeout=float(timeout) if timeout is not None else None,
            model=model,
        )
    for step in steps.values():
        missing = [n for n in step.needs if n not in steps]
        if missing:
            raise ConfigError(f"{path}: step {step.name!r} needs unknown step {', '.join(missing)}")
    name = data.get("name") or base.name
    if not isinstance(name, str) or not re.fullmatch(r"[\w.\- ]+", name):
        raise ConfigError(f"{path}: 'name' must be letters, digits, spaces, '.', '-' and '_'")
    experiment = data.get("experiment") or name
    pipeline = Pipeline(name, str(experiment), path.resolve(), root, steps)
    pipeline.order()  # refuses cycles now, not halfway through a run
    return pipeline


def load_pipeline(path: Path, project_root: Path) -> Pipeline:
    if not path.is_file():
        raise NotFoundError(f"pipeline file {path} does not exist")
    data = load_yaml(path.read_text(encoding="utf-8"), str(path))
    return parse_pipeline(data, path, project_root)


# -- cache keys --------------------------------------------------------------------------
def file_sha256(path: Path) -> str | None:
    """The file's SHA-256, or None when it does not exist."""
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class CacheKey:
    """What a step's result depends on, part by part, so staleness can say which changed."""

    notebook: str
    params: str
    inputs: Mapping[str, str | None]
    upstream: Mapping[str, str]
    #: The step's ``outputs.model`` as JSON; empty for a step without one, whose key (and
    #: so whose cache) stays what it was before models were part of it.
    model: str = ""

    def parts(self) -> dict[str, str]:
        """The tags recorded on a step's run."""
        parts = {
            "mlops.cache.notebook": self.notebook,
            "mlops.cache.params": hashlib.sha256(self.params.encode()).hexdigest(),
            "mlops.cache.inputs": json.dumps(dict(self.inputs), sort_keys=True),
            "mlops.cache.upstream": json.dumps(dict(self.upstream), sort_keys=True),
        }
        if self.model:
            parts["mlops.cache.model"] = self.model
        return parts

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.parts(), sort_keys=True).encode()).hexdigest()


def step_key(
    notebook_sha: str,
    params: Mapping[str, Any],
    inputs: tuple[Path, ...],
    root: Path,
    upstream: Mapping[str, str],
    model: ModelOutput | None = None,
) -> CacheKey:
    return CacheKey(
        notebook=notebook_sha,
        params=canonical_params(params),
        inputs={str(p.relative_to(root)): file_sha256(p) for p in inputs},
        upstream=dict(upstream),
        model=json.dumps(asdict(model), sort_keys=True) if model is not None else "",
    )


def stale_reasons(current: CacheKey, recorded: Mapping[str, str]) -> list[str]:
    """Why a step's last finished run no longer matches; empty when it does."""
    now = current.parts()
    reasons = []
    if recorded.get("mlops.cache.notebook") != now["mlops.cache.notebook"]:
        reasons.append("the notebook changed")
    if recorded.get("mlops.cache.params") != now["mlops.cache.params"]:
        reasons.append("its params changed")
    before_inputs = json.loads(recorded.get("mlops.cache.inputs") or "{}")
    for name, sha in current.inputs.items():
        if sha is None:
            reasons.append(f"input {name} is missing")
        elif before_inputs.get(name) != sha:
            reasons.append(f"input {name} changed")
    before_up = json.loads(recorded.get("mlops.cache.upstream") or "{}")
    for name, key in current.upstream.items():
        if before_up.get(name) != key:
            reasons.append(f"upstream step {name} changed")
    if recorded.get("mlops.cache.model", "") != current.model:
        reasons.append("its outputs.model changed")
    return reasons
