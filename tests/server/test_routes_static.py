"""Every handler method is wrapped by ``tornado.web.authenticated`` and ``authorized``."""

from __future__ import annotations

from pathlib import Path

from jupyter_mlops.server.routes import AUTH_RESOURCE_PREFIX, route_table

HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head")


def wrapper_chain(function: object) -> list[str]:
    """The source files of the decorators around ``function``, outermost first.

    ``functools.wraps`` copies the wrapped function's module name onto the wrapper, so
    the wrapper's own code object is what says where it was written.
    """
    chain = []
    while hasattr(function, "__wrapped__"):
        chain.append(Path(function.__code__.co_filename).as_posix())  # type: ignore[attr-defined]
        function = function.__wrapped__
    return chain


def test_each_handler_method_is_authenticated_and_authorized() -> None:
    for _pattern, handler in route_table():
        for name in HTTP_METHODS:
            method = vars(handler).get(name)
            if method is None:
                continue
            chain = wrapper_chain(method)
            assert any(f.endswith("tornado/web.py") for f in chain), (
                f"{handler.__name__}.{name} lacks @authenticated"
            )
            assert any(f.endswith("jupyter_server/auth/decorator.py") for f in chain), (
                f"{handler.__name__}.{name} lacks @authorized"
            )


def test_each_handler_names_its_own_resource() -> None:
    for _pattern, handler in route_table():
        assert handler.auth_resource.startswith(f"{AUTH_RESOURCE_PREFIX}:")


def test_routes_live_under_the_api_prefix() -> None:
    for pattern, _handler in route_table():
        assert pattern.startswith("/jupyter-mlops/api/")
