"""The kernel zygote: a process that imports ipykernel once, then forks kernels from it.

Run as ``python -c <this file's text> FD`` by :mod:`jupyter_mlops.execution.kernel_forks`
with the kernel's own interpreter, folder and environment; ``FD`` is its end of a
``SOCK_SEQPACKET`` socket pair. It imports nothing of jupyter_mlops, so any Python that
has ipykernel can run it.

Why: a Python kernel spends about half of its start-up CPU importing ipykernel, IPython,
pyzmq and tornado. Here that happens once; each kernel is then a ``fork()`` that runs
``python -m ipykernel_launcher -f CONNECTION_FILE`` from the point where those modules are
imported. Like :mod:`multiprocessing`'s forkserver, this process stays single-threaded
(it refuses to serve if an import started a thread), so a fork copies no lock held by
another thread. A forked kernel has run no user code: it is as fresh as a new process,
except for what the interpreter fixes at its own start (the string hash seed).

Messages are JSON, one per packet. In: ``{"args": [...], "env": {...}, "cwd": "..."}``
(``args``: the launcher's arguments, ``-f CONNECTION_FILE``)
with the kernel's stdin, stdout and stderr as three passed file descriptors, or
``{"signal": SIGNUM, "pid": PID}``. Out: ``{"ready": PID}`` once, then ``{"pid": PID}`` or
``{"error": "..."}`` per fork, and ``{"exited": PID, "code": CODE}`` whenever a kernel ends
(``CODE`` as :attr:`subprocess.Popen.returncode` has it). When the socket closes (its
worker ended), the zygote kills the kernels still running and exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import select
import signal
import socket
import sys
from typing import Any

#: The only kernel command this zygote runs: ``python -m ipykernel_launcher ...``.
LAUNCHER = "ipykernel_launcher"
#: Largest message: a kernel's environment.
MAX_MESSAGE = 1 << 20


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.send(json.dumps(message).encode())


def _reap(sock: socket.socket, kernels: set[int]) -> None:
    """Tell the worker about every kernel that ended."""
    while kernels:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        kernels.discard(pid)
        _send(sock, {"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def _signal(message: dict[str, Any], kernels: set[int]) -> None:
    pid = message["pid"]
    if pid in kernels:  # not reaped yet: the pid is still the kernel's
        try:
            os.killpg(pid, message["signal"])
        except OSError:
            os.kill(pid, message["signal"])


def _serve(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """Fork kernels on request; returns (in a child only) what that kernel must run."""
    kernels: set[int] = set()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
    _send(sock, {"ready": os.getpid()})
    try:
        while True:
            readable, _, _ = select.select([sock.fileno(), wake_read], [], [])
            if wake_read in readable:
                os.read(wake_read, 4096)
                _reap(sock, kernels)
            if sock.fileno() not in readable:
                continue
            data, fds, _flags, _address = socket.recv_fds(sock, MAX_MESSAGE, 3)
            if not data:  # the worker is gone
                return None
            message = json.loads(data)
            if "signal" in message:
                _signal(message, kernels)
                continue
            try:
                pid = os.fork()
            except OSError as error:
                for fd in fds:
                    os.close(fd)
                _send(sock, {"error": f"fork failed: {error}"})
                continue
            if pid == 0:
                signal.set_wakeup_fd(-1)
                os.close(wake_read)
                os.close(wake_write)
                sock.close()
                return message, fds
            kernels.add(pid)
            for fd in fds:
                os.close(fd)
            _send(sock, {"pid": pid})
    finally:
        if kernels and os.getpid() == zygote_pid:
            for pid in kernels:
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)


def _become_kernel(message: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: the kernel's session, streams, folder, environment, command."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setsid()  # its own process group, as jupyter_client starts kernels
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(message["cwd"])
    env = dict(message["env"])
    # ipykernel watches its parent through this variable (read at import, here): the
    # parent of a forked kernel is this zygote.
    env["JPY_PARENT_PID"] = str(zygote_pid)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = [LAUNCHER, *message["args"]]  # run_module puts the launcher's path first
    runpy.run_module(LAUNCHER, run_name="__main__", alter_sys=True)


#: This process's pid; in a forked kernel it names the kernel's parent.
zygote_pid = os.getpid()


def main() -> None:
    channel = socket.socket(fileno=int(sys.argv[1]))
    os.environ["JPY_PARENT_PID"] = str(zygote_pid)
    # As ipykernel_launcher does before its imports: the folder's own files must not
    # shadow a module (``python -c`` puts "" first on the path).
    if sys.path and sys.path[0] == "":
        del sys.path[0]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the worker: it stops kernels
    try:
        import threading

        import ipykernel.kernelapp  # noqa: F401  # the point of this process

        if threading.active_count() != 1:
            raise RuntimeError(f"importing ipykernel started threads: {threading.enumerate()}")
    except Exception as error:
        _send(channel, {"refused": f"{type(error).__name__}: {error}"})
        sys.exit(1)
    forked = _serve(channel)
    if forked is not None:
        _become_kernel(*forked)


if __name__ == "__main__":
    main()
