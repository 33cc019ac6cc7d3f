"""The OpenAPI file shipped in the package describes exactly the routes the server serves."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import jupyter_mlops.server
from jupyter_mlops.server.routes import route_table

OPENAPI = Path(jupyter_mlops.server.__file__).parent / "openapi.yaml"
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    document = yaml.safe_load(OPENAPI.read_text())
    assert isinstance(document, dict)
    return document


def templated(pattern: str) -> str:
    """``/runs/(?P<run_id>[...])`` as OpenAPI writes it: ``/runs/{run_id}``."""
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern)
    assert not set("()[]\\?*+$^") & set(path), f"cannot template {pattern}"
    return path


def test_every_route_and_method_is_documented(spec: dict[str, Any]) -> None:
    for pattern, handler in route_table():
        path = templated(pattern)
        assert path in spec["paths"], f"{path} is missing from openapi.yaml"
        served = {m for m in METHODS if m in vars(handler)}
        documented = {m for m in METHODS if m in spec["paths"][path]}
        assert served == documented, f"{path}: served {served}, documented {documented}"


def test_nothing_is_documented_that_is_not_served(spec: dict[str, Any]) -> None:
    served = {templated(pattern) for pattern, _handler in route_table()}
    assert set(spec["paths"]) == served


def test_path_parameters_are_declared(spec: dict[str, Any]) -> None:
    for path, item in spec["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for method in METHODS:
            if method not in item:
                continue
            declared = {
                resolve(spec, p)["name"]
                for p in [*item.get("parameters", []), *item[method].get("parameters", [])]
                if resolve(spec, p)["in"] == "path"
            }
            assert declared == names, f"{method.upper()} {path}: {declared} != {names}"


def resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node``, or what its local ``$ref`` points at."""
    ref = node.get("$ref")
    if ref is None:
        return node
    assert ref.startswith("#/"), ref
    target: Any = spec
    for part in ref[2:].split("/"):
        assert part in target, f"{ref} does not resolve"
        target = target[part]
    return dict(target)


def test_every_ref_resolves_and_every_operation_answers(spec: dict[str, Any]) -> None:
    assert str(spec["openapi"]).startswith("3.")
    operation_ids = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(spec, node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    for item in spec["paths"].values():
        for method in METHODS:
            if method in item:
                operation = item[method]
                assert {"200", "201", "202"} & set(operation["responses"]), method
                assert "403" in operation["responses"]
                operation_ids.append(operation["operationId"])
    assert len(operation_ids) == len(set(operation_ids))
