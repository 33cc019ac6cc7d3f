"""Start-up of our own command-line processes, without a 2.5-second detour.

``jsonschema`` (imported by nbformat, hence by Papermill and every notebook we read)
imports ``rfc3987-syntax`` when it is installed (jupyter-events pulls it in), and that
package compiles 38 Lark grammars at import: about 2.5 s, for the ``iri`` formats no
notebook schema uses. Our CLI and its batch workers mark it missing before anything
imports jsonschema, so jsonschema registers every other format and skips those two.

Only processes we own call this (``jupyter mlops`` and its workers): never a kernel or a
Jupyter server, where another library may check IRIs.
"""

from __future__ import annotations

import sys

SKIPPED = "rfc3987_syntax"


def skip_slow_optional_imports() -> None:
    if SKIPPED not in sys.modules and "jsonschema" not in sys.modules:
        sys.modules[SKIPPED] = None  # type: ignore[assignment]  # import raises ImportError
