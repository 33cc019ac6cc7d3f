"""``jupyter mlops register``, ``lineage`` and ``promote``: the model registry from a shell.

* ``register RUN_ID --artifact PATH --name NAME [--alias A]``: a new version of NAME from
  the model a run logged at PATH, with the run's lineage as tags;
* ``lineage models:/NAME/VERSION|models:/NAME@ALIAS [--json]``: the chain model -> run ->
  notebook snapshot -> params -> data -> environment, as text or JSON;
* ``promote NAME VERSION --alias A [--reviewer-note TEXT]``: point an alias at a version
  under the project's policy (``require_review_for``, ``require_reproduced_for`` in
  ``pyproject.toml``); a refusal changes nothing, says what is missing and exits 1.

Exit status: 0 done, 1 refused by the policy, 2 bad input (a run, artifact or version
that does not exist, a name MLflow refuses), 3 the store does not answer. Nothing heavy is
imported until a command runs, so ``jupyter mlops --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_registry_parsers(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add ``register``, ``lineage`` and ``promote`` to the ``jupyter mlops`` subcommands."""
    register = subparsers.add_parser(
        "register",
        help="register the model a run logged as a new version, with its lineage",
        description=(
            "Create a new version of the registered model NAME from the MLflow model the run "
            "logged at artifact path PATH. The version is tagged with the run, notebook "
            "snapshot, params hash, git commit, environment hash and dataset digests."
        ),
    )
    register.add_argument("run_id", metavar="RUN_ID")
    register.add_argument("--artifact", required=True, metavar="PATH", help="e.g. models/iris")
    register.add_argument("--name", required=True, metavar="NAME")
    register.add_argument("--alias", metavar="ALIAS", help="also point ALIAS at the new version")
    register.set_defaults(handler=run_register)

    lineage = subparsers.add_parser(
        "lineage",
        help="where a model version came from: run, notebook snapshot, params, data, environment",
    )
    lineage.add_argument("model", metavar="models:/NAME/VERSION|models:/NAME@ALIAS")
    lineage.add_argument("--json", action="store_true", help="print the lineage as JSON")
    lineage.set_defaults(handler=run_lineage)

    promote = subparsers.add_parser(
        "promote",
        help="point an alias at a model version, if the project's review policy allows it",
        description=(
            "Point ALIAS at version VERSION of NAME. Aliases listed in [tool.jupyter-mlops] "
            "require_review_for need an approved review of the version or of its run; those "
            "in require_reproduced_for need a reproduced verdict on the run. The promotion is "
            "recorded on the version as the tag mlops.promoted.<alias> (who, when, review)."
        ),
    )
    promote.add_argument("name", metavar="NAME")
    promote.add_argument("version", metavar="VERSION")
    promote.add_argument("--alias", required=True, metavar="ALIAS")
    promote.add_argument("--reviewer-note", metavar="TEXT", help="recorded with the promotion")
    promote.set_defaults(handler=run_promote)


def _store(args: argparse.Namespace) -> tuple[Any, Any]:
    """The store and the project's promotion policy."""
    from jupyter_mlops.core.errors import NotFoundError
    from jupyter_mlops.core.lineage import load_policy
    from jupyter_mlops.core.settings import redact_uri, resolve_tracking_location
    from jupyter_mlops.tracking.mlflow_store import MlflowRunStore

    location = resolve_tracking_location(getattr(args, "tracking_uri", None))
    if location.store_missing():
        raise NotFoundError(
            f"no tracking store at {redact_uri(location.uri)} yet: nothing was tracked there"
        )
    return MlflowRunStore(location), load_policy(location.project_root)


def run_register(args: argparse.Namespace) -> int:
    from jupyter_mlops.tracking.registry import register_version

    store, policy = _store(args)
    registered = register_version(
        store, args.run_id, args.artifact, args.name, alias=args.alias, policy=policy
    )
    print(f"jupyter mlops register: {registered.summary()}")
    return 0


def run_lineage(args: argparse.Namespace) -> int:
    from jupyter_mlops.core.lineage import parse_model_uri, render_lineage
    from jupyter_mlops.tracking.registry import read_lineage

    ref = parse_model_uri(args.model)  # a bad reference is refused before MLflow loads
    store, _policy = _store(args)
    lineage = read_lineage(store, ref)
    if args.json:
        print(json.dumps(lineage.to_json(), indent=2))
    else:
        print(render_lineage(lineage))
    return 0


def run_promote(args: argparse.Namespace) -> int:
    from jupyter_mlops.core.errors import UsageError
    from jupyter_mlops.tracking.registry import promote

    if not args.version.isdigit():
        raise UsageError(f"VERSION must be a version number, not {args.version!r}")
    store, policy = _store(args)
    promotion = promote(
        store,
        args.name,
        str(int(args.version)),
        args.alias,
        policy=policy,
        note=args.reviewer_note,
    )
    review = f", review {promotion.review_id}" if promotion.review_id else ""
    print(
        f"jupyter mlops promote: models:/{args.name}@{promotion.alias} -> version "
        f"{promotion.version} (by {promotion.by} at {promotion.at}{review})"
    )
    return 0
