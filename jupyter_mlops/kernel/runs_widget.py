"""``%mlops_runs``: a sortable runs table with a compare button, inside a notebook.

One output holds the ipywidgets view and a plain-text table, so JupyterLab shows the
widget while papermill, nbconvert and terminal IPython show the table. The rules (columns,
order, differences) are :mod:`jupyter_mlops.core.run_table`'s.
"""

from __future__ import annotations

import html
from dataclasses import asdict
from typing import Any

from jupyter_mlops.core.errors import NotFoundError
from jupyter_mlops.core.progress import format_table
from jupyter_mlops.core.run_table import START, compare, sort_keys, sort_runs, table_rows
from jupyter_mlops.core.settings import TrackingLocation
from jupyter_mlops.kernel.widgets import widget_bundle

DEFAULT_MAX_RUNS = 200


def load_runs(
    location: TrackingLocation, experiment: str, filter_string: str, max_results: int
) -> list[dict[str, Any]]:
    """The runs of ``experiment`` matching an MLflow search filter, newest first."""
    from jupyter_mlops.tracking.mlflow_store import MlflowRunStore

    if location.store_missing():
        raise NotFoundError(f"there is no tracking database yet at {location.uri}")
    store = MlflowRunStore(location)
    found = store._call(
        f"reading experiment {experiment}",
        lambda: store.client.get_experiment_by_name(experiment),
    )
    if found is None:
        raise NotFoundError(f"there is no experiment named {experiment!r}")
    runs = store.find_runs([str(found.experiment_id)], filter_string, max_results)
    return [asdict(run) for run in runs]


class RunsTable:
    """The widget and its plain twin; sorting and comparing happen in the kernel."""

    def __init__(self, runs: list[dict[str, Any]], title: str) -> None:
        self.runs = runs
        self.title = title
        self.sort_key = START
        self.descending = True
        self.widget: Any = None
        try:
            self._build()
        except Exception:  # no ipywidgets or no comm: the plain table serves
            self.widget = None

    # -- views ------------------------------------------------------------------------
    def ordered(self) -> list[dict[str, Any]]:
        return list(sort_runs(self.runs, self.sort_key, self.descending))  # type: ignore[arg-type]

    def plain(self) -> str:
        if not self.runs:
            return f"{self.title}: no runs"
        headers, rows = table_rows(self.ordered())
        return f"{self.title}: {len(self.runs)} runs\n" + format_table(headers, rows)

    def table_html(self) -> str:
        esc = html.escape
        if not self.runs:
            return f"<p>{esc(self.title)}: no runs</p>"
        headers, rows = table_rows(self.ordered())
        head = "".join(f"<th>{esc(h)}</th>" for h in headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in rows
        )
        return (
            f'<table class="jp-mlops-runs"><caption>{esc(self.title)} '
            f"({len(self.runs)} runs)</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )

    def comparison_html(self, run_ids: list[str]) -> str:
        esc = html.escape
        chosen = [r for r in self.runs if r["run_id"] in run_ids]
        rows = compare(chosen)
        head = "".join(f"<th>{esc(str(r.get('run_name') or r['run_id'][:8]))}</th>" for r in chosen)
        body = "".join(
            f'<tr class="{"jp-mlops-differs" if row.differs else ""}">'
            f"<td>{row.kind}</td><td>{esc(row.name)}</td>"
            + "".join(
                f"<td><b>{esc(v)}</b></td>" if row.differs else f"<td>{esc(v)}</td>"
                for v in row.values
            )
            + "</tr>"
            for row in rows
        )
        return (
            '<table class="jp-mlops-compare"><thead><tr><th></th><th></th>'
            f"{head}</tr></thead><tbody>{body}</tbody></table>"
            "<small>values that differ are in bold</small>"
        )

    # -- widgets ----------------------------------------------------------------------
    def _build(self) -> None:
        import ipywidgets as w

        self.sort = w.Dropdown(options=sort_keys(self.runs), value=START, description="Sort by")
        self.order = w.ToggleButtons(options=["desc", "asc"], value="desc")
        self.table = w.HTML(self.table_html())
        self.pick = w.SelectMultiple(
            options=[
                (f"{r.get('run_name') or ''} ({r['run_id'][:8]})", r["run_id"]) for r in self.runs
            ],
            description="Select",
            rows=min(8, max(2, len(self.runs))),
        )
        self.compare_button = w.Button(description="Compare", disabled=True, icon="columns")
        self.result = w.HTML("")
        self.sort.observe(self._resort, names="value")
        self.order.observe(self._resort, names="value")
        self.pick.observe(self._selected, names="value")
        self.compare_button.on_click(self._compare)
        self.widget = w.VBox(
            [
                w.HBox([self.sort, self.order]),
                self.table,
                w.HBox([self.pick, self.compare_button]),
                self.result,
            ]
        )

    def _resort(self, _change: Any = None) -> None:
        self.sort_key = self.sort.value
        self.descending = self.order.value == "desc"
        self.table.value = self.table_html()

    def _selected(self, _change: Any = None) -> None:
        self.compare_button.disabled = len(self.pick.value) < 2

    def _compare(self, _button: Any = None) -> None:
        self.result.value = self.comparison_html(list(self.pick.value))

    def _repr_mimebundle_(self, **_kwargs: Any) -> dict[str, Any]:
        return widget_bundle(self.widget, self.plain())
