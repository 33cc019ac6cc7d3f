"""Batch kernels forked from a zygote that has imported ipykernel once.

A Python kernel's start costs about 0.45 s of CPU here, half of it importing ipykernel,
IPython, pyzmq and tornado; in a batch of small points that is most of the CPU a point
takes. A batch worker therefore starts one zygote (``_kernel_zygote.py``: the kernel's
interpreter, folder and environment, ipykernel imported, single-threaded) and launches
each kernel as a fork of it running ``ipykernel_launcher``. Every point still gets a new
kernel process that has run nothing before; only the imports are shared.

:class:`ForkingKernelManager` is a ``jupyter_client`` kernel manager that does this for the
standard ``python -m ipykernel_launcher -f FILE`` command and launches anything else
(another language, a custom command, a zygote that failed) as a subprocess, as usual.
To jupyter_client a forked kernel looks like a ``Popen`` (:class:`ForkedKernel`): it is
polled, signalled and killed through the zygote, the only process that can wait for it,
so a signal never reaches a pid that was reused after the kernel ended.

A forked kernel's ``os.environ`` is its own, but ``/proc/PID/environ`` (the environment
its process image started with) is the zygote's, which lacks the per-kernel variables.
Linux only (``SOCK_SEQPACKET`` and passing file descriptors);
``JUPYTER_MLOPS_FORK_KERNELS=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from jupyter_client.manager import KernelManager

from jupyter_mlops.core.settings import ENV_FORK_KERNELS, ENV_RUN_ID

ZYGOTE_SOURCE = Path(__file__).with_name("_kernel_zygote.py")
#: How long a new zygote may take to import ipykernel and say it is ready.
ZYGOTE_READY_TIMEOUT_S = 60.0
#: How long the zygote may take to answer a fork request.
FORK_TIMEOUT_S = 10.0
#: Variables that may differ between kernels of one zygote: a kernel gets them after its
#: fork. A point's run id is not read while ipykernel is imported; JPY_PARENT_PID is, and
#: the zygote sets it to its own pid, the forked kernel's parent.
PER_KERNEL_VARIABLES = frozenset({"JPY_PARENT_PID", ENV_RUN_ID})
MAX_MESSAGE = 1 << 20
STREAMS = ("stdin", "stdout", "stderr")


class ZygoteError(Exception):
    """The zygote could not start, refused to serve, or died: launch kernels as usual."""


def forking_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return sys.platform.startswith("linux") and environ.get(ENV_FORK_KERNELS, "1") != "0"


class Zygote:
    """One zygote process: its interpreter, folder and environment, ready to fork."""

    def __init__(self, python: str, cwd: str, env: Mapping[str, str]) -> None:
        self.python, self.cwd, self.env = python, cwd, dict(env)
        self._exits: dict[int, int] = {}
        self._lock = threading.Lock()
        self.closed = False
        # What the zygote says before it is ready (an import error) lands here.
        self._log: IO[bytes] = tempfile.TemporaryFile(prefix="mlops-zygote-")  # noqa: SIM115
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        try:
            self.process = subprocess.Popen(
                [python, "-c", ZYGOTE_SOURCE.read_text(), str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                cwd=cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._log,
                start_new_session=True,  # a terminal's Ctrl-C is for the worker
            )
        except OSError as error:
            self.close()
            raise ZygoteError(f"cannot start the kernel zygote: {error}") from None
        finally:
            theirs.close()
        try:
            hello = self._receive(ZYGOTE_READY_TIMEOUT_S)
        except ZygoteError:
            self.close()
            raise
        if "ready" not in hello:
            self.close()
            raise ZygoteError(f"the kernel zygote refused to serve: {hello.get('refused')}")
        self.pid = int(hello["ready"])

    def fits(self, python: str, cwd: str, env: Mapping[str, str]) -> bool:
        return (python, cwd, _shared(env)) == (self.python, self.cwd, _shared(self.env))

    def fork(self, args: list[str], env: Mapping[str, str], cwd: str, fds: list[int]) -> int:
        """Start a kernel: ``python -m ipykernel_launcher ARGS``; its pid."""
        request = json.dumps({"args": args, "env": dict(env), "cwd": cwd}).encode()
        with self._lock:
            try:
                socket.send_fds(self.sock, [request], fds)
            except OSError as error:
                raise ZygoteError(f"the kernel zygote is gone: {error}") from None
            answer = self._receive(FORK_TIMEOUT_S)
        if "pid" not in answer:
            raise ZygoteError(f"the kernel zygote could not fork: {answer.get('error')}")
        return int(answer["pid"])

    def exit_code(self, pid: int) -> int | None:
        """The kernel's exit code once the zygote reported it; None until then."""
        with self._lock:
            if pid not in self._exits and not self.closed:
                with contextlib.suppress(ZygoteError):
                    self._drain()
            return self._exits.get(pid)

    def serving(self) -> bool:
        """Whether exits are still reported (else a kernel's end must be seen otherwise)."""
        return not self.closed and self.process.poll() is None

    def signal(self, pid: int, signum: int) -> None:
        """Signal the kernel's process group, unless it already ended."""
        with self._lock:
            if pid in self._exits:
                return
            try:
                self.sock.send(json.dumps({"signal": int(signum), "pid": pid}).encode())
            except OSError as error:
                raise ProcessLookupError(f"the kernel zygote is gone: {error}") from None

    def close(self) -> None:
        """Close the socket: the zygote kills what it still runs, and exits."""
        self.closed = True
        self.sock.close()
        process = getattr(self, "process", None)
        if process is not None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._log.close()

    # -- the socket -------------------------------------------------------------------
    def _receive(self, timeout: float) -> dict[str, Any]:
        """The next message that is not an exit report (those are kept)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ZygoteError(f"the kernel zygote did not answer in {timeout:g} s")
            try:
                ready = select.select([self.sock], [], [], left)[0]
            except OSError as error:
                raise ZygoteError(f"the kernel zygote is gone: {error}") from None
            message = self._read() if ready else None
            if message is not None and not self._keep_exit(message):
                return message

    def _drain(self) -> None:
        """Keep the exit reports waiting in the socket, without blocking."""
        while (message := self._read(socket.MSG_DONTWAIT)) is not None:
            self._keep_exit(message)

    def _read(self, flags: int = 0) -> dict[str, Any] | None:
        """One message from the socket; None when none waits (with ``MSG_DONTWAIT``)."""
        try:
            data = self.sock.recv(MAX_MESSAGE, flags)
        except BlockingIOError:
            return None
        except OSError as error:
            raise ZygoteError(f"the kernel zygote is gone: {error}") from None
        if not data:
            self._log.seek(0)
            said = self._log.read().decode(errors="replace").strip()[-2000:]
            raise ZygoteError(f"the kernel zygote ended: {said or 'it said nothing'}")
        message: dict[str, Any] = json.loads(data)
        return message

    def _keep_exit(self, message: dict[str, Any]) -> bool:
        """Keep ``message`` if it reports a kernel's exit; whether it did."""
        if "exited" not in message:
            return False
        self._exits[int(message["exited"])] = int(message["code"])
        return True


def _shared(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in PER_KERNEL_VARIABLES}


class ForkedKernel:
    """What jupyter_client's local provisioner needs of a ``Popen``, for a forked kernel."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int, zygote: Zygote) -> None:
        self.pid = pid
        self.zygote = zygote
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.zygote.exit_code(self.pid)
            if self.returncode is None and not self.zygote.serving():
                # The zygote ended: its kernels leave on their own (ipykernel watches its
                # parent); with nobody left to report the code, this one counts as killed.
                self.returncode = self._gone_code()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout or 0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            if self.zygote.serving():
                self.zygote.signal(self.pid, signum)
            else:  # an orphan, still in its own session (see _gone_code)
                os.killpg(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _gone_code(self) -> int | None:
        """-9 once the orphaned kernel's process is gone; None while it still runs."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:  # no such process any more
            return -signal.SIGKILL
        # A zombie has ended (a container's init may never reap it); a pid in another
        # session was reused by some other process.
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z" or int(fields[3]) != self.pid:
            return -signal.SIGKILL
        return None


#: This process's zygote (a batch worker keeps one: its kernels all look alike).
_zygote: Zygote | None = None
#: Set when a zygote could not start here: then every kernel is launched as usual.
_zygote_failed = False


def _zygote_for(python: str, cwd: str, env: Mapping[str, str]) -> Zygote | None:
    global _zygote, _zygote_failed
    if _zygote is not None and (not _zygote.serving() or not _zygote.fits(python, cwd, env)):
        close_zygote()
    if _zygote is None and not _zygote_failed:
        try:
            _zygote = Zygote(python, cwd, _shared(env))
        except ZygoteError:
            _zygote_failed = True
    return _zygote


def close_zygote() -> None:
    """End this process's zygote (it kills the kernels it still runs)."""
    global _zygote
    zygote, _zygote = _zygote, None
    if zygote is not None:
        zygote.close()


def _forkable(cmd: list[str]) -> bool:
    return len(cmd) >= 3 and cmd[1:3] == ["-m", "ipykernel_launcher"]


def _fd(stream: Any, target: int, opened: list[int]) -> int:
    """The file descriptor a kernel gets as its ``target`` stream (0, 1 or 2), from the
    value Popen would take: None inherits this process's (stdin: /dev/null, as the
    kernel reads none)."""
    if stream == subprocess.DEVNULL or (stream is None and target == 0):
        fd = os.open(os.devnull, os.O_RDONLY if target == 0 else os.O_WRONLY)
        opened.append(fd)
        return fd
    if stream is None:
        return target
    if isinstance(stream, int):
        return stream
    return int(stream.fileno())


class ForkingKernelManager(KernelManager):
    """A kernel manager whose Python kernels are forked from this process's zygote."""

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        forked = self._fork(kernel_cmd, kw) if forking_enabled() else None
        if forked is None:
            await super()._async_launch_kernel(kernel_cmd, **kw)
            return
        provisioner: Any = self.provisioner
        # What LocalProvisioner.launch_kernel records of the process it starts; no pgid,
        # so that signals go through ForkedKernel (the zygote signals the kernel's group).
        provisioner.process = forked
        provisioner.pid = forked.pid
        provisioner.pgid = None
        provisioner.cwd = kw.get("cwd") or str(Path.cwd())
        self._reconcile_connection_info(provisioner.connection_info)

    def _fork(self, cmd: list[str], kw: dict[str, Any]) -> ForkedKernel | None:
        if not _forkable(cmd):
            return None
        env = kw.get("env") or dict(os.environ)
        cwd = str(kw.get("cwd") or Path.cwd())
        python = str(Path(cmd[0]).expanduser())
        zygote = _zygote_for(python, cwd, env)
        if zygote is None:
            return None
        opened: list[int] = []
        try:
            fds = [_fd(kw.get(name), target, opened) for target, name in enumerate(STREAMS)]
            pid = zygote.fork(cmd[3:], env, cwd, fds)
        except ZygoteError:  # it died or is stuck: launch this and later kernels as usual
            global _zygote_failed
            _zygote_failed = True
            close_zygote()
            return None
        finally:
            for fd in opened:
                os.close(fd)
        return ForkedKernel(pid, zygote)
