"""Start-up of our own command-line processes, without a 2.5-second detour.

``jsonschema`` (imported by nbformat, hence by Papermill and every notebook we read)
imports ``rfc3987-syntax`` when it is installed (jupyter-events pulls it in), and that
package compiles 38 Lark grammars at import: about 2.5 s, for the ``iri`` formats no
notebook schema uses. Our CLI and its batch workers mark it missing before anything
imports jsonschema, so jsonschema registers every other format and skips those two.

Only processes we own call these (``jupyter mlops`` and its workers): never a kernel or a
Jupyter server, where another library may check IRIs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

SKIPPED = "rfc3987_syntax"


def skip_slow_optional_imports() -> None:
    if SKIPPED not in sys.modules and "jsonschema" not in sys.modules:
        sys.modules[SKIPPED] = None  # type: ignore[assignment]  # import raises ImportError


#: Imported by MLflow only for what it offers on data frames and arrays (its dataset
#: constructors, signature inference): about 0.35 s of CPU that a process which only
#: opens, writes and closes runs never uses.
DATAFRAME_LIBRARIES = ("pandas", "numpy")


@contextlib.contextmanager
def without_dataframe_libraries() -> Iterator[None]:
    """Import MLflow's tracking store inside this block without pandas and NumPy.

    MLflow imports them where it can do without (``with suppress(ImportError)``), so
    marking them missing here makes that import 0.35 s cheaper. Only for a process of
    ours that uses MLflow for runs and nothing else (the batch orchestrator): the marks
    are removed after the block, so a later ``import pandas`` works, but what MLflow
    registered without them (``mlflow.data``'s pandas constructor) stays unregistered.
    """
    marked = [name for name in DATAFRAME_LIBRARIES if name not in sys.modules]
    for name in marked:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        yield
    finally:
        for name in marked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
