"""References to a version of a notebook, as users type them: parsed, never fetched here.

``jupyter mlops diff A B``, ``review open`` and ``GET /jupyter-mlops/api/diff`` accept the
same references:

* ``run:ID`` or a bare MLflow run id (32 hex digits): the notebook behind that run;
* ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``: the notebook behind the run that
  produced that model version;
* ``git:REV:PATH``: the notebook as committed at ``REV`` (``PATH`` relative to where the
  command runs, or to the server's root);
* ``empty:``: a notebook without cells (what a first version is compared with);
* anything else: a notebook file.

Anything else shaped like a URI (``http:``, ``file:``, ``s3:``, ``ftp:``...) is refused.

URLs are refused outright: nbdime and papermill would fetch them, and a reviewer must
never make the server request an address a reference smuggled in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from jupyter_mlops.core.errors import ForbiddenPathError, UsageError
from jupyter_mlops.core.notebook_file import URL_REFERENCE

RefKind = Literal["run", "model", "git", "path", "empty"]

RUN_ID = re.compile(r"[0-9a-f]{32}")
#: ``scheme:`` of two characters or more (``C:`` is a drive): a URI, unless one of ours.
URI_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")
#: What MLflow accepts as a run id when a user writes ``run:ID`` (ids of other stores vary).
RUN_ID_LOOSE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MODEL_PREFIX = "models:/"
GIT_PREFIX = "git:"
RUN_PREFIX = "run:"
#: The empty notebook: the base of a review of a first version.
EMPTY_REF = "empty:"


@dataclass(frozen=True)
class NotebookRef:
    """One parsed reference. Only the fields of its ``kind`` are set."""

    kind: RefKind
    text: str
    run_id: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    model_alias: str | None = None
    rev: str | None = None
    path: str | None = None

    def __str__(self) -> str:
        return self.text


def parse_ref(text: str) -> NotebookRef:
    """Parse what a user typed; raises ``UsageError`` or ``ForbiddenPathError``."""
    ref = (text or "").strip()
    if not ref:
        raise UsageError("an empty notebook reference", hint=_FORMS)
    scheme = URI_SCHEME.match(ref)
    if URL_REFERENCE.match(ref) or (scheme and f"{scheme.group(1)}:" not in OUR_SCHEMES):
        raise ForbiddenPathError(
            f"{ref} is a URL; references are runs, models:/, git: or local notebook files",
            hint="nbdime and papermill would fetch a URL, so none is accepted",
        )
    if "\0" in ref:
        raise UsageError("a notebook reference cannot contain a NUL character")
    if ref == EMPTY_REF:
        return NotebookRef("empty", ref)
    if ref.startswith("models:"):
        return _model_ref(ref)
    if ref.startswith(GIT_PREFIX):
        return _git_ref(ref)
    if ref.startswith(RUN_PREFIX):
        run_id = ref[len(RUN_PREFIX) :]
        if not RUN_ID_LOOSE.fullmatch(run_id):
            raise UsageError(f"{ref}: {run_id!r} is not a run id")
        return NotebookRef("run", ref, run_id=run_id)
    if RUN_ID.fullmatch(ref):
        return NotebookRef("run", ref, run_id=ref)
    return NotebookRef("path", ref, path=ref)


OUR_SCHEMES = ("models:", "git:", "run:", "empty:")
_FORMS = "a run id, models:/NAME/VERSION, models:/NAME@ALIAS, git:REV:PATH or a notebook path"


def _model_ref(ref: str) -> NotebookRef:
    if not ref.startswith(MODEL_PREFIX):
        raise UsageError(f"{ref}: write models:/NAME/VERSION or models:/NAME@ALIAS")
    rest = ref[len(MODEL_PREFIX) :]
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        if name and alias and "/" not in alias:
            return NotebookRef("model", ref, model_name=name, model_alias=alias)
    else:
        name, _, version = rest.rpartition("/")
        if name and version.isdigit():
            return NotebookRef("model", ref, model_name=name, model_version=version)
    raise UsageError(
        f"{ref} is not a model version reference",
        hint="write models:/NAME/VERSION (a number) or models:/NAME@ALIAS",
    )


def _git_ref(ref: str) -> NotebookRef:
    rev, sep, path = ref[len(GIT_PREFIX) :].partition(":")
    if not sep or not rev or not path:
        raise UsageError(f"{ref}: write git:REV:PATH, for example git:HEAD~1:notebooks/train.ipynb")
    if rev.startswith("-") or any(c.isspace() or c in "\0" for c in rev):
        raise UsageError(f"{ref}: {rev!r} is not a git revision")
    return NotebookRef("git", ref, rev=rev, path=path)
