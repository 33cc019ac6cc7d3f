"""Did the cells run out of order? Two signs, both from the notebook's own cells.

1. A tracked cell reads a name that no cell above it binds but a cell below it does:
   the result depends on a cell that runs later when the notebook runs top to bottom.
2. The tracked cells ran at positions that go back up the notebook (execution order
   not increasing top to bottom).

Per-cell analyses are cached by source hash, so a notebook that changed in one cell
costs one ``ast.parse``, not one per cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jupyter_mlops.core.cells import CellAnalysis, analyze_source, source_hash


@lru_cache(maxsize=4096)
def _bound_names(source: str) -> frozenset[str]:
    analysis = analyze_source(source)
    return frozenset(analysis.literal_bindings) | frozenset(analysis.computed_bindings)


@dataclass(frozen=True)
class IndexedCell:
    cell_id: str | None
    source_sha256: str
    bound: frozenset[str]


@dataclass(frozen=True)
class NotebookIndex:
    """The code cells of a notebook, in order, with what each binds."""

    cells: tuple[IndexedCell, ...]

    @classmethod
    def of(cls, notebook: dict[str, Any]) -> NotebookIndex:
        indexed = []
        for cell in notebook.get("cells", []):
            if cell.get("cell_type") != "code":
                continue
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else str(source)
            indexed.append(IndexedCell(cell.get("id"), source_hash(source), _bound_names(source)))
        return cls(tuple(indexed))

    def position(self, cell_id: str | None, digest: str) -> int | None:
        """Where a cell is: by id when the frontend told us, else by its source."""
        if cell_id is not None:
            for index, cell in enumerate(self.cells):
                if cell.cell_id == cell_id:
                    return index
        matches = [i for i, cell in enumerate(self.cells) if cell.source_sha256 == digest]
        return matches[0] if len(matches) == 1 else None


def out_of_order_reason(
    index: NotebookIndex,
    position: int,
    analysis: CellAnalysis,
    executed_positions: Sequence[int],
) -> str | None:
    """A sentence saying why the cell at ``position`` ran out of order, or None.

    The names the cell reads are worked out (``analysis.used_names``, a walk of its whole
    tree) only when its words include a name that only a cell below binds.
    """
    above: set[str] = set()
    for cell in index.cells[:position]:
        above |= cell.bound
    below: dict[str, int] = {}
    for offset, cell in enumerate(index.cells[position + 1 :], start=position + 1):
        for name in cell.bound:
            below.setdefault(name, offset)
    own = index.cells[position].bound
    suspects = {name for name in below if name not in above and name not in own}
    if suspects & analysis.mentioned_names:
        for name in sorted(suspects & analysis.used_names):
            return (
                f"code cell {position + 1} uses {name!r}, "
                f"defined only by code cell {below[name] + 1} below it"
            )
    if executed_positions and position < executed_positions[-1]:
        return f"code cell {position + 1} ran after code cell {executed_positions[-1] + 1}"
    return None
