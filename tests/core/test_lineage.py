"""The pure parts of the model registry: references, lineage tags, the review gate, flavours."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from jupyter_mlops.core.errors import ConfigError, UsageError
from jupyter_mlops.core.lineage import (
    TAG_DATASETS,
    TAG_PARAMS_HASH,
    TAG_REPRODUCED,
    TAG_REVIEW_ID,
    TAG_REVIEW_STATE,
    DatasetFact,
    Lineage,
    ModelRef,
    Promotion,
    PromotionPolicy,
    RunFacts,
    approved_review,
    load_policy,
    missing_for_promotion,
    params_hash,
    parse_model_uri,
    render_lineage,
    version_tags,
)
from jupyter_mlops.core.parameters import canonical_params
from jupyter_mlops.core.pipeline_spec import ModelOutput, parse_pipeline
from jupyter_mlops.core.registration import (
    detect_flavor,
    pick_dataframes,
    pick_input_example,
)


def test_model_references_parse_and_bad_ones_are_usage_errors() -> None:
    assert parse_model_uri("models:/iris/3") == ModelRef("iris", version="3")
    assert parse_model_uri("models:/iris@champion") == ModelRef("iris", alias="champion")
    assert parse_model_uri("models:/iris@champion").uri == "models:/iris@champion"
    for bad in ("iris", "models:/iris", "models:/iris/latest", "runs:/abc/model", "models:/@x"):
        with pytest.raises(UsageError, match="models:/NAME/VERSION"):
            parse_model_uri(bad)


def test_version_tags_record_the_run_and_leave_out_what_it_lacks() -> None:
    facts = RunFacts(
        run_id="r1",
        notebook="/p/train.ipynb",
        snapshot="s" * 64,
        params={"lr": "0.1", "C": "1"},
        environment_hash="e" * 64,
        datasets=(DatasetFact("X", "d1"), DatasetFact("y", "d2"), DatasetFact("X", "d1")),
    )
    tags = version_tags(facts)
    assert tags == {
        "mlops.run_id": "r1",
        "mlops.notebook": "/p/train.ipynb",
        "mlops.snapshot": "s" * 64,
        "mlops.params_hash": hashlib.sha256(
            canonical_params({"C": "1", "lr": "0.1"}).encode()
        ).hexdigest(),
        "mlops.environment_hash": "e" * 64,
        "mlops.datasets": "d1,d2",
    }
    assert "mlops.git_commit" not in tags  # no repository: no tag, not an empty one
    assert params_hash({"lr": "0.1", "C": "1"}) == params_hash({"C": "1", "lr": "0.1"})
    assert params_hash({"lr": "0.1"}) != params_hash({"lr": "0.2"})
    assert version_tags(RunFacts("r2"))[TAG_DATASETS] == ""


def test_policy_is_read_from_pyproject_and_checked(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.jupyter-mlops]\nrequire_review_for = ["champion", "prod"]\n'
        'require_reproduced_for = ["prod"]\n'
    )
    policy = load_policy(tmp_path)
    assert policy.require_review_for == {"champion", "prod"}
    assert policy.gates("prod") and not policy.gates("staging")
    (tmp_path / "pyproject.toml").write_text("[tool.jupyter-mlops]\nrequire_review_for = 3\n")
    with pytest.raises(ConfigError, match="require_review_for must be a list"):
        load_policy(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert not load_policy(tmp_path).gates("champion")


def test_the_gate_names_everything_missing() -> None:
    policy = PromotionPolicy(frozenset({"champion", "prod"}), frozenset({"prod"}))
    review = approved_review(None, {TAG_REVIEW_STATE: "approved", TAG_REVIEW_ID: "R1"})
    assert review is not None and review.review_id == "R1" and review.on == "run"
    # nothing at all: both missing for prod, only the review for champion
    missing = missing_for_promotion(policy, "prod", None, None, "run1")
    assert len(missing) == 2
    assert "approved review" in missing[0] and "never reproduced" in missing[1]
    assert "jupyter mlops reproduce run1" in missing[1]
    assert len(missing_for_promotion(policy, "champion", None, None, "run1")) == 1
    # a review but a differing verdict: still refused, and the verdict is quoted
    differs = missing_for_promotion(policy, "prod", review, "differs: metric acc", "run1")
    assert len(differs) == 1 and "differs: metric acc" in differs[0]
    for verdict in ("reproduced", "reproduced after normalization"):
        assert missing_for_promotion(policy, "prod", review, verdict, "run1") == []
    # an alias the policy does not name is free
    assert missing_for_promotion(policy, "staging", None, None, "run1") == []


def test_a_review_of_the_version_counts_before_one_of_the_run() -> None:
    version = {TAG_REVIEW_STATE: "approved", TAG_REVIEW_ID: "V9"}
    run = {TAG_REVIEW_STATE: "approved", TAG_REVIEW_ID: "R1"}
    found = approved_review(version, run)
    assert found is not None and (found.review_id, found.on) == ("V9", "version")
    assert approved_review({TAG_REVIEW_STATE: "changes_requested"}, {}) is None


def test_promotion_record_round_trips_through_its_tag() -> None:
    promotion = Promotion("champion", "3", "alice", "2026-11-23T10:00:00+00:00", "R1", "run", "ok")
    back = Promotion.from_tag(promotion.tag_key, promotion.tag_value())
    assert back == promotion
    assert promotion.tag_key == "mlops.promoted.champion"
    assert json.loads(promotion.tag_value())["review_id"] == "R1"
    assert Promotion.from_tag("mlops.promoted.x", "not json") is None


def test_lineage_renders_the_chain_and_as_data() -> None:
    facts = RunFacts(
        run_id="r1",
        experiment="train",
        status="FINISHED",
        notebook="/p/train.ipynb",
        snapshot="a" * 64,
        params={"C": "0.5"},
        git_commit="c" * 40,
        git_dirty="true",
        environment_hash="e" * 64,
        datasets=(DatasetFact("X", "d1", 150, "tracked cell"),),
        tags={TAG_REPRODUCED: "reproduced"},
    )
    promotion = Promotion("champion", "2", "bob", "2026-11-23T10:00:00+00:00", "R1", "version")
    lineage = Lineage(
        name="iris",
        version="2",
        aliases=("champion",),
        source="file:///a/models/iris",
        version_tags={
            **version_tags(facts),
            TAG_REVIEW_STATE: "approved",
            TAG_REVIEW_ID: "R1",
            promotion.tag_key: promotion.tag_value(),
        },
        run=facts,
    )
    data = lineage.to_json()
    assert data["model"]["uri"] == "models:/iris/2"
    assert data["run"]["id"] == "r1" and data["run"]["status"] == "FINISHED"
    assert data["notebook"]["snapshot_artifact"] == f"snapshots/{'a' * 64}.ipynb"
    assert data["params"] == {"hash": version_tags(facts)[TAG_PARAMS_HASH], "values": {"C": "0.5"}}
    assert data["data"] == [{"name": "X", "digest": "d1", "rows": 150, "context": "tracked cell"}]
    assert data["review"] == {"id": "R1", "on": "version"}
    assert data["promotions"]["champion"]["by"] == "bob"
    text = render_lineage(lineage)
    order = ["model ", "run ", "notebook ", "snapshot ", "params ", "data ", "environment "]
    positions = [text.index(word) for word in order]
    assert positions == sorted(positions), text
    assert "C=0.5" in text and "(uncommitted changes)" in text and "X: d1, 150 rows" in text
    # a run that was deleted: the lineage frozen on the version still shows
    gone = Lineage("iris", "2", (), "src", version_tags(facts), None, "the run no longer exists")
    assert gone.to_json()["notebook"]["path"] == "/p/train.ipynb"
    assert "the run no longer exists" in render_lineage(gone)


def test_the_reproduced_tag_is_the_one_reproduce_writes() -> None:
    from jupyter_mlops.execution.reproduce import TAG_VERDICT

    assert TAG_REPRODUCED == TAG_VERDICT


class _Rule:
    def predict(self, rows: object) -> object:
        return rows


def test_flavour_detection_and_refusals() -> None:
    assert detect_flavor(LogisticRegression()) == "sklearn"
    assert detect_flavor(make_pipeline(StandardScaler(), LogisticRegression())) == "sklearn"
    assert detect_flavor(_Rule()) == "pyfunc"
    assert detect_flavor(LogisticRegression(), "pyfunc") == "pyfunc"
    with pytest.raises(UsageError, match="a dict is not a model"):
        detect_flavor({"weights": [1, 2]})
    with pytest.raises(UsageError, match="is a class, not a trained model"):
        detect_flavor(LogisticRegression)
    with pytest.raises(UsageError, match="not a scikit-learn estimator"):
        detect_flavor(_Rule(), "sklearn")
    with pytest.raises(UsageError, match="--flavor must be one of"):
        detect_flavor(_Rule(), "onnx")


def test_input_example_and_dataframes_are_found_in_the_namespace() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(frame, [0, 1, 0])
    wide = pd.DataFrame(np.zeros((4, 5)))
    namespace = {"X": wide, "X_test": frame, "y": [0, 1, 0], "_hidden": frame}
    name, example = pick_input_example(model, namespace) or ("", None)
    assert name == "X_test" and list(example.columns) == ["a", "b"] and len(example) == 3
    assert pick_input_example(model, {"X": wide}) is None  # too wide: not this model's input
    with pytest.raises(UsageError, match="no variable named 'nope'"):
        pick_input_example(model, namespace, "nope")
    with pytest.raises(UsageError, match="not a table"):
        pick_input_example(model, namespace, "y")
    assert list(pick_dataframes(["X", "y", "_hidden", "missing", "X"], namespace)) == ["X"]


def test_pipeline_step_outputs_accept_a_model(tmp_path: Path) -> None:
    (tmp_path / "train.ipynb").write_text("{}")
    spec = {
        "steps": {
            "train": {
                "notebook": "train.ipynb",
                "outputs": {
                    "files": ["report.txt"],
                    "model": {"name": "iris", "artifact": "model", "alias": "staging"},
                },
            },
            "plain": {"notebook": "train.ipynb", "outputs": ["out.csv"]},
        }
    }
    pipeline = parse_pipeline(spec, tmp_path / "mlops.yaml", tmp_path)
    train = pipeline.steps["train"]
    assert train.model == ModelOutput("iris", "model", "staging")
    assert train.outputs == ((tmp_path / "report.txt").resolve(),)
    assert pipeline.steps["plain"].model is None
    bad_specs = [
        ({"model": {"artifact": "model"}}, "name must be a non-empty string"),
        ({"model": {"name": "iris", "artifact": "../x"}}, "must be a path inside the run"),
        ({"model": {"name": "iris", "artifact": "m", "stage": "x"}}, "unknown keys stage"),
        ({"models": {}}, "unknown keys models"),
    ]
    for outputs, message in bad_specs:
        spec["steps"]["train"]["outputs"] = outputs
        with pytest.raises(ConfigError, match=message):
            parse_pipeline(spec, tmp_path / "mlops.yaml", tmp_path)
