"""``jupyter mlops review``: open, comment, decide, show and list, stored with the candidate."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from governance_project import Project
from mlflow.tracking import MlflowClient
from store_under_test import location_for, store_client

from jupyter_mlops.governance.notebook_versions import NotebookVersions
from jupyter_mlops.governance.reviews import ReviewService
from jupyter_mlops.tracking.mlflow_store import MlflowRunStore

from conftest import run_cli, run_main


def _cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return run_main(project.root, *args)


def _client(project: Project) -> MlflowClient:
    return store_client(project.root)


def _open(project: Project, *args: str) -> dict:
    result = _cli(project, "review", "open", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_model_version_review_compares_with_the_champion_and_travels_with_it(
    tracked: Project,
) -> None:
    # Given version 2 of "scorer" while version 1 is the champion
    # When a review of version 2 is opened, commented on and approved
    review = _open(tracked, "models:/scorer/2", "--user", "ada")
    assert re.fullmatch(r"rv-[0-9a-f]{8}", review["id"])
    assert review["candidate"]["ref"] == "models:/scorer/2"
    assert review["base"]["ref"] == "models:/scorer/1"  # the champion, pinned
    assert review["state"] == "open"
    cell = review["cells"][3]
    commented = _cli(
        tracked, "review", "comment", review["id"], "--cell", cell, "why 2.0?", "--user", "bob"
    )
    assert commented.returncode == 0, commented.stderr
    approved = run_cli(
        tracked.root, "review", "approve", review["id"], "-m", "fine", "--user", "bob"
    )
    assert approved.returncode == 0, approved.stderr
    assert f"review {review['id']}: approved by bob" in approved.stdout
    # Then the model version and its run carry the state, and the record is an artifact
    client = _client(tracked)
    version = client.get_model_version("scorer", "2")
    assert version.tags["mlops.review.state"] == "approved"
    assert version.tags["mlops.review.id"] == review["id"]
    run = client.get_run(tracked.runs[2])
    assert run.data.tags[f"mlops.review.{review['id']}"] == "approved"
    record = json.loads(
        (
            tracked.root
            / client.download_artifacts(
                tracked.runs[2], f"reviews/{review['id']}.json", str(tracked.root / "dl-review")
            )
        ).read_text()
    )
    assert record["state"] == "approved" and record["decided_by"] == "bob"
    assert [(c["cell_id"], c["text"], c["author"]) for c in record["comments"]] == [
        (cell, "why 2.0?", "bob")
    ]
    assert [e["action"] for e in record["events"]] == ["opened", "commented", "approved"]
    assert record["events"][-1]["message"] == "fine"


def test_show_prints_comments_and_the_diff_it_judges(tracked: Project) -> None:
    review = _open(tracked, "models:/scorer/2")
    _cli(tracked, "review", "comment", review["id"], "--cell", review["cells"][3], "looks off")
    shown = _cli(tracked, "review", "show", review["id"], "--diff")
    assert shown.returncode == 0, shown.stderr
    assert "state" not in shown.stderr
    assert f"review {review['id']}: open" in shown.stdout
    assert "looks off" in shown.stdout
    assert "+  loss = 2.0 / (1 + lr * epochs)" in shown.stdout


def test_run_review_defaults_to_the_previous_run_and_decisions_can_change(
    tracked: Project,
) -> None:
    review = _open(tracked, tracked.runs[1])
    assert review["candidate"]["ref"] == f"run:{tracked.runs[1]}"
    assert review["base"]["ref"] == f"run:{tracked.runs[0]}"
    assert _cli(tracked, "review", "request-changes", review["id"]).returncode == 0
    assert _client(tracked).get_run(tracked.runs[1]).data.tags["mlops.review.state"] == (
        "changes_requested"
    )
    assert _cli(tracked, "review", "approve", review["id"]).returncode == 0
    shown = json.loads(_cli(tracked, "review", "show", review["id"], "--json").stdout)
    assert shown["state"] == "approved"
    assert [e["action"] for e in shown["events"]] == ["opened", "changes_requested", "approved"]
    listed = _cli(tracked, "review", "list", "--state", "approved")
    assert review["id"] in listed.stdout


def test_first_version_has_no_base(tracked: Project) -> None:
    review = _open(tracked, "models:/scorer/1")
    assert review["base"] is None
    assert "a=empty%3A" in review["diff_url"]


def test_bad_review_input_is_one_line_and_exit_2(tracked: Project) -> None:
    review = _open(tracked, tracked.runs[0])
    cases = [
        (["review", "open", "run_params.ipynb"], "candidate is a run or a model version"),
        (["review", "open", "models:/nobody/1"], "models:/nobody/1"),
        (["review", "show", "rv-00000000"], "there is no review rv-00000000"),
        (["review", "show", "42"], "is not a review id"),
        (["review", "comment", review["id"], "--cell", "nope", "x"], "has no cell 'nope'"),
        (["review", "comment", review["id"], "--cell", review["cells"][0], " "], "needs some text"),
    ]
    for args, message in cases:
        result = _cli(tracked, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
    # Nothing was recorded by the refused comments
    shown = json.loads(_cli(tracked, "review", "show", review["id"], "--json").stdout)
    assert shown["comments"] == []


class _ActingTogether:
    """The real store, except that each reviewer's first write waits until every reviewer
    has read the review: each then acts on a review that lacks the others' actions, the
    worst interleaving two people can hit by chance."""

    def __init__(self, store: Any, barrier: threading.Barrier) -> None:
        self._store = store
        self._barrier = barrier
        self._wrote = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def put_artifact(self, run_id: str, path: str, data: bytes) -> None:
        if not self._wrote:
            self._wrote = True
            self._barrier.wait()
        self._store.put_artifact(run_id, path, data)


def test_reviewers_acting_at_the_same_moment_lose_nothing(tracked: Project) -> None:
    # Given an open review of a run
    review = _open(tracked, tracked.runs[0], "--user", "ada")
    cell = review["cells"][1]
    # When four reviewers comment and a fifth approves, each reading before anyone writes
    barrier = threading.Barrier(5, timeout=120)

    def reviewer(act: Callable[[ReviewService], object]) -> None:
        store = _ActingTogether(MlflowRunStore(location_for(tracked.root)), barrier)
        act(ReviewService(NotebookVersions(store.location, tracked.root, store=store)))

    acts: list[Callable[[ReviewService], object]] = [
        lambda service, i=i: service.comment(review["id"], cell, f"note {i}", f"r{i}")
        for i in range(4)
    ]
    acts.append(lambda service: service.decide(review["id"], "approve", "carol", "fine"))
    with ThreadPoolExecutor(len(acts)) as pool:
        for done in [pool.submit(reviewer, act) for act in acts]:
            done.result()
    # Then the review holds every comment and the decision
    shown = json.loads(_cli(tracked, "review", "show", review["id"], "--json").stdout)
    assert sorted(c["text"] for c in shown["comments"]) == [f"note {i}" for i in range(4)]
    assert len({c["id"] for c in shown["comments"]}) == 4
    assert (shown["state"], shown["decided_by"]) == ("approved", "carol")
    assert sorted(e["action"] for e in shown["events"]) == ["approved"] + ["commented"] * 4 + [
        "opened"
    ]
    # And so do the published record and the tags the promotion gate reads
    listed = json.loads(_cli(tracked, "review", "list", "--json").stdout)
    [record] = [r for r in listed if r["id"] == review["id"]]
    assert len(record["comments"]) == 4 and record["state"] == "approved"
    tags = _client(tracked).get_run(tracked.runs[0]).data.tags
    assert tags[f"mlops.review.{review['id']}"] == "approved"
