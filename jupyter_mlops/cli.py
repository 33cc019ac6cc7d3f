"""``jupyter mlops`` (also ``jupyter-mlops``): the shell and CI adapter.

Parses flags, calls one core function with plain values, prints the result, and turns
our typed errors into a one-line message and an exit status. Imports of anything heavy
happen inside the command that needs them, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from jupyter_mlops._version import __version__
from jupyter_mlops.core.errors import MlopsError, exit_code_for

Command = Callable[[argparse.Namespace], int]


def _cmd_status(args: argparse.Namespace) -> int:
    from jupyter_mlops.core.settings import resolve_tracking_location
    from jupyter_mlops.core.status import collect_status

    location = resolve_tracking_location(args.tracking_uri)
    status = collect_status(location)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0 if status["store"]["ok"] else 3
    tracking, store = status["tracking"], status["store"]
    print(f"jupyter-mlops {status['version']}")
    print(f"tracking uri:  {tracking['uri']}")
    print(f"chosen by:     {tracking['source']} ({tracking['detail']})")
    if tracking.get("artifact_uri"):
        print(f"artifacts:     {tracking['artifact_uri']}")
    print(f"project root:  {tracking['project_root']}")
    print(f"store:         {'answers' if store['ok'] else 'UNREACHABLE'} - {store['message']}")
    return 0 if store["ok"] else 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jupyter mlops",
        description="Notebook governance on MLflow: track, run, diff, review, register.",
    )
    parser.add_argument("--version", action="version", version=f"jupyter-mlops {__version__}")
    parser.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="tracking location (default: MLFLOW_TRACKING_URI, pyproject.toml, then .mlops/)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    status = commands.add_parser(
        "status", help="show the resolved tracking location and whether the store answers"
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(handler=_cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Command | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except MlopsError as error:
        print(f"jupyter mlops {args.command}: {error}", file=sys.stderr)
        return exit_code_for(error)
    except KeyboardInterrupt:
        print(f"jupyter mlops {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
