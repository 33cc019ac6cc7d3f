"""Reviews: a candidate notebook version, a base, comments anchored to cells, a decision.

Pure data and rules; :mod:`jupyter_mlops.governance.reviews` stores a review with its
candidate's run (JSON artifacts under ``reviews/`` plus tags) and, for a model version,
tags on the version too, so the record travels with the model.

A review is its opening record plus its actions (a comment, a decision), each action a
record of its own: two reviewers acting at once add two actions, and neither overwrites
the other's. :func:`apply_action` folds them, in the order they were made, into the
review everyone reads.

States: ``open`` until someone decides; then ``approved`` or ``changes_requested``, the
latest decision winning (a reviewer may approve after the requested changes are made).
Every action is kept in ``events``: the review is an audit trail, not just a state.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from jupyter_mlops.core.errors import NotFoundError, UsageError

ReviewState = Literal["open", "approved", "changes_requested"]
Decision = Literal["approve", "request_changes"]
DECISIONS: dict[str, ReviewState] = {"approve": "approved", "request_changes": "changes_requested"}
REVIEW_ID = re.compile(r"rv-[0-9a-f]{8}")
MAX_COMMENT_CHARS = 10_000

#: Tags on the candidate's run (and model version): the state of every review by id,
#: and the latest review with its state, which the promotion gate reads.
TAG_REVIEW_PREFIX = "mlops.review."
TAG_REVIEW_ID = "mlops.review.id"
TAG_REVIEW_STATE = "mlops.review.state"
REVIEW_ARTIFACT_FOLDER = "reviews"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_review_id() -> str:
    return f"rv-{secrets.token_hex(4)}"


def check_review_id(text: str) -> str:
    review_id = text.strip()
    if not REVIEW_ID.fullmatch(review_id):
        raise UsageError(f"{text!r} is not a review id", hint="review ids look like rv-1a2b3c4d")
    return review_id


def cell_anchors(notebook: dict[str, Any]) -> list[str]:
    """The anchor of each cell: its id, or ``cell-N`` (1-based) in notebooks without ids."""
    return [
        cell.get("id") if isinstance(cell.get("id"), str) else f"cell-{number}"
        for number, cell in enumerate(notebook.get("cells", []), start=1)
    ]


@dataclass
class Comment:
    id: str
    cell_id: str
    text: str
    author: str
    created_at: str


@dataclass
class Event:
    action: str  # opened | commented | approved | changes_requested
    author: str
    at: str
    message: str | None = None


@dataclass
class Side:
    """One side of a review: the reference as stored, and a label for people."""

    ref: str
    label: str
    run_id: str | None = None
    model_name: str | None = None
    model_version: str | None = None


@dataclass
class Review:
    id: str
    candidate: Side
    base: Side | None
    created_by: str
    created_at: str
    state: ReviewState = "open"
    decided_by: str | None = None
    decided_at: str | None = None
    comments: list[Comment] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Review:
        try:
            base = data.get("base")
            return cls(
                id=data["id"],
                candidate=Side(**data["candidate"]),
                base=Side(**base) if base else None,
                created_by=data["created_by"],
                created_at=data["created_at"],
                state=data["state"],
                decided_by=data.get("decided_by"),
                decided_at=data.get("decided_at"),
                comments=[Comment(**c) for c in data.get("comments", [])],
                events=[Event(**e) for e in data.get("events", [])],
            )
        except (KeyError, TypeError) as error:
            raise UsageError(f"review record {data.get('id', '?')} is malformed: {error}") from None

    def tags(self) -> dict[str, str]:
        """What the candidate's run and model version carry about this review."""
        return {
            f"{TAG_REVIEW_PREFIX}{self.id}": self.state,
            TAG_REVIEW_ID: self.id,
            TAG_REVIEW_STATE: self.state,
        }


def open_review(candidate: Side, base: Side | None, author: str) -> Review:
    at = now_iso()
    review = Review(new_review_id(), candidate, base, author, at)
    review.events.append(Event("opened", author, at))
    return review


@dataclass
class ReviewAction:
    """One thing done to a review after it opened: a comment, or a decision."""

    event: Event
    comment: Comment | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReviewAction:
        try:
            comment = data.get("comment")
            return cls(Event(**data["event"]), Comment(**comment) if comment else None)
        except (KeyError, TypeError) as error:
            raise UsageError(f"a review action record is malformed: {error}") from None


def comment_action(cell_id: str, text: str, author: str, anchors: list[str]) -> ReviewAction:
    """A comment anchored to a cell of the candidate's notebook; refuse unknown cells."""
    body = text.strip()
    if not body:
        raise UsageError("a comment needs some text")
    if len(body) > MAX_COMMENT_CHARS:
        raise UsageError(f"a comment is limited to {MAX_COMMENT_CHARS} characters, not {len(body)}")
    if cell_id not in anchors:
        shown = ", ".join(anchors[:8]) + (" ..." if len(anchors) > 8 else "")
        raise NotFoundError(
            f"the candidate's notebook has no cell {cell_id!r}",
            hint=f"its cells are {shown}" if anchors else "its notebook has no cells",
        )
    at = now_iso()
    # Random, not numbered: two comments made at once must not share an id.
    comment = Comment(f"c-{secrets.token_hex(4)}", cell_id, body, author, at)
    return ReviewAction(Event("commented", author, at, f"on {cell_id}"), comment)


def decision_action(decision: str, author: str, message: str | None = None) -> ReviewAction:
    if decision not in DECISIONS:
        raise UsageError(f"{decision!r} is not a decision", hint="approve or request_changes")
    return ReviewAction(
        Event(DECISIONS[decision], author, now_iso(), (message or "").strip() or None)
    )


def apply_action(review: Review, action: ReviewAction) -> None:
    """Fold one action into the review (actions are applied in the order they were made)."""
    review.events.append(action.event)
    if action.comment is not None:
        review.comments.append(action.comment)
    for state in DECISIONS.values():
        if action.event.action == state:
            review.state = state
            review.decided_by, review.decided_at = action.event.author, action.event.at
