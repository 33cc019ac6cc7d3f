"""The live run panel under ``%mlops_track``: ipywidgets where a widget frontend is, text elsewhere.

The panel is displayed as one output whose bundle holds both the widget view and a
plain-text line, so JupyterLab renders the widget while papermill, nbconvert and
terminal IPython show the line.
"""

from __future__ import annotations

import html
from typing import Any

from jupyter_mlops.core.session import TrackingSession

MAX_ROWS = 12
#: Beside the provisional id of a run started while the store did not answer.
NOT_CREATED = "not in the store yet: its records wait in the spool until the store answers"


def widget_bundle(widget: Any, plain: str) -> dict[str, Any]:
    """One output for every frontend: the widget's view where widgets render, ``plain``
    where they do not (papermill, nbconvert, terminal IPython)."""
    bundle: dict[str, Any] = {}
    if widget is not None:
        bundle.update(widget._repr_mimebundle_() or {})
    bundle["text/plain"] = plain
    return bundle


class RunPanel:
    """Run name and link, params and the latest metrics, refreshed as tracked cells run."""

    def __init__(self, session: TrackingSession, notebook_path: str | None) -> None:
        self.session = session
        self.notebook_path = notebook_path
        self._widget: Any = None
        try:
            import ipywidgets

            self._widget = ipywidgets.HTML(value=self.html())
        except Exception:  # no ipywidgets or no comm: the plain line serves
            self._widget = None

    def link(self) -> str | None:
        from jupyter_mlops import api

        handle = self.session.handle
        location = api._location
        if handle is None or location is None or location.kind != "http":
            return None
        if not handle.experiment_id:  # started offline, not created in the store yet
            return None
        from jupyter_mlops.core.settings import redact_uri

        base = redact_uri(location.uri).replace("***@", "").rstrip("/")
        return f"{base}/#/experiments/{handle.experiment_id}/runs/{handle.run_id}"

    def plain(self) -> str:
        handle = self.session.handle
        run = f"{handle.run_name} ({handle.run_id})" if handle else "starting"
        line = f"mlops: tracking run {run} in experiment {self.session.experiment!r}"
        return f"{line}; {NOT_CREATED}" if self.provisional() else line

    def provisional(self) -> bool:
        """Whether the run was started offline and the store has not created it yet."""
        from jupyter_mlops.tracking.spool import is_offline_id

        handle = self.session.handle
        return handle is not None and is_offline_id(handle.run_id)

    def html(self) -> str:
        handle = self.session.handle
        esc = html.escape
        title = esc(handle.run_name or handle.run_id) if handle else "starting…"
        link = self.link()
        if link:
            title = f'<a href="{esc(link)}" target="_blank" rel="noopener">{title}</a>'
        rows = [
            f"<b>MLOps run</b> {title} · experiment <code>{esc(self.session.experiment)}</code>"
        ]
        if handle:
            note = f", {NOT_CREATED}" if self.provisional() else ""
            rows.append(f"<small>run id <code>{esc(handle.run_id)}</code>{esc(note)}</small>")
        params = list(self.session.params.items())[:MAX_ROWS]
        if params:
            rows.append(
                "params: " + ", ".join(f"{esc(k)}=<code>{esc(v)}</code>" for k, v in params)
            )
        metrics = list(self.session.latest_metrics.items())[:MAX_ROWS]
        if metrics:
            rows.append("metrics: " + ", ".join(f"{esc(k)}=<b>{v:.6g}</b>" for k, v in metrics))
        return '<div class="jp-mlops-run-panel">' + "<br>".join(rows) + "</div>"

    def refresh(self) -> None:
        if self._widget is not None:
            self._widget.value = self.html()

    def _repr_mimebundle_(self, **_kwargs: Any) -> dict[str, Any]:
        return widget_bundle(self._widget, self.plain())

    def show(self) -> None:
        from IPython.display import display

        display(self)  # type: ignore[no-untyped-call]
