"""The notebook behind a reference: a run, a model version, a git revision or a file.

Every diff, review and history reads notebooks through here, so that "the notebook
behind run X" means one thing everywhere:

* a ``jupyter mlops run`` (papermill) run: its executed notebook, outputs included (the
  result a reviewer judges), else the input snapshot when the execution left nothing;
* an interactive (``%mlops_track``) run: its latest notebook snapshot;
* a model version: the notebook behind the run that logged it.

Paths are read relative to ``cwd``; with a ``root`` (the server's), a path or a git path
that leaves it is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_mlops.core.errors import ForbiddenPathError, NotFoundError, UsageError
from jupyter_mlops.core.notebook_file import parse_notebook, read_notebook
from jupyter_mlops.core.notebook_refs import NotebookRef, parse_ref
from jupyter_mlops.core.session import TAG_SNAPSHOT
from jupyter_mlops.core.settings import TrackingLocation
from jupyter_mlops.core.snapshot import canonical_bytes
from jupyter_mlops.execution.runner import EXECUTED_ARTIFACT, TAG_INPUT_NOTEBOOK, TAG_INPUT_SNAPSHOT
from jupyter_mlops.tracking.environment import TAG_NOTEBOOK

SNAPSHOT_FOLDER = "snapshots"
GIT_TIMEOUT_S = 20


@dataclass
class NotebookVersion:
    """A resolved reference: the notebook, a label for people, and where it came from."""

    ref: str
    label: str
    notebook: dict[str, Any]
    run_id: str | None = None
    model_name: str | None = None
    model_version: str | None = None


def empty_notebook() -> dict[str, Any]:
    """What a diff compares against when there is no base (a first version)."""
    return {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def notebook_digest(notebook: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(canonical_bytes(notebook)).hexdigest()


class NotebookVersions:
    """Resolves references against one tracking location, one folder and maybe one root."""

    def __init__(
        self,
        location: TrackingLocation,
        cwd: Path,
        root: Path | None = None,
        store: Any | None = None,
    ) -> None:
        self.location = location
        self.cwd = cwd.resolve()
        self.root = root.resolve() if root is not None else None
        self._store = store

    @property
    def store(self) -> Any:
        if self._store is None:
            if self.location.store_missing():
                raise NotFoundError(
                    f"there is no tracking database yet at {self.location.uri}",
                    hint="track or run a notebook first",
                )
            from jupyter_mlops.tracking.mlflow_store import MlflowRunStore

            self._store = MlflowRunStore(self.location)
        return self._store

    # -- references -------------------------------------------------------------------
    def resolve(self, text: str | NotebookRef) -> NotebookVersion:
        ref = parse_ref(text) if isinstance(text, str) else text
        if ref.kind == "run":
            assert ref.run_id is not None
            return self.run_notebook(ref.run_id, ref.text)
        if ref.kind == "model":
            assert ref.model_name is not None
            version, run_id = self.store.model_version_run(
                ref.model_name, ref.model_version, ref.model_alias
            )
            found = self.run_notebook(run_id, ref.text)
            found.label = f"{ref.model_name} v{version} (run {run_id[:8]})"
            found.model_name, found.model_version = ref.model_name, version
            return found
        if ref.kind == "empty":
            return NotebookVersion(ref.text, "(empty notebook)", empty_notebook())
        if ref.kind == "git":
            assert ref.rev is not None and ref.path is not None
            return self._git_notebook(ref)
        assert ref.path is not None
        path = self.local_path(ref.path)
        return NotebookVersion(ref.text, self._shown(path), read_notebook(path))

    def local_path(self, text: str) -> Path:
        """``text`` as a path under ``cwd``; refused when it leaves ``root``.

        Under a root the check is made twice: on the path as written (``..`` folded, no
        file system access, so nothing outside the root is even looked at), then on the
        resolved path (a symlink inside the root that points out of it is refused too).
        """
        if "\0" in text:
            raise UsageError("a path cannot contain a NUL character")
        if self.root is None:
            return (self.cwd / Path(text).expanduser()).resolve()
        lexical = Path(os.path.normpath(self.cwd / text))
        if not lexical.is_relative_to(self.root):
            raise ForbiddenPathError(f"{text} is outside the folder this server serves")
        if any(part.startswith(".") for part in lexical.relative_to(self.root).parts):
            # As jupyter_server's contents API: hidden files are not served (.mlops, .git).
            raise ForbiddenPathError(f"{text} is in a hidden folder or is a hidden file")
        path = lexical.resolve()
        if not path.is_relative_to(self.root):
            raise ForbiddenPathError(f"{text} is outside the folder this server serves")
        return path

    def _shown(self, path: Path) -> str:
        base = self.root or self.cwd
        return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)

    # -- runs -------------------------------------------------------------------------
    def run_notebook(self, run_id: str, ref: str | None = None) -> NotebookVersion:
        run = self.store.get_run(run_id)
        label = f"run {run.run_name or run_id[:8]} ({run_id[:8]})"
        notebook = self._executed(run) or self._latest_snapshot(run)
        if notebook is None:
            raise NotFoundError(
                f"run {run_id} has no notebook: it was not tracked by jupyter-mlops "
                "or its notebook artifacts were deleted"
            )
        return NotebookVersion(ref or run_id, label, notebook, run_id=run_id)

    def _executed(self, run: Any) -> dict[str, Any] | None:
        input_path = run.tags.get(TAG_INPUT_NOTEBOOK)
        if not input_path:
            return None
        name = Path(input_path).name
        data = self.store.find_artifact(run.run_id, f"{EXECUTED_ARTIFACT}/{name}")
        if data is None:
            return self._snapshot(run.run_id, run.tags.get(TAG_INPUT_SNAPSHOT))
        return parse_notebook(data, f"the executed notebook of run {run.run_id}")

    def _latest_snapshot(self, run: Any) -> dict[str, Any] | None:
        return self._snapshot(run.run_id, run.tags.get(TAG_SNAPSHOT))

    def _snapshot(self, run_id: str, digest: str | None) -> dict[str, Any] | None:
        if not digest:
            return None
        data = self.store.find_artifact(run_id, f"{SNAPSHOT_FOLDER}/{digest}.ipynb")
        if data is None:
            return None
        return parse_notebook(data, f"snapshot {digest[:12]} of run {run_id}")

    # -- git --------------------------------------------------------------------------
    def _git_notebook(self, ref: NotebookRef) -> NotebookVersion:
        assert ref.rev is not None and ref.path is not None
        path = self.local_path(ref.path)
        folder = path.parent if path.parent.is_dir() else self.cwd
        top = self._git(folder, "rev-parse", "--show-toplevel").strip()
        if not top:
            raise NotFoundError(f"{ref.text}: {folder} is not inside a git repository")
        top_path = Path(top).resolve()
        if not path.is_relative_to(top_path):
            raise ForbiddenPathError(f"{ref.text}: {ref.path} is outside the git repository")
        commit = self._git(folder, "rev-parse", "--verify", "--quiet", f"{ref.rev}^{{commit}}")
        if not commit.strip():
            raise NotFoundError(f"{ref.text}: git knows no revision {ref.rev!r}")
        inside = path.relative_to(top_path).as_posix()
        text = self._git(folder, "show", f"{commit.strip()}:{inside}", missing_ok=False)
        label = f"{inside} @ {ref.rev} ({commit.strip()[:8]})"
        return NotebookVersion(ref.text, label, parse_notebook(text, ref.text))

    def _git(self, folder: Path, *args: str, missing_ok: bool = True) -> str:
        try:
            result = subprocess.run(
                ["git", "-C", str(folder), *args],
                capture_output=True,
                text=True,
                timeout=GIT_TIMEOUT_S,
            )
        except FileNotFoundError:
            raise UsageError("git: references need git, which is not installed") from None
        except subprocess.TimeoutExpired:
            raise UsageError(f"git {args[0]} took more than {GIT_TIMEOUT_S} s") from None
        if result.returncode != 0:
            if missing_ok:
                return ""
            message = (result.stderr.strip().splitlines() or ["failed"])[-1]
            raise NotFoundError(f"git {args[0]} {args[-1]}: {message}")
        return result.stdout


# -- history ----------------------------------------------------------------------------
@dataclass
class HistoryEntry:
    time_ms: int | None
    run_id: str
    run_name: str
    digest: str
    cells_changed: int | None  # None: the first one listed


def _same_notebook(tag: str, path: Path, project_root: Path) -> bool:
    tagged = Path(tag)
    if not tagged.is_absolute():
        tagged = project_root / tagged
    return tagged.resolve() == path


def _snapshot_order(store: Any, run: Any) -> list[tuple[str, int | None]]:
    """The snapshots of one run with the time each was first used, oldest first."""
    names = store.list_artifacts(run.run_id, SNAPSHOT_FOLDER)
    digests = [Path(n).stem for n in names if n.endswith(".ipynb")]
    first_seen: dict[str, int] = {}
    cells = store.find_artifact(run.run_id, "cells.jsonl") if run.tags.get(TAG_SNAPSHOT) else None
    for line in (cells or b"").decode("utf-8", "replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        digest, started = record.get("snapshot"), record.get("started")
        if isinstance(digest, str) and isinstance(started, (int, float)):
            first_seen.setdefault(digest, int(started * 1000))
    start = run.start_time_ms
    return sorted(
        ((d, first_seen.get(d, start)) for d in digests),
        key=lambda item: (item[1] or 0, digests.index(item[0])),
    )


def cells_changed(diff: list[dict[str, Any]]) -> int:
    """How many cells a notebook diff adds, removes or modifies."""
    count = 0
    for entry in diff:
        if entry.get("key") != "cells":
            continue
        for op in entry.get("diff", []):
            if op["op"] == "addrange":
                count += len(op["valuelist"])
            elif op["op"] == "removerange":
                count += int(op["length"])
            else:
                count += 1
    return count


def notebook_history(
    versions: NotebookVersions, notebook: str, within_root: bool = True
) -> list[HistoryEntry]:
    """Every snapshot of ``notebook`` across runs, oldest first, with cells changed.

    ``within_root=False`` is for a path taken from a run's own tags (a review looking for
    the run before its candidate), not from a user.
    """
    from jupyter_mlops.core.notebook_diff import diff_notebooks

    path = versions.local_path(notebook) if within_root else Path(notebook).resolve()
    store = versions.store
    project_root = versions.location.project_root
    escaped = path.name.replace("'", "\\'")
    experiment_ids = store.experiment_ids()
    runs: dict[str, Any] = {}
    for tag in (TAG_NOTEBOOK, TAG_INPUT_NOTEBOOK):
        for run in store.find_runs(experiment_ids, f"tags.`{tag}` LIKE '%{escaped}'"):
            if _same_notebook(run.tags.get(tag, ""), path, project_root):
                runs[run.run_id] = run
    entries: list[tuple[int | None, Any, str]] = []
    for run in runs.values():
        entries += [(time, run, digest) for digest, time in _snapshot_order(store, run)]
    entries.sort(key=lambda e: (e[0] or 0, e[1].run_id))
    history: list[HistoryEntry] = []
    previous: dict[str, Any] | None = None
    previous_digest = None
    for time_ms, run, digest in entries:
        changed: int | None = None
        if previous_digest == digest:
            changed = 0
            current = previous
        else:
            current = versions._snapshot(run.run_id, digest)
            if current is not None and previous is not None:
                changed = cells_changed(diff_notebooks(previous, current))
        history.append(HistoryEntry(time_ms, run.run_id, run.run_name, digest, changed))
        if current is not None:
            previous, previous_digest = current, digest
    return history
