"""The typed errors every part of jupyter-mlops raises.

Each error carries a stable ``code``. Adapters translate in one place each: the CLI
maps the code to an exit status, the server to an HTTP status, the magics to a
one-line message. The core never prints and never raises an HTTP error.
"""

from __future__ import annotations


class MlopsError(Exception):
    """Root of our errors: a message a user can act on and a machine-readable code."""

    code = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(MlopsError):
    """The caller's input is wrong: a flag, a parameter, a reference that does not parse."""

    code = "usage"


class ConfigError(UsageError):
    """A configuration file (``pyproject.toml``, ``mlops.yaml``) cannot be read or is invalid."""

    code = "config"


class NotFoundError(UsageError):
    """Something named by the user (a run, a model version, a file) does not exist."""

    code = "not_found"


class InvalidNotebookError(UsageError):
    """A file is not a notebook we can read: bad JSON, unknown nbformat, schema errors."""

    code = "invalid_notebook"


class ForbiddenPathError(UsageError):
    """A path or reference points outside the allowed root or is a URL we refuse to fetch."""

    code = "forbidden_path"


class TooLargeError(UsageError):
    """Something asked for is over the size this adapter serves (an artifact over REST)."""

    code = "too_large"


class StoreUnavailableError(MlopsError):
    """The tracking store does not answer (server stopped, database unreadable)."""

    code = "store_unavailable"


class CredentialsError(StoreUnavailableError):
    """The tracking server refused our credentials (HTTP 401/403).

    A store-unavailable error (exit 3, records kept) whose cure is in the environment:
    ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` or ``MLFLOW_TRACKING_TOKEN``, not waiting.
    """


class ExecutionFailedError(MlopsError):
    """A notebook ran and failed; the executed copy and a FAILED run are kept."""

    code = "execution_failed"


class PolicyError(MlopsError):
    """The project's policy refuses the action (a promotion without an approved review)."""

    code = "policy"


#: Exit status of the CLI for each error code; anything not listed exits 1.
EXIT_CODES: dict[str, int] = {
    "usage": 2,
    "config": 2,
    "not_found": 2,
    "invalid_notebook": 2,
    "forbidden_path": 2,
    "too_large": 2,
    "store_unavailable": 3,
    "execution_failed": 1,
    "policy": 1,
}

#: HTTP status of the REST API for each error code; anything not listed is a 500.
HTTP_STATUS: dict[str, int] = {
    "usage": 400,
    "config": 400,
    "not_found": 404,
    "invalid_notebook": 422,
    "forbidden_path": 403,
    "too_large": 413,
    "store_unavailable": 503,
    "execution_failed": 409,
    "policy": 409,
}


def exit_code_for(error: MlopsError) -> int:
    """The CLI exit status for ``error``."""
    return EXIT_CODES.get(error.code, 1)


def http_status_for(error: MlopsError) -> int:
    """The HTTP status for ``error``."""
    return HTTP_STATUS.get(error.code, 500)
