"""Write the reference pages that are generated, so they cannot drift from the code.

* ``docs/cli.md`` from the ``jupyter mlops`` argument parser (every command's ``--help``);
* ``docs/rest.md`` from ``jupyter_mlops/server/openapi.yaml``.

``python docs/generate.py`` rewrites both; ``--check`` exits 1 when either is stale
(``tests/test_docs.py`` runs it).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
OPENAPI = DOCS.parent / "jupyter_mlops" / "server" / "openapi.yaml"
METHODS = ("get", "post", "put", "patch", "delete")


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found += list(action.choices.items())
    return found


def cli_reference() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: fix it for the file
    from jupyter_mlops.cli import build_parser

    parser = build_parser()
    parser.prog = "jupyter mlops"
    out = [
        "# `jupyter mlops` command reference",
        "",
        "Generated from the command's own `--help` by `docs/generate.py`; do not edit.",
        "Every command also answers `--help`. Exit status: 0 on success, 1 when the work",
        "failed (a failing notebook, a refused promotion), 2 for bad input (a flag, a",
        "reference, a notebook that is not valid), 3 when the tracking store does not answer,",
        "128+N after signal N.",
        "",
        "```text",
        parser.format_help().rstrip(),
        "```",
    ]
    for name, sub in _subparsers(parser):
        out += ["", f"## `jupyter mlops {name}`", "", "```text", sub.format_help().rstrip(), "```"]
        for child, subsub in _subparsers(sub):
            out += [
                "",
                f"### `jupyter mlops {name} {child}`",
                "",
                "```text",
                subsub.format_help().rstrip(),
                "```",
            ]
    return "\n".join(out) + "\n"


def _schema_text(schema: dict[str, Any], spec: dict[str, Any]) -> str:
    if "$ref" in schema:
        return f"`{schema['$ref'].rsplit('/', 1)[-1]}`"
    kind = schema.get("type", "object")
    if kind == "array":
        return f"array of {_schema_text(schema.get('items', {}), spec)}"
    return f"`{kind}`"


def _resolve(item: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    if "$ref" not in item:
        return item
    node: Any = spec
    for part in item["$ref"].lstrip("#/").split("/"):
        node = node[part]
    return dict(node)


def rest_reference() -> str:
    import yaml

    spec = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    out = [
        "# REST API reference",
        "",
        "Generated from `jupyter_mlops/server/openapi.yaml` by `docs/generate.py`; do not",
        "edit. Every route is authenticated and authorized through jupyter_server (a token",
        "header, or a logged-in browser session sending `X-XSRFToken` on state changes).",
        "Errors are JSON `{code, message, hint?}` with a 4xx status for bad input.",
        "",
        spec.get("info", {}).get("description", "").strip(),
    ]
    for path, item in spec["paths"].items():
        shared = [_resolve(p, spec) for p in item.get("parameters", [])]
        for method in METHODS:
            if method not in item:
                continue
            operation = item[method]
            out += ["", f"## `{method.upper()} {path}`", "", operation.get("summary", "")]
            if operation.get("description"):
                out += ["", " ".join(str(operation["description"]).split())]
            parameters = shared + [_resolve(p, spec) for p in operation.get("parameters", [])]
            if parameters:
                out += ["", "| parameter | in | |", "| --- | --- | --- |"]
                out += [
                    f"| `{p['name']}` | {p['in']} | {' '.join(p.get('description', '').split())} |"
                    for p in parameters
                ]
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                schema = _resolve(body["schema"], spec)
                required = set(schema.get("required", []))
                out += ["", "Body:", "", "| field | type | |", "| --- | --- | --- |"]
                for name, field in schema.get("properties", {}).items():
                    note = " ".join(str(field.get("description", "")).split())
                    mark = " (required)" if name in required else ""
                    out.append(f"| `{name}`{mark} | {_schema_text(field, spec)} | {note} |")
            out += ["", "| status | |", "| --- | --- |"]
            for code, answer in operation.get("responses", {}).items():
                answer = _resolve(answer, spec)
                out.append(f"| {code} | {' '.join(answer.get('description', '').split())} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    stale = []
    for name, text in (("cli.md", cli_reference()), ("rest.md", rest_reference())):
        path = DOCS / name
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)}; run: python docs/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
