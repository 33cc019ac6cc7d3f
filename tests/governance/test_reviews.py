"""``jupyter mlops review``: open, comment, decide, show and list, stored with the candidate."""

from __future__ import annotations

import json
import re
import subprocess

from governance_project import Project
from mlflow.tracking import MlflowClient
from store_under_test import store_client

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
