"""Reading a notebook a user named, with errors that say what is wrong with it.

Validation uses nbformat's schema, imported here and not at module import, so the
kernel path (which reads notebooks through ``snapshot.py``) never pays for jsonschema.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jupyter_mlops.core.errors import ForbiddenPathError, InvalidNotebookError, NotFoundError

CELL_TYPES = ("code", "markdown", "raw")
#: ``scheme://`` with a scheme of two characters or more (``C:\\`` is a drive, not a URL).
URL_REFERENCE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")


def local_path(reference: str) -> Path:
    """The path a user named; URLs (``https://``, ``s3://``, ``file://``...) are refused."""
    if URL_REFERENCE.match(reference.strip()):
        raise ForbiddenPathError(
            f"{reference} is a URL; only local notebook files are read",
            hint="download it first",
        )
    return Path(reference)


def duplicate_cell_id(cells: list[Any]) -> tuple[str, int, int] | None:
    """The first cell id used twice, with the 1-based numbers of both cells; None if unique."""
    seen: dict[str, int] = {}
    for number, cell in enumerate(cells, start=1):
        cell_id = cell.get("id") if isinstance(cell, dict) else None
        if not isinstance(cell_id, str):
            continue
        if cell_id in seen:
            return cell_id, seen[cell_id], number
        seen[cell_id] = number
    return None


def read_notebook(path: Path) -> dict[str, Any]:
    """The notebook at ``path`` as a JSON dict, validated against the nbformat 4 schema."""
    if not path.exists():
        raise NotFoundError(f"notebook {path} does not exist")
    if not path.is_file():
        raise InvalidNotebookError(f"{path} is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidNotebookError(f"cannot read {path}: {error}") from None
    return parse_notebook(text, str(path))


def parse_notebook(text: str | bytes, where: str) -> dict[str, Any]:
    """``text`` as a notebook JSON dict, validated; ``where`` names it in the errors.

    Used for files and for notebooks that come from elsewhere (a run's artifact, a git
    revision), so that every source gets the same checks and the same messages.
    """
    try:
        data = json.loads(text)
    except UnicodeDecodeError as error:
        raise InvalidNotebookError(f"{where} is not a notebook: {error}") from None
    except json.JSONDecodeError as error:
        raise InvalidNotebookError(
            f"{where} is not a notebook: invalid JSON at line {error.lineno} "
            f"column {error.colno}: {error.msg}"
        ) from None
    if isinstance(data, dict) and "nbformat" in data and data["nbformat"] != 4:
        # nbformat 3 keeps its cells under 'worksheets': name the version, not the missing list.
        raise InvalidNotebookError(
            f"{where}: nbformat {data['nbformat']!r} is not supported (expected 4)"
        )
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise InvalidNotebookError(f"{where} is not a notebook: no 'cells' list")
    if data.get("nbformat") != 4:
        raise InvalidNotebookError(
            f"{where}: nbformat {data.get('nbformat')!r} is not supported (expected 4)"
        )
    for number, cell in enumerate(data["cells"], start=1):
        # nbformat's validator itself fails (TypeError) on a cell without a known type.
        if not isinstance(cell, dict) or cell.get("cell_type") not in CELL_TYPES:
            kind = cell.get("cell_type") if isinstance(cell, dict) else type(cell).__name__
            raise InvalidNotebookError(
                f"{where} is not a valid notebook: cell {number} has no known cell_type "
                f"({kind!r}; expected code, markdown or raw)"
            )
    duplicate = duplicate_cell_id(data["cells"])
    if duplicate is not None:
        # nbformat's validation renames a duplicate id with a warning instead of refusing it.
        cell_id, first, second = duplicate
        raise InvalidNotebookError(
            f"{where} is not a valid notebook: cells {first} and {second} have the same id "
            f"{cell_id!r}"
        )
    import nbformat

    try:
        node = nbformat.from_dict(data)  # type: ignore[no-untyped-call]
        nbformat.validate(node)
    except nbformat.ValidationError as error:
        message = str(error.message) if hasattr(error, "message") else str(error)
        raise InvalidNotebookError(
            f"{where} is not a valid notebook: {_where(error)}{message.splitlines()[0][:200]}"
        ) from None
    except Exception as error:  # the validator's own failures on shapes it did not expect
        raise InvalidNotebookError(
            f"{where} is not a valid notebook: the schema check failed "
            f"({type(error).__name__}: {str(error)[:200]})"
        ) from None
    return data


def _where(error: Exception) -> str:
    """``cell 3 execution_count: `` from a schema error's location, or nothing."""
    location = list(getattr(error, "absolute_path", None) or [])
    if len(location) >= 2 and location[0] == "cells" and isinstance(location[1], int):
        rest = " ".join(str(part) for part in location[2:])
        return f"cell {location[1] + 1}{' ' + rest if rest else ''}: "
    if location:
        return " ".join(str(part) for part in location) + ": "
    return ""
