"""Reviews stored with their candidate in MLflow: open, comment, decide, find, list.

A review lives in the candidate's run, as artifacts under ``reviews/``:

* ``reviews/<id>/opened.json``: the review as it was opened;
* ``reviews/<id>/actions/<time>-<random>.json``: one file per comment or decision, never
  rewritten, so two reviewers acting at once both keep what they did;
* ``reviews/<id>.json``: the whole review (opening plus every action), for people and for
  ``list``; rewritten after each action.

Its state is in tags (``mlops.review.<id>``, ``mlops.review.id``, ``mlops.review.state``).
A model version under review carries the same tags, so the registry shows the state and
the promotion gate can read it without downloading anything. After each action the
record and the tags are published again until no other action arrived meanwhile, so the
last publication of a review always includes every action (see ``_settle``).

Reviews opened before actions had files of their own (only ``reviews/<id>.json``) are
read as they are; their first new action copies that record to ``opened.json``.

The base is stored resolved (``models:/churn/3``, not ``models:/churn@champion``): the
alias moves on, the review must keep showing the diff it judged.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from jupyter_mlops.core.errors import NotFoundError, UsageError
from jupyter_mlops.core.notebook_refs import EMPTY_REF, parse_ref
from jupyter_mlops.core.review import (
    REVIEW_ARTIFACT_FOLDER,
    TAG_REVIEW_ID,
    TAG_REVIEW_PREFIX,
    Comment,
    Review,
    ReviewAction,
    Side,
    apply_action,
    cell_anchors,
    check_review_id,
    comment_action,
    decision_action,
    open_review,
)
from jupyter_mlops.execution.runner import TAG_INPUT_NOTEBOOK
from jupyter_mlops.governance.diffs import DiffOptions, NotebookDiff, diff_pair
from jupyter_mlops.governance.notebook_versions import (
    NotebookVersion,
    NotebookVersions,
    notebook_history,
)
from jupyter_mlops.tracking.environment import TAG_NOTEBOOK

CHAMPION_ALIAS = "champion"
DIFF_API_PATH = "/jupyter-mlops/api/diff"
OPENED = "opened.json"
ACTIONS = "actions"


def _folder(review_id: str) -> str:
    return f"{REVIEW_ARTIFACT_FOLDER}/{review_id}"


def _run_of(review: Review) -> str:
    """The candidate's run, where the review is stored (every candidate has one)."""
    assert review.candidate.run_id is not None
    return review.candidate.run_id


@dataclass
class ReviewView:
    """A review with what adapters show beside it: the cell anchors of the candidate."""

    review: Review
    anchors: list[str]

    def as_json(self) -> dict[str, Any]:
        data = self.review.to_json()
        base_ref = self.review.base.ref if self.review.base else EMPTY_REF
        data["diff_url"] = f"{DIFF_API_PATH}?" + urlencode(
            {"a": base_ref, "b": self.review.candidate.ref}
        )
        data["cells"] = self.anchors
        return data


def _side(version: NotebookVersion, ref: str | None = None) -> Side:
    return Side(
        ref=ref or version.ref,
        label=version.label,
        run_id=version.run_id,
        model_name=version.model_name,
        model_version=version.model_version,
    )


def _pinned_ref(version: NotebookVersion) -> str:
    """The reference that names ``version`` for good: a model version by number (not by
    alias), a run by id; a file or git reference as it was given."""
    if version.model_name:
        return f"models:/{version.model_name}/{version.model_version}"
    return f"run:{version.run_id}" if version.run_id else version.ref


class ReviewService:
    def __init__(self, versions: NotebookVersions) -> None:
        self.versions = versions

    @property
    def store(self) -> Any:
        return self.versions.store

    # -- opening ----------------------------------------------------------------------
    def open(self, candidate: str, base: str | None, author: str) -> ReviewView:
        ref = parse_ref(candidate)
        if ref.kind not in ("run", "model"):
            raise UsageError(
                f"{candidate}: a review's candidate is a run or a model version",
                hint="a file or a git revision is not a result anyone can approve",
            )
        version = self.versions.resolve(ref)
        base_side = self._base(version, base)
        review = open_review(_side(version, _pinned_ref(version)), base_side, author)
        self._put_json(_run_of(review), f"{_folder(review.id)}/{OPENED}", review.to_json())
        self._publish(review)
        return ReviewView(review, cell_anchors(version.notebook))

    def _base(self, candidate: NotebookVersion, base: str | None) -> Side | None:
        if base:
            version = self.versions.resolve(base)
            return _side(version, _pinned_ref(version))
        default = self.default_base(candidate)
        if default is None:
            return None
        return _side(self.versions.resolve(default), default)

    def default_base(self, candidate: NotebookVersion) -> str | None:
        """The champion of the candidate's model, else its previous version; for a plain
        run, the run before it of the same notebook; None for a first version."""
        assert candidate.run_id is not None
        name, number = candidate.model_name, candidate.model_version
        if name is None:
            logged = self.store.model_versions(run_id=candidate.run_id)
            if logged:
                name, number = logged[0].name, str(logged[0].version)
        if name is not None and number is not None:
            champion = self.store.model_alias_version(name, CHAMPION_ALIAS)
            if champion is not None and champion != number:
                return f"models:/{name}/{champion}"
            earlier = [
                v for v in self.store.model_versions(name=name) if int(v.version) < int(number)
            ]
            return f"models:/{name}/{earlier[0].version}" if earlier else None
        return self._previous_run(candidate.run_id)

    def _previous_run(self, run_id: str) -> str | None:
        run = self.store.get_run(run_id)
        notebook = run.tags.get(TAG_INPUT_NOTEBOOK) or run.tags.get(TAG_NOTEBOOK)
        if not notebook:
            return None
        try:
            history = notebook_history(self.versions, notebook, within_root=False)
        except NotFoundError:
            return None
        order = list(dict.fromkeys(e.run_id for e in history))
        earlier = order[: order.index(run_id)] if run_id in order else order
        return f"run:{earlier[-1]}" if earlier else None

    # -- reading and writing ----------------------------------------------------------
    def _put_json(self, run_id: str, path: str, data: dict[str, Any]) -> None:
        self.store.put_artifact(run_id, path, json.dumps(data, indent=1).encode())

    def _publish(self, review: Review) -> None:
        """Write the readable record and the state tags (run, and model version if any)."""
        run_id = _run_of(review)
        self._put_json(run_id, f"{REVIEW_ARTIFACT_FOLDER}/{review.id}.json", review.to_json())
        self.store.set_tags(run_id, review.tags())
        if review.candidate.model_name and review.candidate.model_version:
            self.store.set_model_version_tags(
                review.candidate.model_name, review.candidate.model_version, review.tags()
            )

    def _act(self, view: ReviewView, action: ReviewAction) -> ReviewView:
        """Add ``action`` as a file of its own, then publish the review with it."""
        review = view.review
        run_id = _run_of(review)
        folder = _folder(review.id)
        if not self._has_opening(run_id, review.id):
            # Opened before actions had files: its record so far becomes the opening.
            self._put_json(run_id, f"{folder}/{OPENED}", review.to_json())
        # Time first, so that names sort in the order the actions were made.
        name = f"{time.time_ns():020d}-{secrets.token_hex(4)}.json"
        self._put_json(run_id, f"{folder}/{ACTIONS}/{name}", action.to_json())
        return ReviewView(self._settle(run_id, review.id), view.anchors)

    def _settle(self, run_id: str, review_id: str) -> Review:
        """Publish the folded review until a reading finds no action the last one lacked.

        Two reviewers acting at once may each publish a state that lacks the other's
        action; whoever published last then reads again, finds the other action, and
        publishes once more. So the last publication of a review includes every action
        written before it, and the tags the promotion gate reads are never left stale.
        """
        published: list[str] | None = None
        while True:
            review, actions = self._fold(run_id, review_id)
            if actions == published:
                return review
            self._publish(review)
            published = actions

    def _has_opening(self, run_id: str, review_id: str) -> bool:
        """Whether the review has ``opened.json`` (else it is from before actions had
        files of their own, and ``reviews/<id>.json`` is the whole of it)."""
        folder = _folder(review_id)
        return f"{folder}/{OPENED}" in self.store.list_artifacts(run_id, folder)

    def _fold(self, run_id: str, review_id: str) -> tuple[Review, list[str]]:
        """The review from its opening and every action so far, and those actions' files.

        Files just listed are read as they are (``read_artifact``): actions are never
        deleted, and ``find_artifact`` would list their folder again for each one.
        """
        folder = _folder(review_id)
        if not self._has_opening(run_id, review_id):
            return self._load(run_id, review_id), []
        review = Review.from_json(
            json.loads(self.store.read_artifact(run_id, f"{folder}/{OPENED}"))
        )
        actions = sorted(self.store.list_artifacts(run_id, f"{folder}/{ACTIONS}"))
        for path in actions:
            data = self.store.read_artifact(run_id, path)
            apply_action(review, ReviewAction.from_json(json.loads(data)))
        return review, actions

    def _load(self, run_id: str, review_id: str) -> Review:
        """The readable record of a review: what it was when last published."""
        data = self.store.find_artifact(run_id, f"{REVIEW_ARTIFACT_FOLDER}/{review_id}.json")
        if data is None:
            raise NotFoundError(f"review {review_id}: its record is missing from run {run_id}")
        return Review.from_json(json.loads(data))

    def get(self, review_id: str) -> ReviewView:
        review_id = check_review_id(review_id)
        runs = self.store.find_runs(
            self.store.experiment_ids(), f"tags.`{TAG_REVIEW_PREFIX}{review_id}` LIKE '%'"
        )
        if not runs:
            raise NotFoundError(f"there is no review {review_id}")
        review, _actions = self._fold(runs[0].run_id, review_id)
        candidate = self.versions.resolve(review.candidate.ref)
        return ReviewView(review, cell_anchors(candidate.notebook))

    def comment(
        self, review_id: str, cell_id: str, text: str, author: str
    ) -> tuple[ReviewView, Comment]:
        """Comment on a cell; returns the review after it, and the comment made."""
        view = self.get(review_id)
        action = comment_action(cell_id, text, author, view.anchors)
        assert action.comment is not None
        return self._act(view, action), action.comment

    def decide(
        self, review_id: str, decision: str, author: str, message: str | None = None
    ) -> ReviewView:
        view = self.get(review_id)
        return self._act(view, decision_action(decision, author, message))

    def list(self) -> list[Review]:
        """Every review in the store, newest first."""
        runs = self.store.find_runs(self.store.experiment_ids(), f"tags.`{TAG_REVIEW_ID}` LIKE '%'")
        reviews = []
        for run in runs:
            for key in run.tags:
                if key.startswith(TAG_REVIEW_PREFIX) and key.removeprefix(
                    TAG_REVIEW_PREFIX
                ).startswith("rv-"):
                    reviews.append(self._load(run.run_id, key.removeprefix(TAG_REVIEW_PREFIX)))
        return sorted(reviews, key=lambda r: r.created_at, reverse=True)

    def diff(self, review: Review, options: DiffOptions | None = None) -> NotebookDiff:
        base = self.versions.resolve(review.base.ref if review.base else EMPTY_REF)
        return diff_pair(
            base, self.versions.resolve(review.candidate.ref), options or DiffOptions()
        )
