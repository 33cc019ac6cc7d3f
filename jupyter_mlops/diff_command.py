"""``jupyter mlops diff A B`` and ``jupyter mlops history NOTEBOOK``: the shell adapter.

Both read notebooks through :mod:`jupyter_mlops.governance.notebook_versions`, so a run
id, ``models:/NAME/VERSION``, ``git:REV:PATH`` and a path mean the same here as in the
REST API and in reviews.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REF_HELP = "a run id, models:/NAME/VERSION, models:/NAME@ALIAS, git:REV:PATH or a notebook path"


def _versions(args: argparse.Namespace) -> Any:
    from jupyter_mlops.core.settings import resolve_tracking_location
    from jupyter_mlops.governance.notebook_versions import NotebookVersions

    return NotebookVersions(resolve_tracking_location(args.tracking_uri), cwd=Path.cwd())


def _cmd_diff(args: argparse.Namespace) -> int:
    from jupyter_mlops.governance.diffs import DiffOptions, diff_refs, render_html, render_text

    options = DiffOptions(ignore_outputs=args.ignore_outputs, ignore_metadata=args.ignore_metadata)
    result = diff_refs(_versions(args), args.a, args.b, options)
    if args.html:
        out = Path(args.html)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_html(result), encoding="utf-8")
        print(f"jupyter mlops diff: wrote {out}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.diff if args.json == "diff" else result.as_json(), indent=1))
    elif not args.html:
        if result.identical:
            print(f"{result.a.label} and {result.b.label} are identical")
        else:
            sys.stdout.write(render_text(result, color=_color(args.color)))
    return 0


def _color(choice: str) -> bool:
    if choice == "always":
        return True
    if choice == "never":
        return False
    return sys.stdout.isatty()


def _cmd_history(args: argparse.Namespace) -> int:
    from jupyter_mlops.core.progress import format_table
    from jupyter_mlops.governance.notebook_versions import notebook_history

    entries = notebook_history(_versions(args), args.notebook)
    if args.json:
        print(json.dumps([vars(e) for e in entries], indent=1))
        return 0
    if not entries:
        print(f"no run has a snapshot of {args.notebook}")
        return 0
    rows = [
        [
            _when(e.time_ms),
            e.run_name or "-",
            e.run_id,
            e.digest[:12],
            "-" if e.cells_changed is None else e.cells_changed,
        ]
        for e in entries
    ]
    print(format_table(["time (UTC)", "run name", "run", "snapshot", "cells changed"], rows))
    return 0


def _when(time_ms: int | None) -> str:
    if time_ms is None:
        return "-"
    return datetime.fromtimestamp(time_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def add_diff_parsers(commands: Any) -> None:
    """``diff`` and ``history`` under ``jupyter mlops``."""
    diff = commands.add_parser(
        "diff", help="diff two notebook versions (runs, model versions, git revisions, files)"
    )
    diff.add_argument("a", metavar="A", help=REF_HELP)
    diff.add_argument("b", metavar="B", help=REF_HELP)
    diff.add_argument("--html", metavar="OUT.html", help="write nbdime's web diff as one page")
    diff.add_argument(
        "--json",
        nargs="?",
        const="diff",
        choices=["diff", "full"],
        help="print nbdime's diff as JSON (full: with the base notebook and labels)",
    )
    diff.add_argument(
        "--ignore-outputs", action="store_true", help="ignore outputs and execution counts"
    )
    diff.add_argument(
        "--ignore-metadata", action="store_true", help="ignore notebook and cell metadata"
    )
    diff.add_argument("--color", choices=["auto", "always", "never"], default="auto")
    diff.set_defaults(handler=_cmd_diff)

    history = commands.add_parser(
        "history", help="the snapshots of a notebook across runs, with cells changed"
    )
    history.add_argument("notebook", metavar="NOTEBOOK")
    history.add_argument("--json", action="store_true", help="print the history as JSON")
    history.set_defaults(handler=_cmd_history)
