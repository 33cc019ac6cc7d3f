"""Kernels forked from a zygote (batch workers): each a new kernel process with its own
environment, folder and streams, signalled and reaped through the zygote, none outliving
it; and whatever cannot be forked starts as a plain subprocess."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from jupyter_mlops.execution import kernel_forks
from jupyter_mlops.execution.kernel_forks import ForkedKernel, ForkingKernelManager


@pytest.fixture(autouse=True)
def fresh_zygote() -> Iterator[None]:
    kernel_forks.close_zygote()
    kernel_forks._zygote_failed = False
    yield
    kernel_forks.close_zygote()
    kernel_forks._zygote_failed = False


def start(cwd: Path, log: IO[bytes], **env: str) -> Any:
    km = ForkingKernelManager(kernel_name="python3")
    km.start_kernel(env={**os.environ, **env}, cwd=str(cwd), stdout=subprocess.DEVNULL, stderr=log)
    return km


def run(km: Any, code: str, timeout: float = 30) -> tuple[str, dict[str, Any]]:
    """What ``code`` printed, and its execute reply."""
    client = km.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=30)
        printed: list[str] = []

        def keep(message: dict[str, Any]) -> None:
            if message["msg_type"] == "stream" and message["content"]["name"] == "stdout":
                printed.append(message["content"]["text"])

        reply = client.execute_interactive(code, output_hook=keep, timeout=timeout)
        return "".join(printed), reply["content"]
    finally:
        client.stop_channels()


def gone(pid: int, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
            return True  # a zombie: ended, not reaped yet by its zygote
        time.sleep(0.05)
    return False


def test_forked_kernels_are_new_processes_with_their_own_environment_folder_and_streams(
    tmp_path: Path,
) -> None:
    code = (
        "import os, random\n"
        "print(os.getpid(), os.getppid(), os.getcwd(), os.environ['JUPYTER_MLOPS_RUN_ID'],"
        " random.random(), 'leftover' in globals())\n"
        "leftover = 1"
    )
    seen = []
    for run_id in ("run-a", "run-b"):
        with (tmp_path / f"{run_id}.log").open("w+b") as log:
            km = start(tmp_path, log, JUPYTER_MLOPS_RUN_ID=run_id)
            assert isinstance(km.provisioner.process, ForkedKernel), "the kernel was forked"
            printed, reply = run(km, code)
            assert reply["status"] == "ok" and reply["execution_count"] == 1
            pid, parent, cwd, got_run, number, leftover = printed.split()
            assert (cwd, got_run, leftover) == (str(tmp_path), run_id, "False")
            assert kernel_forks._zygote is not None
            assert int(parent) == kernel_forks._zygote.pid
            seen.append((int(pid), number))
            km.shutdown_kernel()
            assert kernel_forks._zygote._exits[int(pid)] == 0
            log.seek(0)  # ipykernel logs its start (a warning) to the stderr it was given
            assert b"[IPKernelApp]" in log.read()
    (first_pid, first_number), (second_pid, second_number) = seen
    assert first_pid != second_pid
    assert first_number != second_number, "each kernel's random module is seeded anew"


def test_interrupt_and_kill_reach_a_forked_kernel(tmp_path: Path) -> None:
    with (tmp_path / "kernel.log").open("w+b") as log:
        km = start(tmp_path, log)
        pid = km.provisioner.pid
        client = km.blocking_client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=30)
            msg_id = client.execute("import time; time.sleep(60)")
            deadline = time.monotonic() + 30
            while True:  # interrupt once the cell runs
                message = client.get_iopub_msg(timeout=30)
                if message["content"].get("execution_state") == "busy":
                    break
                assert time.monotonic() < deadline
            time.sleep(0.3)
            km.interrupt_kernel()
            while True:
                try:
                    reply = client.get_shell_msg(timeout=10)
                except queue.Empty:
                    pytest.fail("the interrupted cell never replied")
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
            assert reply["content"]["ename"] == "KeyboardInterrupt"
        finally:
            client.stop_channels()
        assert km.is_alive()
        km.shutdown_kernel(now=True)
        assert gone(pid)
        assert kernel_forks._zygote is not None
        assert kernel_forks._zygote._exits[pid] == -signal.SIGKILL


def test_a_kernel_that_kills_itself_is_seen_dead(tmp_path: Path) -> None:
    with (tmp_path / "kernel.log").open("w+b") as log:
        km = start(tmp_path, log)
        client = km.blocking_client()
        client.start_channels()
        client.wait_for_ready(timeout=30)
        client.execute("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
        client.stop_channels()
        deadline = time.monotonic() + 10
        while km.is_alive():
            assert time.monotonic() < deadline, "the dead kernel still looks alive"
            time.sleep(0.05)
        assert km.provisioner.process.returncode == -signal.SIGKILL
        km.shutdown_kernel(now=True)


def test_kernels_end_with_their_zygote_and_the_next_kernel_gets_a_new_one(
    tmp_path: Path,
) -> None:
    with (tmp_path / "kernel.log").open("w+b") as log:
        km = start(tmp_path, log)
        pid = km.provisioner.pid
        zygote = kernel_forks._zygote
        assert zygote is not None
        os.kill(zygote.pid, signal.SIGKILL)
        assert gone(pid), "a kernel outlived its zygote"
        deadline = time.monotonic() + 10
        while km.is_alive():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        km.shutdown_kernel(now=True)

        again = start(tmp_path, log)
        assert isinstance(again.provisioner.process, ForkedKernel)
        assert kernel_forks._zygote is not None and kernel_forks._zygote.pid != zygote.pid
        assert run(again, "print(6 * 7)")[0].strip() == "42"
        again.shutdown_kernel()


def test_a_zygote_whose_worker_is_gone_kills_its_kernels(tmp_path: Path) -> None:
    with (tmp_path / "kernel.log").open("w+b") as log:
        km = start(tmp_path, log)
        pid = km.provisioner.pid
        assert kernel_forks._zygote is not None
        zygote_pid = kernel_forks._zygote.pid
        kernel_forks.close_zygote()  # as when the worker exits: its end of the socket closes
        assert gone(pid) and gone(zygote_pid)
        km.shutdown_kernel(now=True)


def test_what_cannot_be_forked_starts_as_a_subprocess(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "kernel.log").open("w+b") as log:
        monkeypatch.setenv("JUPYTER_MLOPS_FORK_KERNELS", "0")
        km = start(tmp_path, log)
        assert isinstance(km.provisioner.process, subprocess.Popen)
        km.shutdown_kernel(now=True)
        monkeypatch.delenv("JUPYTER_MLOPS_FORK_KERNELS")

        refusing = tmp_path / "refusing_zygote.py"
        refusing.write_text("import sys\nsys.exit('no ipykernel here')\n")
        monkeypatch.setattr(kernel_forks, "ZYGOTE_SOURCE", refusing)
        km = start(tmp_path, log)
        assert isinstance(km.provisioner.process, subprocess.Popen)
        assert kernel_forks._zygote_failed
        assert run(km, "print(6 * 7)")[0].strip() == "42"
        km.shutdown_kernel()

    with pytest.raises(kernel_forks.ZygoteError, match="no ipykernel here"):
        kernel_forks.Zygote(kernel_forks.sys.executable, str(tmp_path), dict(os.environ))
    assert not kernel_forks._forkable(["python", "-m", "ipykernel", "-f", "c.json"])
    assert kernel_forks._forkable(["python", "-m", "ipykernel_launcher", "-f", "c.json"])
