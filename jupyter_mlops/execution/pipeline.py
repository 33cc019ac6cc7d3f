"""``jupyter mlops pipeline``: run, explain and show an ``mlops.yaml`` of notebook steps.

The whole pipeline is a parent run; each executed step is a child run tagged with its
step name and the parts of its cache key. A step is skipped as cached when its last
FINISHED run has the same key and its declared outputs still exist. A failing step
stops the steps that need it (and only those) and is named in the result.

A step declaring ``outputs: {model: {name, artifact, alias}}`` has the model its notebook
logged registered once it succeeded (a cached step is not registered again); when that
fails, the step fails. The declaration is part of the step's cache key, and a cached step
whose registered version was deleted runs again, as one whose output file is missing does.
An alias the promotion policy gates is refused before anything runs: a run that has just
been made has no review yet.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jupyter_mlops.core.errors import MlopsError, PolicyError, UsageError
from jupyter_mlops.core.pipeline_spec import (
    CacheKey,
    ModelOutput,
    Pipeline,
    file_sha256,
    stale_reasons,
    step_key,
)
from jupyter_mlops.core.settings import TrackingLocation
from jupyter_mlops.execution.runner import (
    TAG_KIND,
    Failure,
    RunPlan,
    RunRequest,
    close_run,
    end_abandoned_run,
    execute_plan,
    kernel_overlay,
    open_run,
    open_run_store,
    plan_run,
    run_heartbeat,
    status_of,
)
from jupyter_mlops.tracking.store import Batch

TAG_PIPELINE = "mlops.pipeline"
TAG_STEP = "mlops.pipeline.step"
TAG_CACHE_KEY = "mlops.cache_key"
TAG_OUTPUTS = "mlops.cache.outputs"
TAG_REGISTERED = "mlops.registered_model"


@dataclass
class StepState:
    """What ``status`` says of a step, and what ``run`` did with it."""

    name: str
    fresh: bool
    reasons: list[str]
    key: CacheKey
    last_run_id: str | None = None
    outcome: str | None = None  # ran | cached | failed | blocked | forced
    run_id: str | None = None
    message: str | None = None
    output_hashes: dict[str, str | None] = field(default_factory=dict)


@dataclass
class PipelineOutcome:
    pipeline: Pipeline
    run_id: str | None
    steps: list[StepState]

    @property
    def failed(self) -> list[StepState]:
        return [s for s in self.steps if s.outcome in ("failed", "blocked")]


def _outputs(pipeline: Pipeline, name: str) -> dict[str, str | None]:
    step = pipeline.steps[name]
    return {str(p.relative_to(pipeline.root)): file_sha256(p) for p in step.outputs}


class PipelineRunner:
    def __init__(self, pipeline: Pipeline, location: TrackingLocation) -> None:
        self.pipeline = pipeline
        self.location = location
        self._store: Any = None
        # The step run open now, for the heartbeat (read in its thread).
        self._step_runs: set[str] = set()
        self._plans: dict[str, RunPlan] = {}

    def store(self) -> Any:
        if self._store is None:
            self._store = open_run_store(self.location)
        return self._store

    def plan(self, name: str) -> RunPlan:
        """The step's notebook checked like ``jupyter mlops run`` checks it (cached)."""
        if name not in self._plans:
            step = self.pipeline.steps[name]
            self._plans[name] = plan_run(
                RunRequest(
                    notebook=step.notebook,
                    params=dict(step.params),
                    experiment=self.pipeline.experiment,
                    run_name=step.name,
                    kernel=step.kernel,
                    cell_timeout=step.cell_timeout,
                ),
                self.location.project_root,
            )
        return self._plans[name]

    def _last_finished(self, name: str) -> Any | None:
        if self.location.store_missing():
            return None
        store = self.store()
        experiment = store.client.get_experiment_by_name(self.pipeline.experiment)
        if experiment is None:
            return None
        runs = store.find_runs(
            [experiment.experiment_id],
            f"tags.`{TAG_PIPELINE}` = '{self.pipeline.name}' and tags.`{TAG_STEP}` = '{name}' "
            "and attributes.status = 'FINISHED'",
            max_results=1,
        )
        return runs[0] if runs else None

    def _state(self, name: str, states: dict[str, StepState]) -> StepState:
        step = self.pipeline.steps[name]
        upstream = {
            need: states[need].key.digest()
            + json.dumps(
                states[need].output_hashes or _outputs(self.pipeline, need), sort_keys=True
            )
            for need in step.needs
        }
        key = step_key(
            self.plan(name).snapshot_sha,
            step.params,
            step.inputs,
            self.pipeline.root,
            upstream,
            step.model,
        )
        last = self._last_finished(name)
        if last is None:
            return StepState(name, False, ["never ran"], key)
        reasons = stale_reasons(key, last.tags)
        missing = [str(p.relative_to(self.pipeline.root)) for p in step.outputs if not p.exists()]
        reasons += [f"output {m} is missing" for m in missing]
        if step.model is not None and not reasons:
            reasons += self._unregistered(step.model, last.run_id)
        for need in step.needs:
            if not states[need].fresh:  # it will run again first: say that, not "changed"
                reasons = [r for r in reasons if r != f"upstream step {need} changed"]
                reasons.append(f"upstream step {need} is stale")
        state = StepState(name, not reasons, reasons, key, last_run_id=last.run_id)
        state.output_hashes = _outputs(self.pipeline, name)
        return state

    def _unregistered(self, model: ModelOutput, run_id: str) -> list[str]:
        """A cached step's model, like its files, must still exist: a version deleted from
        the registry is registered again by running the step again."""
        if self.store().model_versions(name=model.name, run_id=run_id):
            return []
        return [f"model {model.name} has no version from its last run {run_id}"]

    def status(self) -> list[StepState]:
        """Fresh or stale, and why, for every step (nothing is run)."""
        states: dict[str, StepState] = {}
        for name in self.pipeline.order():
            states[name] = self._state(name, states)
        return [states[n] for n in self.pipeline.order()]

    def run(
        self,
        force: list[str] | None = None,
        dry_run: bool = False,
        on_step: Callable[[StepState], None] | None = None,
    ) -> PipelineOutcome:
        forced = set(force or [])
        unknown = forced - set(self.pipeline.steps)
        if unknown:
            raise UsageError(
                f"--force: no step named {', '.join(sorted(unknown))} in {self.pipeline.path}"
            )
        for name in self.pipeline.order():
            self.plan(name)  # every notebook checked before anything runs
        self._check_model_aliases()
        report = on_step or (lambda _s: None)
        states: dict[str, StepState] = {}
        blocked: dict[str, str] = {}
        parent_id: str | None = None
        heartbeat = None
        if not dry_run:
            parent_id = self._open_parent()
            alive = (parent_id,)
            heartbeat = run_heartbeat(self.store(), lambda: (*alive, *tuple(self._step_runs)))
        failed_any = False
        try:
            for name in self.pipeline.order():
                state = self._state(name, states)
                states[name] = state
                if name in blocked:
                    state.outcome, state.message = (
                        "blocked",
                        f"not run: step {blocked[name]} failed",
                    )
                    report(state)
                    continue
                if state.fresh and name not in forced:
                    state.outcome, state.run_id = "cached", state.last_run_id
                    report(state)
                    continue
                if dry_run:
                    state.outcome = "would run"
                    state.message = "forced" if name in forced else "; ".join(state.reasons)
                    state.fresh = False
                    report(state)
                    continue
                self._run_step(name, state, parent_id)
                report(state)
                if state.outcome == "failed":
                    failed_any = True
                    for dependant in self.pipeline.dependants(name):
                        blocked.setdefault(dependant, name)
        except BaseException:
            if parent_id is not None:
                self.store().end_run(parent_id, "KILLED")
            raise
        finally:
            if heartbeat is not None:
                heartbeat.stop()
        if parent_id is not None:
            summary = {
                n: {"outcome": s.outcome, "run_id": s.run_id, "message": s.message}
                for n, s in states.items()
            }
            store = self.store()
            store.put_artifact(parent_id, "steps.json", json.dumps(summary, indent=1).encode())
            store.end_run(parent_id, "FAILED" if failed_any else "FINISHED")
        return PipelineOutcome(self.pipeline, parent_id, [states[n] for n in self.pipeline.order()])

    def _check_model_aliases(self) -> None:
        """Refuse now an alias no fresh step run can get: the policy wants a review first."""
        from jupyter_mlops.core.lineage import load_policy

        policy = load_policy(self.pipeline.root)
        gated = [
            f"step {name}: alias {step.model.alias!r} of {step.model.name}"
            for name, step in self.pipeline.steps.items()
            if step.model and step.model.alias and policy.gates(step.model.alias)
        ]
        if gated:
            raise PolicyError(
                f"{self.pipeline.path}: {'; '.join(gated)}: the policy in {policy.source} "
                "requires an approved review (and maybe a reproduced run) first; register "
                "without the alias and use `jupyter mlops promote` after the review"
            )

    def _register(self, name: str, run_id: str) -> tuple[str | None, str | None]:
        """``(message, None)`` once the step's model is registered, else ``(None, error)``."""
        from jupyter_mlops.tracking.registry import register_version

        model = self.pipeline.steps[name].model
        if model is None:
            return None, None
        try:
            registered = register_version(
                self.store(), run_id, model.artifact, model.name, alias=model.alias
            )
        except MlopsError as error:
            return None, f"step {name} did not register its model {model.name}: {error}"
        self.store().log_batch(
            run_id, Batch(tags={TAG_REGISTERED: f"{registered.name}/{registered.version}"})
        )
        alias = f" as {registered.alias}" if registered.alias else ""
        return f"registered {registered.uri}{alias}", None

    def _open_parent(self) -> str:
        from jupyter_mlops.tracking.environment import run_tags

        store = self.store()
        tags = {
            **run_tags(None, None),
            TAG_KIND: "pipeline",
            TAG_PIPELINE: self.pipeline.name,
            "mlops.pipeline.file": str(self.pipeline.path),
        }
        handle = store.start_run(self.pipeline.experiment, f"pipeline-{self.pipeline.name}", tags)
        try:
            store.put_artifact(handle.run_id, "mlops.yaml", self.pipeline.path.read_bytes())
        except BaseException as error:
            end_abandoned_run(store, handle.run_id, error)
            raise
        return str(handle.run_id)

    def _run_step(self, name: str, state: StepState, parent_id: str | None) -> None:
        from dataclasses import replace

        store = self.store()
        base = self.plan(name)
        plan = replace(
            base,
            request=replace(
                base.request,
                parent_run_id=parent_id,
                tags={TAG_PIPELINE: self.pipeline.name, TAG_STEP: name, **state.key.parts()},
            ),
        )
        run_id = open_run(plan, store)
        self._step_runs.add(run_id)
        try:
            failure, registered = self._execute_step(name, plan, run_id, state)
        except BaseException:
            close_run(store, run_id, plan, "KILLED", Failure("interrupted", "interrupted"))
            raise
        finally:
            self._step_runs.discard(run_id)
        close_run(store, run_id, plan, status_of(failure), failure)
        state.run_id = run_id
        if failure is None:
            state.outcome, state.fresh, state.reasons = "ran", True, []
            state.message = registered
        else:
            state.outcome, state.message = "failed", f"step {name}: {failure.message}"

    def _execute_step(
        self, name: str, plan: RunPlan, run_id: str, state: StepState
    ) -> tuple[Failure | None, str | None]:
        """Execute the step into its open run, check its outputs, register its model.

        Returns how it failed (None when it did not) and the registration's message. The
        run's outputs and cache key are tagged; the caller ends the run.
        """
        failure = execute_plan(plan, kernel_overlay(plan, run_id, self.location.uri))
        step = self.pipeline.steps[name]
        if failure is None:
            missing = [
                str(p.relative_to(self.pipeline.root)) for p in step.outputs if not p.exists()
            ]
            if missing:
                failure = Failure(
                    "outputs", f"step {name} did not write its declared output {', '.join(missing)}"
                )
        registered: str | None = None
        if failure is None:
            registered, problem = self._register(name, run_id)
            if problem is not None:
                failure = Failure("register", problem)
        state.output_hashes = _outputs(self.pipeline, name)
        tags = {TAG_OUTPUTS: json.dumps(state.output_hashes, sort_keys=True)}
        if failure is None:
            tags[TAG_CACHE_KEY] = state.key.digest()
        self.store().log_batch(run_id, Batch(tags=tags))
        return failure, registered


def show(pipeline: Pipeline) -> str:
    """The DAG as text: each step with what it needs and what it feeds."""
    lines = [f"pipeline {pipeline.name} ({pipeline.path})"]
    for name in pipeline.order():
        step = pipeline.steps[name]
        needs = f" <- {', '.join(step.needs)}" if step.needs else ""
        lines.append(f"  {name}{needs}")
        lines.append(f"      notebook: {step.notebook.relative_to(pipeline.root)}")
        if step.params:
            lines.append(f"      params:   {json.dumps(step.params, default=str)}")
        for label, paths in (("inputs", step.inputs), ("outputs", step.outputs)):
            if paths:
                names = ", ".join(str(p.relative_to(pipeline.root)) for p in paths)
                lines.append(f"      {label + ':':<10}{names}")
        if step.model:
            alias = f" as {step.model.alias}" if step.model.alias else ""
            lines.append(f"      {'model:':<10}{step.model.artifact} -> {step.model.name}{alias}")
    return "\n".join(lines)
