"""Folding a review's actions: comments kept in order, the latest decision wins."""

from __future__ import annotations

import pytest

from jupyter_mlops.core.errors import NotFoundError, UsageError
from jupyter_mlops.core.review import (
    ReviewAction,
    Side,
    apply_action,
    comment_action,
    decision_action,
    open_review,
)

ANCHORS = ["intro", "train"]


def test_actions_fold_into_comments_events_and_the_latest_decision() -> None:
    review = open_review(Side("run:abc", "run abc", run_id="abc"), None, "ada")
    actions = [
        comment_action("train", "why 0.1?", "bob", ANCHORS),
        decision_action("request_changes", "bob", "  use 0.01 "),
        comment_action("train", "done", "ada", ANCHORS),
        decision_action("approve", "carol"),
    ]
    for action in actions:
        # what is stored is what is folded: through JSON and back
        apply_action(review, ReviewAction.from_json(action.to_json()))
    assert [(c.cell_id, c.text, c.author) for c in review.comments] == [
        ("train", "why 0.1?", "bob"),
        ("train", "done", "ada"),
    ]
    assert [e.action for e in review.events] == [
        "opened",
        "commented",
        "changes_requested",
        "commented",
        "approved",
    ]
    assert review.events[2].message == "use 0.01"
    assert (review.state, review.decided_by) == ("approved", "carol")
    assert review.tags()["mlops.review.state"] == "approved"


def test_comments_made_at_once_get_different_ids() -> None:
    actions = [comment_action("intro", "same", "bob", ANCHORS) for _ in range(50)]
    assert len({action.comment.id for action in actions if action.comment}) == 50


def test_bad_actions_are_refused_before_anything_is_stored() -> None:
    with pytest.raises(UsageError, match="needs some text"):
        comment_action("train", "  ", "bob", ANCHORS)
    with pytest.raises(NotFoundError, match="no cell 'nope'"):
        comment_action("nope", "hi", "bob", ANCHORS)
    with pytest.raises(UsageError, match="not a decision"):
        decision_action("merge", "bob")
    with pytest.raises(UsageError, match="action record is malformed"):
        ReviewAction.from_json({"event": {"action": "approved"}})
