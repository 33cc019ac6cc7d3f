"""The run browser's read index against MLflow's own SQL search, on a real SQLite store.

Every page the index answers must be the page MLflow's ``search_runs`` answers for the
same filter, ordering and token; changes made after the index loaded must show on the
next page (new runs, metrics of an active run, an ended run) or after a reload (a tag on a
finished run, a deleted run).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import Metric, Param, RunTag

from jupyter_mlops.core.errors import UsageError
from jupyter_mlops.core.settings import resolve_tracking_location
from jupyter_mlops.tracking.mlflow_store import MlflowRunStore
from jupyter_mlops.tracking.run_index import RunIndex

ORDERINGS = [
    "attributes.start_time DESC",
    "attributes.start_time ASC",
    "metrics.acc DESC",
    "metrics.acc ASC",
    "params.lr ASC",
    "params.lr DESC",
    "attributes.run_name ASC",
    "attributes.status DESC",
    "metrics.`loss` ASC",
    "tags.`mlops.notebook` DESC",
]
FILTERS = [
    "",
    "metrics.acc > 0.5",
    "params.lr = '0.01'",
    "metrics.acc >= 0.25 and params.model != 'rf'",
    "tags.`mlops.notebook` = 'a.ipynb'",
    "attributes.run_name LIKE 'run-1%'",
    "attributes.status = 'FAILED'",
    "metrics.loss < 0.3 and metrics.acc > 0.1",
]


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> tuple[MlflowRunStore, list[str]]:
    """Two experiments of varied runs: ties, missing metrics and params, three statuses."""
    root: Path = tmp_path_factory.mktemp("index")
    store = MlflowRunStore(resolve_tracking_location(f"sqlite:///{root}/mlflow.db", cwd=root))
    client = store.client
    rnd = random.Random(7)
    experiments = [client.create_experiment("a"), client.create_experiment("b")]
    for i in range(48):
        experiment = experiments[i % 2]
        run = client.create_run(experiment, run_name=f"run-{i}", start_time=1_000_000 + i // 3)
        metrics = []
        if i % 5:  # some runs lack acc
            metrics.append(Metric("acc", rnd.choice([0.1, 0.25, 0.5, 0.75, 0.9]), 0, 0))
        if i % 7:
            metrics.append(Metric("loss", round(rnd.random(), 2), 0, 0))
        params = [Param("model", rnd.choice(["rf", "gb", "lr"]))]
        if i % 4:
            params.append(Param("lr", rnd.choice(["0.1", "0.01", "0.001"])))
        tags = [RunTag("mlops.notebook", rnd.choice(["a.ipynb", "b.ipynb"]))]
        client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=tags)
        status = ["FINISHED", "FAILED", "RUNNING"][i % 3]
        if status != "RUNNING":
            client.set_terminated(run.info.run_id, status, end_time=2_000_000 + i)
    return store, experiments


def mlflow_pages(store: MlflowRunStore, experiments: list[str], filt: str, order: str) -> list[str]:
    ids: list[str] = []
    token = None
    while True:
        page = store.client.search_runs(
            experiments, filter_string=filt, order_by=[order], max_results=7, page_token=token
        )
        ids += [r.info.run_id for r in page]
        token = page.token
        if not token:
            return ids


def index_pages(index: RunIndex, experiments: list[str], filt: str, order: str) -> list[str]:
    ids: list[str] = []
    token = None
    while True:
        page = index.page(experiments, filt, order, token, 7)
        assert page is not None
        ids += [r.info.run_id for r in page.runs]
        assert page.next_page_token is None or isinstance(page.next_page_token, str)
        token = page.next_page_token
        if not token:
            return ids


def ready_index(store: MlflowRunStore) -> RunIndex:
    index = RunIndex(lambda: store)
    assert index.wait_ready(timeout=60), index.last_error
    return index


@pytest.mark.parametrize("order", ORDERINGS)
def test_every_ordering_pages_as_mlflow_does(populated: Any, order: str) -> None:
    store, experiments = populated
    index = ready_index(store)
    for experiment_ids in (experiments, experiments[:1]):
        expected = mlflow_pages(store, experiment_ids, "", order)
        assert index_pages(index, experiment_ids, "", order) == expected, order


@pytest.mark.parametrize("filt", FILTERS)
def test_every_filter_selects_as_mlflow_does(populated: Any, filt: str) -> None:
    store, experiments = populated
    index = ready_index(store)
    for order in ("metrics.acc DESC", "attributes.start_time DESC"):
        expected = mlflow_pages(store, experiments, filt, order)
        assert index_pages(index, experiments, filt, order) == expected, (filt, order)


def test_a_page_token_from_mlflow_continues_in_the_index(populated: Any) -> None:
    store, experiments = populated
    index = ready_index(store)
    first = store.client.search_runs(experiments, order_by=["metrics.acc DESC"], max_results=10)
    second = index.page(experiments, "", "metrics.acc DESC", first.token, 10)
    assert second is not None
    expected = mlflow_pages(store, experiments, "", "metrics.acc DESC")[10:20]
    assert [r.info.run_id for r in second.runs] == expected


def test_refused_filters_orderings_and_tokens_are_usage_errors(populated: Any) -> None:
    store, experiments = populated
    index = ready_index(store)
    with pytest.raises(UsageError, match="searching runs"):
        index.page(experiments, "metrics.acc >>> 1", "metrics.acc DESC", None, 5)
    with pytest.raises(UsageError, match="searching runs"):
        index.page(experiments, "", "nonsense.acc DESC", None, 5)
    with pytest.raises(UsageError, match="searching runs"):
        index.page(experiments, "", "metrics.acc DESC", "not-a-token", 5)


def test_the_index_answers_none_until_loaded_then_pages(tmp_path: Path) -> None:
    store = MlflowRunStore(
        resolve_tracking_location(f"sqlite:///{tmp_path}/mlflow.db", cwd=tmp_path)
    )
    experiment = store.client.create_experiment("e")
    store.client.create_run(experiment)
    index = RunIndex(lambda: store)
    first = index.page([experiment], "", "attributes.start_time DESC", None, 5)
    assert index.wait_ready()
    assert first is None or len(first.runs) == 1  # the load may beat the first page
    page = index.page([experiment], "", "attributes.start_time DESC", None, 5)
    assert page is not None and len(page.runs) == 1


def test_changes_after_loading_show_on_the_next_page(tmp_path: Path) -> None:
    store = MlflowRunStore(
        resolve_tracking_location(f"sqlite:///{tmp_path}/mlflow.db", cwd=tmp_path)
    )
    client = store.client
    experiment = client.create_experiment("e")
    active = client.create_run(experiment, run_name="active").info.run_id
    done = client.create_run(experiment, run_name="done").info.run_id
    client.log_batch(done, metrics=[Metric("acc", 0.5, 0, 0)])
    client.set_terminated(done, "FINISHED")
    index = ready_index(store)

    def shown(order: str = "metrics.acc DESC") -> dict[str, Any]:
        page = index.page([experiment], "", order, None, 50)
        assert page is not None
        return {r.info.run_id: r for r in page.runs}

    assert set(shown()) == {active, done}
    # a new run, a metric of the active run: both on the next page, sorted in place
    new = client.create_run(experiment, run_name="new").info.run_id
    client.log_batch(new, metrics=[Metric("acc", 0.7, 0, 0)])
    client.log_batch(active, metrics=[Metric("acc", 0.9, 0, 0)])
    runs = shown()
    assert list(runs) == [active, new, done]
    assert runs[active].data.metrics == {"acc": 0.9}
    # the active run ends
    client.set_terminated(active, "FAILED")
    assert shown()[active].info.status == "FAILED"
    # a tag on a finished run and a deleted run move no time: a reload brings them
    client.set_tag(done, "mlops.review.state", "approved")
    client.delete_run(new)
    index.load()
    runs = shown()
    assert set(runs) == {active, done}
    assert runs[done].data.tags["mlops.review.state"] == "approved"


def test_a_full_reload_starts_by_itself_once_the_index_is_old(tmp_path: Path) -> None:
    now = [0.0]
    store = MlflowRunStore(
        resolve_tracking_location(f"sqlite:///{tmp_path}/mlflow.db", cwd=tmp_path)
    )
    client = store.client
    experiment = client.create_experiment("e")
    # long finished: a sync looks back only seconds from the newest run
    run = client.create_run(experiment, start_time=1_000_000).info.run_id
    client.set_terminated(run, "FINISHED", end_time=1_000_100)
    client.create_run(experiment)
    index = RunIndex(lambda: store, full_reload_s=60, clock=lambda: now[0])
    assert index.wait_ready()
    client.set_tag(run, "late", "yes")
    page = index.page([experiment], "tags.late = 'yes'", "attributes.start_time DESC", None, 5)
    assert page is not None and page.runs == []  # not yet: no time moved
    now[0] = 61.0
    index.page([experiment], "", "attributes.start_time DESC", None, 5)  # starts the reload
    thread = index._loading
    if thread is not None:
        thread.join(30)
    page = index.page([experiment], "tags.late = 'yes'", "attributes.start_time DESC", None, 5)
    assert page is not None and [r.info.run_id for r in page.runs] == [run]


def test_on_a_tracking_server_the_index_pages_as_the_server_does(
    tmp_path: Path, mlflow_server: Any
) -> None:
    """The remote set-up: the index reads through the server's REST search like any client."""
    store = MlflowRunStore(resolve_tracking_location(mlflow_server.uri, cwd=tmp_path))
    client = store.client
    experiment = client.create_experiment(f"index-{tmp_path.name}")
    for i in range(9):
        run = client.create_run(experiment, run_name=f"remote-{i}").info.run_id
        metrics = [Metric("acc", (i * 7 % 5) / 5, 0, 0)] if i % 3 else []
        client.log_batch(run, metrics=metrics, params=[Param("lr", str(i % 2))])
        client.set_terminated(run, "FINISHED")
    index = ready_index(store)
    for order in ("metrics.acc DESC", "params.lr ASC", "attributes.start_time DESC"):
        for filt in ("", "metrics.acc > 0.3"):
            expected = mlflow_pages(store, [experiment], filt, order)
            assert index_pages(index, [experiment], filt, order) == expected, (order, filt)
    # a run started after loading shows on the next page, over HTTP too
    late = client.create_run(experiment, run_name="late").info.run_id
    page = index.page([experiment], "", "attributes.start_time DESC", None, 1)
    assert page is not None and [r.info.run_id for r in page.runs] == [late]
