"""``jupyter mlops review ...``: open, comment, approve, request changes, show, list."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from jupyter_mlops.diff_command import REF_HELP


def _service(args: argparse.Namespace) -> Any:
    from jupyter_mlops.core.settings import resolve_tracking_location
    from jupyter_mlops.governance.notebook_versions import NotebookVersions
    from jupyter_mlops.governance.reviews import ReviewService

    location = resolve_tracking_location(args.tracking_uri)
    return ReviewService(NotebookVersions(location, cwd=Path.cwd()))


def _author(args: argparse.Namespace) -> str:
    from jupyter_mlops.tracking.environment import current_user

    return str(args.user or current_user())


def _print_view(view: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(view.as_json(), indent=1))
        return
    review = view.review
    print(f"review {review.id}: {review.state}")
    print(f"candidate: {review.candidate.label} [{review.candidate.ref}]")
    base = f"{review.base.label} [{review.base.ref}]" if review.base else "(none: a first version)"
    print(f"base:      {base}")
    print(f"opened:    {review.created_at} by {review.created_by}")
    if review.decided_by:
        print(f"decided:   {review.decided_at} by {review.decided_by}")
    for comment in review.comments:
        print(f"  [{comment.cell_id}] {comment.author} ({comment.created_at}): {comment.text}")


def _cmd_open(args: argparse.Namespace) -> int:
    view = _service(args).open(args.candidate, args.base, _author(args))
    if args.json:
        _print_view(view, True)
    else:
        _print_view(view, False)
        print(f"next: jupyter mlops review show {view.review.id} --diff")
    return 0


def _cmd_comment(args: argparse.Namespace) -> int:
    view, comment = _service(args).comment(args.review, args.cell, args.text, _author(args))
    print(f"review {view.review.id}: comment {comment.id} on cell {comment.cell_id}")
    return 0


def _decision(decision: str) -> Any:
    def handler(args: argparse.Namespace) -> int:
        view = _service(args).decide(args.review, decision, _author(args), args.message)
        print(f"review {view.review.id}: {view.review.state} by {view.review.decided_by}")
        return 0

    return handler


def _cmd_show(args: argparse.Namespace) -> int:
    service = _service(args)
    view = service.get(args.review)
    _print_view(view, args.json)
    if args.diff and not args.json:
        from jupyter_mlops.governance.diffs import render_text

        result = service.diff(view.review)
        print()
        print(render_text(result, color=sys.stdout.isatty()) or "(no differences)", end="")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from jupyter_mlops.core.progress import format_table

    reviews = _service(args).list()
    if args.state:
        reviews = [r for r in reviews if r.state == args.state]
    if args.json:
        print(json.dumps([r.to_json() for r in reviews], indent=1))
        return 0
    if not reviews:
        print("no reviews")
        return 0
    rows = [
        [
            r.id,
            r.state,
            r.candidate.label,
            r.base.label if r.base else "-",
            r.created_by,
            r.created_at,
            len(r.comments),
        ]
        for r in reviews
    ]
    print(format_table(["review", "state", "candidate", "base", "by", "opened", "comments"], rows))
    return 0


def add_review_parser(commands: Any) -> None:
    review = commands.add_parser("review", help="review a run or model version against a base")
    actions = review.add_subparsers(dest="review_command", metavar="ACTION")

    def review_help(_args: argparse.Namespace) -> int:
        review.print_help()
        return 2

    review.set_defaults(handler=review_help)

    def action(name: str, helptext: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(name, help=helptext)
        sub.add_argument("--user", metavar="NAME", help="who acts (default: the login name)")
        return sub

    opened = action("open", "open a review of CANDIDATE (a run or a model version)")
    opened.add_argument("candidate", metavar="CANDIDATE", help="a run id or models:/NAME/VERSION")
    opened.add_argument(
        "--base", metavar="B", help=f"{REF_HELP} (default: the champion, else the version before)"
    )
    opened.add_argument("--json", action="store_true")
    opened.set_defaults(handler=_cmd_open)

    comment = action("comment", "comment on a cell of the candidate's notebook")
    comment.add_argument("review", metavar="REVIEW")
    comment.add_argument("--cell", required=True, metavar="CELL_ID", help="the cell's id")
    comment.add_argument("text", metavar="TEXT")
    comment.set_defaults(handler=_cmd_comment)

    for name, decision, helptext in (
        ("approve", "approve", "approve the candidate"),
        ("request-changes", "request_changes", "ask for changes before approval"),
    ):
        sub = action(name, helptext)
        sub.add_argument("review", metavar="REVIEW")
        sub.add_argument("-m", "--message", metavar="TEXT", help="why")
        sub.set_defaults(handler=_decision(decision))

    show = action("show", "the review, its comments and (--diff) the diff it judges")
    show.add_argument("review", metavar="REVIEW")
    show.add_argument("--diff", action="store_true", help="print the diff base -> candidate")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_cmd_show)

    listed = action("list", "every review, newest first")
    listed.add_argument("--state", choices=["open", "approved", "changes_requested"])
    listed.add_argument("--json", action="store_true")
    listed.set_defaults(handler=_cmd_list)
