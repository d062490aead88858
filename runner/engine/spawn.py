"""Starting commands without asyncio's subprocess transport, and waiting for them with a pidfd.

Why: per command, ``asyncio.create_subprocess_exec`` builds a transport, a protocol and pipe
bookkeeping, registers the child with the child watcher, and ``wait_for`` adds a task and a timer; for
a trivial command that is most of the loop's work. Here a child is ``subprocess.Popen`` (``vfork`` +
``exec``, in a new session, output straight to its log file), its exit is a pidfd the loop watches
(readable once the process has exited; reaped then with ``waitpid(WNOHANG)``), and its deadline is one
``call_at`` timer. No thread: the test ``test_no_thread_per_child_on_311`` holds the executor to the
loop's own thread (a helper thread to start children was tried: under pytest-rerunfailures' server
thread it broke that bound, and it gained nothing measurable on 2 CPUs).

Only on Linux with ``pidfd_open`` (5.3+); elsewhere :func:`available` is False and callers keep
asyncio's own subprocess support.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["PidfdProcess", "available", "open_log", "start"]

_available: bool | None = None
_devnull: int | None = None


def available() -> bool:
    """Can this process wait for its children with pidfds?"""
    global _available
    if _available is None:
        _available = False
        if sys.platform.startswith("linux") and hasattr(os, "pidfd_open"):
            try:
                os.close(os.pidfd_open(os.getpid()))
                _available = True
            except OSError:
                pass
    return _available


def _stdin() -> int:
    """One read-only ``/dev/null`` for every child's stdin (Popen would open and close one per child)."""
    global _devnull
    if _devnull is None:
        _devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return _devnull


def open_log(path: Path) -> int:
    """``path`` opened for appending (created, truncated), close-on-exec."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o644)


class PidfdProcess:
    """A started child: its pid, and its exit (a pidfd the loop watches).

    Like ``asyncio.subprocess.Process`` for what the stop path needs: ``pid``, ``returncode``, ``wait()``.
    """

    def __init__(self, popen: subprocess.Popen[bytes], pidfd: int, loop: asyncio.AbstractEventLoop) -> None:
        self._popen = popen
        self.pid = popen.pid
        self._pidfd: int | None = pidfd
        self._loop = loop
        self._exited: asyncio.Future[int] = loop.create_future()
        loop.add_reader(pidfd, self._on_exit)

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def _on_exit(self) -> None:
        self._release()
        code = self._popen.poll()  # a readable pidfd: the child has exited, so this reaps it
        if code is None:
            code = self._popen.wait()
        if not self._exited.done():
            self._exited.set_result(code)

    def _release(self) -> None:
        if self._pidfd is not None:
            fd, self._pidfd = self._pidfd, None
            self._loop.remove_reader(fd)
            os.close(fd)

    async def wait(self) -> int:
        """The exit code (negative: killed by that signal). Cancelling the caller does not stop the watch."""
        return await asyncio.shield(self._exited)

    async def wait_until(self, deadline: float) -> int | None:
        """The exit code, or None when the loop time ``deadline`` came first (the child keeps running)."""
        if self._exited.done():
            return self._exited.result()
        waiter: asyncio.Future[int | None] = self._loop.create_future()

        def settle(value: int | None) -> None:
            if not waiter.done():
                waiter.set_result(value)

        self._exited.add_done_callback(lambda done: settle(done.result()))
        timer = self._loop.call_at(deadline, settle, None)
        try:
            return await waiter
        finally:
            timer.cancel()

    def abandon(self) -> None:
        """Stop watching (the child could not be reaped): no descriptor is leaked."""
        self._release()


def start(argv: Sequence[str], *, cwd: Path | None, env: Mapping[str, str], log_fd: int) -> PidfdProcess:
    """Start ``argv`` in a new session, output to ``log_fd``; call on the running loop's thread.

    Raises what ``subprocess.Popen`` raises (``FileNotFoundError``, ``PermissionError``, ``OSError``).
    Synchronous: there is no moment at which a cancellation could leave the child unwatched.
    """
    loop = asyncio.get_running_loop()
    popen = subprocess.Popen(
        list(argv), cwd=cwd, env=dict(env), stdin=_stdin(), stdout=log_fd, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        # Nothing else reaps our children (asyncio's pidfd watcher waits for its own pids only), so the
        # pid still names this child, exited or not.
        pidfd = os.pidfd_open(popen.pid)
    except OSError:
        with contextlib.suppress(OSError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()
        raise
    return PidfdProcess(popen, pidfd, loop)
