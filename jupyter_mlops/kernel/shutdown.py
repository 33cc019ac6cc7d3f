"""Flush tracking when the kernel is asked to shut down, not at interpreter exit.

Jupyter shuts a kernel down with a ``shutdown_request``; the process then exits and
runs its ``atexit`` handlers. By then Python refuses to start threads, and MLflow needs
them, so records still queued would be lost (seen with a kernel shut down seconds after
its last tracked cell, before the writer had imported MLflow). Wrapping the kernel's
``do_shutdown`` makes the flush happen while the interpreter is whole. The kernel
manager waits for the process to exit (5 s in Jupyter Server by default; our runner
waits longer), so the flush fits in the shutdown it already allows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_INSTALLED_ATTR = "_jupyter_mlops_flush_installed"


def flush_before_kernel_shutdown(finish: Callable[[], bool]) -> bool:
    """Wrap the running kernel's ``do_shutdown`` to call ``finish`` first; False if no kernel."""
    try:
        from ipykernel.kernelapp import IPKernelApp
    except ImportError:
        return False
    if not IPKernelApp.initialized():
        return False
    kernel: Any = getattr(IPKernelApp.instance(), "kernel", None)
    if kernel is None:
        return False
    if getattr(kernel, _INSTALLED_ATTR, False):
        return True
    original = kernel.do_shutdown

    def do_shutdown(restart: bool) -> Any:
        finish()  # never raises: it reports what it could not write on stderr
        return original(restart)

    kernel.do_shutdown = do_shutdown
    setattr(kernel, _INSTALLED_ATTR, True)
    return True
