"""The architecture holds: a pure core, and a light path for %load_ext and --help."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import jupyter_mlops

PACKAGE = Path(jupyter_mlops.__file__).parent
FORBIDDEN_IN_CORE = ("IPython", "tornado", "jupyter_server", "ipywidgets", "mlflow")
HEAVY = ("mlflow", "pandas", "jsonschema", "papermill", "nbdime", "sqlalchemy", "numpy")


def imported_modules(source: Path) -> set[str]:
    tree = ast.parse(source.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_imports_no_ipython_tornado_jupyter_server_or_mlflow() -> None:
    offenders = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in (PACKAGE / "core").rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in FORBIDDEN_IN_CORE
    }
    assert not offenders, f"core/ must stay pure: {sorted(offenders)}"


def test_core_modules_load_without_the_forbidden_packages() -> None:
    # Static analysis misses imports done through other modules; a fresh interpreter does not.
    modules = [
        "jupyter_mlops.core." + p.stem
        for p in (PACKAGE / "core").glob("*.py")
        if p.stem != "__init__"
    ]
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(n for n in {FORBIDDEN_IN_CORE!r} if n in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_mlflow_is_imported_only_under_tracking() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "mlflow" in {n.split(".")[0] for n in imported_modules(path)}
        and path.relative_to(PACKAGE).parts[0] != "tracking"
    ]
    assert not offenders


def test_load_ext_path_imports_nothing_heavy() -> None:
    # IPython's test shell imports numpy itself; what counts is what %load_ext adds.
    code = (
        "import json, sys\n"
        "from IPython.testing.globalipapp import start_ipython\n"
        "ip = start_ipython()\n"
        "before = set(sys.modules)\n"
        "ip.run_line_magic('load_ext', 'jupyter_mlops')\n"
        "assert 'mlops_track' in ip.magics_manager.magics['line']\n"
        "added = {n.split('.')[0] for n in set(sys.modules) - before}\n"
        f"print(json.dumps(sorted(n for n in {HEAVY!r} if n in added)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_cli_help_imports_nothing_heavy() -> None:
    code = (
        "import json, sys, contextlib, io\n"
        "from jupyter_mlops import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: cli.main(['--help'])\n"
        "    except SystemExit: pass\n"
        f"print(json.dumps(sorted(n for n in {HEAVY!r} if n in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
