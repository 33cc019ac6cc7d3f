"""Notebook snapshots: normalized, masked, content-addressed.

A snapshot is the notebook as it was when a tracked cell ran. Two snapshots that differ
only in volatile metadata (timestamps, papermill timings, scroll state, widget state) are
the same snapshot: they normalize to the same bytes and the same SHA-256, so a run
stores an unchanged notebook once.

Works on the plain JSON dict, without nbformat: nbformat imports jsonschema, which costs
seconds on some installs, and this runs inside the user's kernel.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from jupyter_mlops.core.errors import InvalidNotebookError
from jupyter_mlops.core.secrets import SecretMasker

#: Notebook-level metadata keys that change without the notebook changing.
VOLATILE_NOTEBOOK_METADATA = ("widgets", "papermill", "execution", "toc-autonumbering")
#: Cell-level metadata keys that change without the cell changing.
VOLATILE_CELL_METADATA = (
    "execution",
    "collapsed",
    "scrolled",
    "papermill",
    "jupyter",
    "ExecuteTime",
)
TEXT_MIMETYPES = ("text/plain", "text/html", "text/markdown", "text/latex", "application/json")
#: Size policy of what leaves the kernel or the runner (snapshots, executed notebooks):
#: an output over MAX_OUTPUT_CHARS, and every output once the notebook's outputs passed
#: MAX_NOTEBOOK_OUTPUT_CHARS, is replaced by a one-line stub naming its size and hash.
#: The notebook on disk keeps everything; the copy in the store stays small and fast to
#: mask, hash and diff.
MAX_OUTPUT_CHARS = 2_000_000
MAX_NOTEBOOK_OUTPUT_CHARS = 20_000_000


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def normalize_notebook(notebook: dict[str, Any]) -> dict[str, Any]:
    """A copy without volatile metadata, with multi-line strings joined (nbformat allows both)."""
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise InvalidNotebookError("not a notebook: expected a JSON object with a 'cells' list")
    nb = join_multiline(copy.deepcopy(notebook))
    metadata = nb.setdefault("metadata", {})
    for key in VOLATILE_NOTEBOOK_METADATA:
        metadata.pop(key, None)
    for cell in nb["cells"]:
        cell_meta = cell.setdefault("metadata", {})
        for key in VOLATILE_CELL_METADATA:
            cell_meta.pop(key, None)
    return nb


def join_multiline(nb: dict[str, Any]) -> dict[str, Any]:
    """Join the list-of-lines form of sources and text outputs into strings, in place."""
    for cell in nb["cells"]:
        if not isinstance(cell, dict):
            raise InvalidNotebookError("not a notebook: a cell is not a JSON object")
        cell["source"] = _text(cell.get("source", ""))
        for output in cell.get("outputs", []) or []:
            if "text" in output:
                output["text"] = _text(output["text"])
            for mime, value in (output.get("data") or {}).items():
                if isinstance(value, list):
                    output["data"][mime] = _text(value)
    return nb


def masked_copy(notebook: dict[str, Any], masker: SecretMasker) -> dict[str, Any]:
    """A copy with secrets masked and everything else (metadata, outputs) kept, large
    outputs stubbed by the size policy."""
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise InvalidNotebookError("not a notebook: expected a JSON object with a 'cells' list")
    return mask_notebook(stub_large_outputs(join_multiline(copy.deepcopy(notebook))), masker)


def _output_chars(output: dict[str, Any]) -> int:
    size = len(output.get("text", "") or "") + len(output.get("evalue", "") or "")
    size += sum(len(str(line)) for line in output.get("traceback", []) or [])
    for value in (output.get("data") or {}).values():
        size += len(value) if isinstance(value, str) else len(json.dumps(value))
    return size


def _stub(output: dict[str, Any], size: int, why: str) -> dict[str, Any]:
    digest = hashlib.sha256(json.dumps(output, sort_keys=True).encode()).hexdigest()[:16]
    kinds = ", ".join(sorted(output.get("data") or {})) or output.get("name", "")
    note = (
        f"[jupyter-mlops: a {output.get('output_type', 'output')} output ({kinds}) of "
        f"{size / 1e6:.1f} MB was left out of this copy: {why}; sha256 {digest}]\n"
    )
    kind = output.get("output_type")
    if kind == "stream":
        return {"output_type": "stream", "name": output.get("name", "stdout"), "text": note}
    if kind == "error":
        return {**output, "evalue": (output.get("evalue") or "")[:1000], "traceback": [note]}
    stub: dict[str, Any] = {"output_type": kind, "data": {"text/plain": note}, "metadata": {}}
    if kind == "execute_result":
        stub["execution_count"] = output.get("execution_count")
    return stub


def stub_large_outputs(nb: dict[str, Any]) -> dict[str, Any]:
    """Apply the size policy in place (multi-line strings must be joined already)."""
    total = 0
    for cell in nb["cells"]:
        outputs = cell.get("outputs")
        if not outputs:
            continue
        for index, output in enumerate(outputs):
            size = _output_chars(output)
            if size > MAX_OUTPUT_CHARS:
                outputs[index] = _stub(output, size, f"over {MAX_OUTPUT_CHARS / 1e6:.0f} MB")
            elif total + size > MAX_NOTEBOOK_OUTPUT_CHARS:
                limit = f"the notebook's outputs passed {MAX_NOTEBOOK_OUTPUT_CHARS / 1e6:.0f} MB"
                outputs[index] = _stub(output, size, limit)
            else:
                total += size
    return nb


def mask_notebook(nb: dict[str, Any], masker: SecretMasker) -> dict[str, Any]:
    """Mask secrets in sources and text outputs, in place; binary outputs are left alone."""
    for cell in nb["cells"]:
        cell["source"] = masker.mask(cell.get("source", ""))
        for output in cell.get("outputs", []) or []:
            if "text" in output:
                output["text"] = masker.mask(output["text"])
            if "evalue" in output:
                output["evalue"] = masker.mask(output["evalue"])
            if "traceback" in output:
                output["traceback"] = [masker.mask(line) for line in output["traceback"]]
            data = output.get("data") or {}
            for mime in TEXT_MIMETYPES:
                if mime in data:
                    value = data[mime]
                    data[mime] = (
                        masker.mask(value) if isinstance(value, str) else masker.mask_value(value)
                    )
    return nb


def canonical_bytes(nb: dict[str, Any]) -> bytes:
    """Deterministic JSON for hashing and storing (sorted keys, one-space indent like nbformat)."""
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False).encode() + b"\n"


def prepare_snapshot(notebook: dict[str, Any], masker: SecretMasker) -> tuple[str, bytes]:
    """Normalize, mask and hash: ``(sha256, bytes to store)``.

    The hash is of the masked notebook, so what is stored is what the hash names.
    """
    nb = mask_notebook(stub_large_outputs(normalize_notebook(notebook)), masker)
    data = canonical_bytes(nb)
    return hashlib.sha256(data).hexdigest(), data
