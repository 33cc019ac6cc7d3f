"""Models into runs and into the Model Registry, through ``MlflowClient``.

The order of every registration is what keeps the store consistent: the name, the alias
and the promotion policy are checked first, then the model is saved to a temporary folder
and uploaded as an artifact of the run, and only then is a model version created. A
failure before the upload leaves nothing behind; a failed upload creates no version; a
failed registration after the upload says where the logged model is and the command that
registers it. MLflow itself would happily create a version whose source does not exist,
so the artifact is looked up before a version points at it.

Requirements are given to MLflow explicitly, pinned to what this environment has
installed: MLflow's own inference imports the model in a subprocess and takes about 10 s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from jupyter_mlops.core.errors import MlopsError, NotFoundError, PolicyError, UsageError
from jupyter_mlops.core.lineage import (
    RUN_TAG_ENVIRONMENT_HASH,
    RUN_TAG_GIT_COMMIT,
    RUN_TAG_GIT_DIRTY,
    TAG_ARTIFACT,
    TAG_FLAVOR,
    TAG_NOTEBOOK,
    TAG_REPRODUCED,
    DatasetFact,
    Lineage,
    ModelRef,
    Promotion,
    PromotionPolicy,
    RunFacts,
    approved_review,
    missing_for_promotion,
    refusal_message,
    version_tags,
)
from jupyter_mlops.core.registration import describe, detect_flavor
from jupyter_mlops.core.session import TAG_SNAPSHOT
from jupyter_mlops.execution.runner import TAG_INPUT_NOTEBOOK, TAG_INPUT_SNAPSHOT
from jupyter_mlops.tracking.mlflow_store import MlflowRunStore, one_line

MLMODEL = "MLmodel"
MODELS_FOLDER = "models"
#: Distributions a saved model needs, by flavour (MLflow adds ``mlflow`` itself).
BASE_REQUIREMENTS = {
    "sklearn": ("scikit-learn", "numpy", "scipy"),
    "pyfunc": ("cloudpickle", "numpy", "pandas"),
}


@dataclass(frozen=True)
class LoggedModel:
    """A model saved as artifacts of a run, ready to be registered."""

    run_id: str
    artifact_path: str
    flavor: str
    messages: tuple[str, ...] = ()


@dataclass(frozen=True)
class Registered:
    """A new model version, and the alias pointed at it if one was asked for."""

    name: str
    version: str
    run_id: str
    artifact_path: str
    source: str
    alias: str | None = None
    messages: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def summary(self) -> str:
        alias = f", alias {self.alias!r} points at it" if self.alias else ""
        return (
            f"registered {self.name} version {self.version} ({self.uri}) from run "
            f"{self.run_id}, artifact {self.artifact_path}{alias}"
        )


# -- checks before anything is written ----------------------------------------------------
def check_model_name(store: MlflowRunStore, name: str) -> None:
    """MLflow's own rule for registered model names, applied before anything is logged."""
    from mlflow.utils.validation import _validate_model_name

    store._call(f"model name {name!r}", lambda: _validate_model_name(name))


def check_alias(store: MlflowRunStore, alias: str) -> None:
    from mlflow.utils.validation import (
        _validate_model_alias_name,
        _validate_model_alias_name_reserved,
    )

    def check() -> None:
        _validate_model_alias_name(alias)  # type: ignore[no-untyped-call]
        _validate_model_alias_name_reserved(alias)  # type: ignore[no-untyped-call]

    store._call(f"alias {alias!r}", check)


def _check_artifact_path(path: str) -> str:
    cleaned = path.strip().strip("/")
    if not cleaned or ".." in Path(cleaned).parts or Path(path.strip()).is_absolute():
        raise UsageError(f"artifact path {path!r} must be a relative path inside the run")
    return cleaned


def _get_run(store: MlflowRunStore, run_id: str) -> Any:
    return store._call(f"reading run {run_id}", lambda: store.client.get_run(run_id))


def _gate(
    policy: PromotionPolicy | None,
    alias: str,
    name: str,
    version: str | None,
    version_tags: Mapping[str, str] | None,
    run_id: str | None,
    run_tags: Mapping[str, str] | None,
) -> Promotion:
    """The promotion record if the policy allows it, else ``PolicyError`` naming what is missing."""
    from jupyter_mlops.tracking.environment import current_user

    review = approved_review(version_tags, run_tags)
    verdict = (run_tags or {}).get(TAG_REPRODUCED)
    if policy is not None and policy.gates(alias):
        missing = missing_for_promotion(policy, alias, review, verdict, run_id)
        if missing:
            error = PolicyError(refusal_message(name, version, alias, missing))
            error.hint = f"policy in {policy.source}"
            raise error
    return Promotion(
        alias=alias,
        version=version or "",
        by=current_user(),
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        review_id=review.review_id if review else None,
        review_on=review.on if review else None,
    )


# -- saving a model -------------------------------------------------------------------
def _pinned(distribution: str) -> str | None:
    try:
        return f"{distribution}=={metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return None


def requirements_for(flavor: str, obj: Any, serialization: str | None = None) -> list[str]:
    """Pinned pip requirements of a saved model, from the installed distributions."""
    names = list(BASE_REQUIREMENTS[flavor])
    if serialization == "skops":
        names.append("skops")
    elif serialization == "cloudpickle" and "cloudpickle" not in names:
        names.append("cloudpickle")
    top = type(obj).__module__.split(".")[0]
    if flavor == "pyfunc" and top not in ("__main__", "builtins"):
        names += metadata.packages_distributions().get(top, [])
    pinned = (_pinned(n) for n in dict.fromkeys(names))
    return [p for p in pinned if p]


def _check_fitted(obj: Any) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(obj)
    except NotFittedError:
        raise UsageError(
            f"{describe(obj)} is not fitted: call its fit() before registering it"
        ) from None
    except TypeError as error:  # check_is_fitted refuses some meta-estimators outright
        raise UsageError(f"{describe(obj)} cannot be registered: {error}") from None


def _signature(obj: Any, example: Any, messages: list[str]) -> Any:
    from mlflow.models import infer_signature

    try:
        return infer_signature(example, obj.predict(example))
    except Exception as error:
        messages.append(
            f"no signature: predict() on the input example failed ({type(error).__name__}: "
            f"{one_line(str(error), 120)})"
        )
        return None


def _pyfunc_wrapper(obj: Any) -> Any:
    """A ``PythonModel`` calling ``obj.predict``, its class defined here so that cloudpickle
    stores it by value: loading the model does not need jupyter-mlops installed."""
    import mlflow.pyfunc

    class PredictWrapper(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
        def __init__(self, model: Any) -> None:
            self.model = model

        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return self.model.predict(model_input)

    return PredictWrapper(obj)


@contextlib.contextmanager
def _mlflow_quiet() -> Iterator[None]:
    """MLflow's INFO and WARNING lines while saving (validating the example, pickling) are
    noise under a notebook cell; what matters comes back as our own messages."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def save_model(
    obj: Any, flavor: str, folder: Path, input_example: Any = None
) -> tuple[str | None, list[str]]:
    """Save ``obj`` as an MLflow model in ``folder``; returns its serialization and notes."""
    import mlflow  # noqa: F401  (importing it sets its loggers' levels: do that before quieting)

    with _mlflow_quiet():
        return _save_model(obj, flavor, folder, input_example)


def _save_model(
    obj: Any, flavor: str, folder: Path, input_example: Any
) -> tuple[str | None, list[str]]:
    messages: list[str] = []
    signature = _signature(obj, input_example, messages) if input_example is not None else None
    example = input_example if signature is not None else None
    if flavor == "sklearn":
        import mlflow.sklearn
        from mlflow.exceptions import MlflowException

        try:
            mlflow.sklearn.save_model(
                obj,
                str(folder),
                serialization_format="skops",
                signature=signature,
                input_example=example,
                pip_requirements=requirements_for(flavor, obj, "skops"),
            )
            return "skops", messages
        except MlflowException as error:
            if "trusted" not in str(error).lower():
                raise
            # A type skops does not trust (custom code in the pipeline): cloudpickle can.
            messages.append("saved with cloudpickle: skops does not trust a type in this model")
            shutil.rmtree(folder, ignore_errors=True)
        mlflow.sklearn.save_model(
            obj,
            str(folder),
            serialization_format="cloudpickle",
            signature=signature,
            input_example=example,
            pip_requirements=requirements_for(flavor, obj, "cloudpickle"),
        )
        return "cloudpickle", messages
    import mlflow.pyfunc

    messages.append(
        f"{describe(obj)} is saved with cloudpickle: loading it runs pickled code, so load "
        "only models from a registry you trust"
    )
    mlflow.pyfunc.save_model(
        str(folder),
        python_model=_pyfunc_wrapper(obj),
        signature=signature,
        input_example=example,
        pip_requirements=requirements_for(flavor, obj),
    )
    return "cloudpickle", messages


def run_files(store: MlflowRunStore, run: Any, path: str | None) -> list[Any]:
    """``FileInfo`` of what is directly under ``path`` in the run's own artifacts."""
    return store.artifact_infos(run.info.run_id, path, run.info.artifact_uri)


def _free_path(store: MlflowRunStore, run: Any, base: str) -> str:
    taken = {info.path for info in run_files(store, run, MODELS_FOLDER)}
    path, number = base, 1
    while path in taken:
        number += 1
        path = f"{base}-{number}"
    return path


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:80] or "model"


def log_model(
    store: MlflowRunStore,
    run_id: str,
    obj: Any,
    *,
    flavor: str = "auto",
    artifact_path: str | None = None,
    name_hint: str = "model",
    input_example: Any = None,
) -> LoggedModel:
    """Save ``obj`` and upload it as artifacts of the run, without registering it.

    ``artifact_path`` must be free in the run (a version may point at what is there);
    without it the model goes to ``models/<name>``, numbered when that is taken.
    """
    chosen = detect_flavor(obj, flavor)
    if chosen == "sklearn":
        _check_fitted(obj)
    run = _get_run(store, run_id)
    if artifact_path is None:
        path = _free_path(store, run, f"{MODELS_FOLDER}/{_slug(name_hint)}")
    else:
        path = _check_artifact_path(artifact_path)
        if run_files(store, run, path):
            raise UsageError(
                f"run {run_id} already has artifacts at {path!r}; choose another artifact path"
            )
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        folder = Path(tmp) / "model"
        try:
            _serialization, messages = save_model(obj, chosen, folder, input_example)
        except Exception as error:
            raise UsageError(
                f"cannot save {describe(obj)} as an MLflow {chosen} model: "
                f"{type(error).__name__}: {one_line(str(error), 200)}"
            ) from None
        store._call(
            f"uploading the model to run {run_id} at {path}",
            lambda: store.client.log_artifacts(run_id, str(folder), path),
        )
    return LoggedModel(run_id, path, chosen, tuple(messages))


# -- reading runs and versions -------------------------------------------------------------
def run_facts(store: MlflowRunStore, run: Any) -> RunFacts:
    """The lineage facts of an MLflow ``Run``."""
    tags = dict(run.data.tags)
    experiment = store._call(
        "reading experiment", lambda: store.client.get_experiment(run.info.experiment_id)
    )
    datasets = []
    for item in run.inputs.dataset_inputs if run.inputs else []:
        rows = None
        with contextlib.suppress(TypeError, ValueError):
            rows = int(json.loads(item.dataset.profile or "{}").get("num_rows"))
        context = next((t.value for t in item.tags if t.key == "mlflow.data.context"), None)
        datasets.append(DatasetFact(item.dataset.name, item.dataset.digest, rows, context))
    return RunFacts(
        run_id=run.info.run_id,
        experiment=experiment.name,
        status=str(run.info.status),
        notebook=tags.get(TAG_INPUT_NOTEBOOK) or tags.get(TAG_NOTEBOOK),
        snapshot=tags.get(TAG_INPUT_SNAPSHOT) or tags.get(TAG_SNAPSHOT),
        params=dict(run.data.params),
        git_commit=tags.get(RUN_TAG_GIT_COMMIT),
        git_dirty=tags.get(RUN_TAG_GIT_DIRTY),
        environment_hash=tags.get(RUN_TAG_ENVIRONMENT_HASH),
        datasets=tuple(datasets),
        tags=tags,
    )


def model_source(store: MlflowRunStore, run: Any, artifact_path: str) -> tuple[str, str | None]:
    """``(source, logged model id)`` of the model at ``artifact_path`` of the run.

    A model our ``log_model`` wrote is a folder of the run's artifacts holding an MLmodel
    file; one written by MLflow 3's own ``mlflow.<flavor>.log_model(name=...)`` is a logged
    model of the run with that name.
    """
    run_id = run.info.run_id
    path = _check_artifact_path(artifact_path)
    files = run_files(store, run, path)
    if f"{path}/{MLMODEL}" in {f.path for f in files}:
        return f"{run.info.artifact_uri.rstrip('/')}/{path}", None
    found = store._call(
        f"searching the logged models of run {run_id}",
        lambda: store.client.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run_id}' AND name = '{path}'",
        ),
    )
    if found:
        # Its storage location, not ``models:/<id>``: MLflow resolves that one through the
        # global tracking URI, which need not be this store's.
        return str(found[0].artifact_location), str(found[0].model_id)
    models = _model_folders(store, run)
    hint = f"its models: {', '.join(models)}" if models else "it has no logged model"
    what = "files but no MLmodel" if files else "nothing"
    raise NotFoundError(f"run {run_id} has {what} at artifact path {path!r} ({hint})")


def _model_folders(store: MlflowRunStore, run: Any, folder: str | None = None) -> list[str]:
    """Artifact folders of the run holding an MLmodel (two levels deep: ``models/x``)."""
    found = []
    for info in run_files(store, run, folder):
        if info.path.endswith(f"/{MLMODEL}") and folder:
            found.append(folder)
        elif info.is_dir and (folder is None or folder.count("/") < 1):
            found += _model_folders(store, run, info.path)
    return found


def _ensure_registered_model(store: MlflowRunStore, name: str) -> bool:
    """Create the registered model if needed; True when this call created it."""
    from mlflow.exceptions import MlflowException

    def create() -> bool:
        try:
            store.client.create_registered_model(name)
            return True
        except MlflowException as error:
            if error.error_code in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                return False
            raise

    return store._call(f"creating registered model {name!r}", create)


def register_version(
    store: MlflowRunStore,
    run_id: str,
    artifact_path: str,
    name: str,
    *,
    alias: str | None = None,
    policy: PromotionPolicy | None = None,
    flavor: str | None = None,
) -> Registered:
    """A new version of ``name`` from the model at ``artifact_path`` of the run.

    The version carries the run's lineage as tags. With ``alias``, the policy is checked
    against the run's review and verdict before anything is created.
    """
    check_model_name(store, name)
    if alias:
        check_alias(store, alias)
    run = _get_run(store, run_id)
    facts = run_facts(store, run)
    promotion = _gate(policy, alias, name, None, None, run_id, facts.tags) if alias else None
    source, model_id = model_source(store, run, artifact_path)
    tags = {**version_tags(facts), TAG_ARTIFACT: artifact_path}
    if flavor:
        tags[TAG_FLAVOR] = flavor
    created = _ensure_registered_model(store, name)
    try:
        version = store._call(
            f"registering a version of {name!r}",
            lambda: store.client.create_model_version(
                name, source, run_id=run_id, tags=tags, model_id=model_id
            ),
        )
    except Exception:
        if created:  # leave no empty registered model behind
            _best_effort(lambda: _delete_if_empty(store, name))
        raise
    number = str(version.version)
    if promotion is not None and alias:
        try:
            _point_alias(store, name, number, alias, promotion)
        except MlopsError as error:
            error.message = f"registered {name} version {number}, but {error.message}"
            _add_hint(error, f"retry with: jupyter mlops promote {name} {number} --alias {alias}")
            raise
    return Registered(name, number, run_id, artifact_path, source, alias=alias)


def _add_hint(error: MlopsError, hint: str) -> None:
    error.hint = f"{error.hint}; {hint}" if error.hint else hint


def _delete_if_empty(store: MlflowRunStore, name: str) -> None:
    """Delete the registered model this call created, unless another process (a batch
    point registering the same name) has added a version to it meanwhile: deleting a
    registered model deletes its versions."""
    if not store.model_versions(name=name):
        store.client.delete_registered_model(name)


def _best_effort(action: Callable[[], Any]) -> None:
    """A clean-up after a failure: the failure being reported matters more than its own."""
    with contextlib.suppress(Exception):
        action()


def _point_alias(
    store: MlflowRunStore, name: str, version: str, alias: str, promotion: Promotion
) -> None:
    """Record the promotion on the version, then move the alias (the record goes if it fails)."""
    record = Promotion(
        alias,
        version,
        promotion.by,
        promotion.at,
        promotion.review_id,
        promotion.review_on,
        promotion.note,
    )
    store._call(
        f"recording the promotion of {name} version {version}",
        lambda: store.client.set_model_version_tag(
            name, version, record.tag_key, record.tag_value()
        ),
    )
    try:
        store._call(
            f"pointing alias {alias!r} at {name} version {version}",
            lambda: store.client.set_registered_model_alias(name, alias, version),
        )
    except Exception:
        _best_effort(lambda: store.client.delete_model_version_tag(name, version, record.tag_key))
        raise


def register_object(
    store: MlflowRunStore,
    run_id: str,
    obj: Any,
    name: str,
    *,
    alias: str | None = None,
    flavor: str = "auto",
    input_example: Any = None,
    artifact_path: str | None = None,
    policy: PromotionPolicy | None = None,
) -> Registered:
    """Log ``obj`` into the run and register it: checks, upload, version, alias."""
    detect_flavor(obj, flavor)  # refuse a non-model before anything else
    check_model_name(store, name)
    if alias:
        check_alias(store, alias)
        run = _get_run(store, run_id)
        _gate(policy, alias, name, None, None, run_id, dict(run.data.tags))
    logged = log_model(
        store,
        run_id,
        obj,
        flavor=flavor,
        artifact_path=artifact_path,
        name_hint=name,
        input_example=input_example,
    )
    try:
        registered = register_version(
            store,
            run_id,
            logged.artifact_path,
            name,
            alias=alias,
            policy=policy,
            flavor=logged.flavor,
        )
    except MlopsError as error:
        if not error.message.startswith("registered "):  # the version exists: said already
            _add_hint(
                error,
                f"the model is logged in run {run_id} at {logged.artifact_path!r}; once "
                f"fixed, register it with: jupyter mlops register {run_id} --artifact "
                f"{logged.artifact_path} --name {name}",
            )
        raise
    registered.messages.extend(logged.messages)
    return registered


def promote(
    store: MlflowRunStore,
    name: str,
    version: str,
    alias: str,
    *,
    policy: PromotionPolicy | None = None,
    note: str | None = None,
    by: str | None = None,
) -> Promotion:
    """Point ``alias`` at the version if the policy allows it, and record who did, when, why.

    ``by`` is who promotes (default: the login name; the server passes its user).

    A refusal changes nothing and names everything that is missing.
    """
    check_alias(store, alias)
    found = store._call(
        f"reading {name} version {version}",
        lambda: store.client.get_model_version(name, version),
    )
    run_tags: dict[str, str] = {}
    if found.run_id:
        try:
            run_tags = dict(_get_run(store, found.run_id).data.tags)
        except NotFoundError:
            run_tags = {}
    gate = _gate(policy, alias, name, str(version), dict(found.tags), found.run_id, run_tags)
    promotion = Promotion(
        alias, str(version), by or gate.by, gate.at, gate.review_id, gate.review_on, note
    )
    _point_alias(store, name, str(version), alias, promotion)
    return promotion


def read_lineage(store: MlflowRunStore, ref: ModelRef) -> Lineage:
    """The version ``ref`` names, its tags and aliases, and the facts of its run."""
    if ref.version:
        found = store._call(
            f"reading {ref.uri}",
            lambda: store.client.get_model_version(ref.name, ref.version or ""),
        )
    else:
        found = store._call(
            f"reading {ref.alias_uri}",
            lambda: store.client.get_model_version_by_alias(ref.name, ref.alias or ""),
        )
    facts: RunFacts | None = None
    problem: str | None = None
    if found.run_id:
        try:
            facts = run_facts(store, _get_run(store, found.run_id))
        except NotFoundError:
            problem = "the run no longer exists"
    else:
        problem = "the version was not registered from a run"
    return Lineage(
        name=found.name,
        version=str(found.version),
        aliases=tuple(found.aliases or ()),
        source=found.source or "",
        version_tags=dict(found.tags),
        run=facts,
        run_problem=problem,
    )
