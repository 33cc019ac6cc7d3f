"""``jupyter mlops check NOTEBOOK... [--fix] [--format text|json]``: the CLI adapter.

Reads every notebook first (an invalid one stops the command before anything is written),
runs ``core.checks`` with the config of each notebook's project, and with ``--fix`` writes
back the notebooks whose outputs it stripped. Exit status: 0 clean, 1 findings left,
2 bad input (``cli.main`` maps our typed errors). Nothing heavy is imported until the
command runs, so ``jupyter mlops --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def add_check_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add ``check`` to the ``jupyter mlops`` subcommands."""
    check = subparsers.add_parser(
        "check",
        help="lint notebooks: run order, errors, big outputs, secrets, parameters, paths",
        description=(
            "Check notebooks for cells run out of order or never run, saved errors, outputs "
            "over the size limit, secrets, pipeline notebooks without a 'parameters' cell and "
            "hard-coded absolute paths. Rules and options: [tool.jupyter-mlops.check] in "
            "pyproject.toml (docs/check.md). Exit status 0 clean, 1 findings, 2 bad input."
        ),
    )
    check.add_argument(
        "notebooks",
        nargs="+",
        metavar="NOTEBOOK",
        help="notebook files, or folders to search for *.ipynb",
    )
    check.add_argument(
        "--fix",
        action="store_true",
        help="remove error outputs, oversized outputs and outputs holding secrets (never sources)",
    )
    check.add_argument("--format", choices=["text", "json"], default="text", dest="output_format")
    check.set_defaults(handler=run_check)
    return check


def _expand(references: list[str]) -> list[tuple[str, Path]]:
    """``(as shown, path)`` of each notebook named; folders give their ``*.ipynb``, sorted."""
    from jupyter_mlops.core.errors import NotFoundError
    from jupyter_mlops.core.notebook_file import local_path

    found: dict[Path, str] = {}
    for reference in references:
        path = local_path(reference)
        if path.is_dir():
            inside = sorted(
                p
                for p in path.rglob("*.ipynb")
                if not any(
                    part.startswith(".") for part in p.relative_to(path).parts[:-1]
                )  # .ipynb_checkpoints and other hidden folders
            )
            if not inside:
                raise NotFoundError(f"no notebooks (*.ipynb) under {reference}")
            for notebook in inside:
                found.setdefault(notebook.resolve(), str(notebook))
        else:
            found.setdefault(path.resolve(), reference)
    return [(shown, Path(shown)) for shown in found.values()]


def _write_notebook(path: Path, nb: dict[str, Any]) -> None:
    """Write ``nb`` the way the file was written (indent, key order), atomically."""
    original = path.read_text(encoding="utf-8")
    lines = original.splitlines()
    indent = 1
    if len(lines) > 1 and lines[1].startswith(" "):
        indent = len(lines[1]) - len(lines[1].lstrip(" "))
    text = json.dumps(nb, indent=indent, ensure_ascii=False)
    if original.endswith("\n"):
        text += "\n"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        shutil.copymode(path, temporary)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def run_check(args: argparse.Namespace) -> int:
    from jupyter_mlops.core.checks import (
        CheckConfig,
        Finding,
        PipelineIndex,
        check_notebook,
        fix_notebook,
        load_check_config,
    )
    from jupyter_mlops.core.errors import MlopsError
    from jupyter_mlops.core.notebook_file import read_notebook
    from jupyter_mlops.core.settings import find_project_root

    notebooks = _expand(args.notebooks)
    loaded: list[tuple[str, Path, dict[str, Any]]] = []
    errors: list[MlopsError] = []
    for shown, path in notebooks:
        try:
            loaded.append((shown, path, read_notebook(path)))
        except MlopsError as error:
            errors.append(error)
    if errors:
        first = errors[0]
        if len(errors) > 1:
            more = f"{len(errors) - 1} more invalid: " + "; ".join(e.message for e in errors[1:])
            first.hint = f"{first.hint}; {more}" if first.hint else more
        raise first

    configs: dict[Path, tuple[CheckConfig, PipelineIndex]] = {}
    remaining: list[Finding] = []
    fixed: list[Finding] = []
    fixed_files = 0
    fixable = 0  # findings --fix would remove, as each project's `fix` option allows
    for shown, path, nb in loaded:
        root = find_project_root(path.resolve().parent)
        if root not in configs:
            configs[root] = (load_check_config(root), PipelineIndex(root))
        config, pipelines = configs[root]
        findings = check_notebook(shown, nb, config, pipelines=pipelines)
        strippable = [f for f in findings if f.fixable and f.rule in config.fix]
        if not args.fix:
            fixable += len(strippable)
        elif strippable:
            repaired, count = fix_notebook(nb, strippable, config)
            if count:
                try:
                    _write_notebook(path, repaired)
                except OSError as error:
                    raise MlopsError(f"cannot write {shown}: {error}") from None
                fixed_files += 1
                fixed += strippable
                findings = check_notebook(shown, repaired, config, pipelines=pipelines)
        remaining += findings

    if args.output_format == "json":
        report = {
            "checked": len(loaded),
            "clean": not remaining,
            "findings": [f.to_json() for f in remaining],
            "fixed": [f.to_json() for f in fixed],
        }
        print(json.dumps(report, indent=2))
        return 1 if remaining else 0

    for finding in remaining:
        print(f"{finding.location()}: {finding.rule}: {finding.message}")
    summary = []
    if fixed:
        summary.append(
            f"fixed {_plural(len(fixed), 'finding')} in {_plural(fixed_files, 'notebook')}"
        )
    if remaining:
        files = len({f.file for f in remaining})
        line = f"{_plural(len(remaining), 'finding')} in {_plural(files, 'notebook')}"
        if fixable:
            line += f" ({fixable} fixable with --fix)"
        summary.append(line)
    else:
        summary.append(f"{_plural(len(loaded), 'notebook')} checked, no findings")
    print(f"jupyter mlops check: {'; '.join(summary)}")
    return 1 if remaining else 0
