"""Starting commands off the event loop's thread, and waiting for them with a pidfd.

Why: ``asyncio.create_subprocess_exec`` forks and execs on the loop thread (python/cpython#146181),
so with trivial commands the loop spends most of its time blocked in ``vfork`` until each child has
exec'd, and nothing else (results, the next hypothesis' environment) moves meanwhile. Here one helper
thread, for the whole process, does the blocking part (``subprocess.Popen``: ``vfork`` + ``exec``,
the GIL released while the child starts) and nothing else; the loop waits for the exit by watching a
pidfd (readable once the process has exited), reaps it with ``waitpid(WNOHANG)`` and arms one timer
for the deadline. One thread, not one per child or a pool: ``xargs -P`` starts its commands one after
the other too, and the spawns are never the bottleneck of a real test run.

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
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

__all__ = ["PidfdProcess", "available", "in_helper_thread", "open_log", "start"]

T = TypeVar("T")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_available: bool | None = None
_devnull: int | None = None
_pending = 0  # jobs queued on or running in the helper thread (counted on event loop threads only)


def available() -> bool:
    """Can this process start children on the helper thread and wait for them with pidfds?"""
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


def _thread() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worktree-runner-spawn")
        return _pool


def _stdin() -> int:
    """One read-only ``/dev/null`` for every child's stdin (Popen would open and close one per child)."""
    global _devnull
    if _devnull is None:
        _devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return _devnull


def _busy() -> bool:
    return _pending > 0


def _submit(func: Callable[..., T], *args: object) -> asyncio.Future[T]:
    """``func(*args)`` queued on the helper thread, counted in ``_pending`` until it is done."""
    global _pending
    _pending += 1
    future = asyncio.wrap_future(_thread().submit(func, *args))
    future.add_done_callback(_done)
    return future


def _done(_: object) -> None:
    global _pending
    _pending -= 1


async def in_helper_thread(func: Callable[[], T]) -> T:
    """``func()`` on the helper thread when there is one (else here), awaited to its end.

    A cancelled caller gets its ``CancelledError`` only once ``func`` has finished (or never started), so
    that it can clean up after it.
    """
    if not available():
        return func()
    return await _to_the_end(_submit(func))


async def open_log(path: Path) -> int:
    """``path`` opened for appending (created, truncated): on the helper thread if it is idle, else here.

    Creating a file costs from ~0.02 to ~0.7 ms of kernel time on this machine's ext4 (bench/README.md):
    time the loop thread can spend on other hypotheses, unless the helper has a queue already (a first
    wave's layers), when waiting for it would delay this hypothesis more. A cancelled caller leaves no
    open descriptor behind.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
    if not available() or _busy():
        return os.open(path, flags, 0o644)
    opened = _submit(os.open, path, flags, 0o644)
    try:
        return await asyncio.shield(opened)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            os.close(await _uncancellable(opened))
        raise


async def _to_the_end(future: asyncio.Future[T]) -> T:
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await _uncancellable(future)
        raise


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
        """Stop watching (the loop is going away with the child still unreaped): no fd is leaked."""
        self._release()


def _start_blocking(
    argv: Sequence[str], cwd: Path | None, env: Mapping[str, str], log_fd: int
) -> tuple[subprocess.Popen[bytes], int]:
    popen = subprocess.Popen(
        list(argv), cwd=cwd, env=dict(env), stdin=_stdin(), stdout=log_fd, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        # Nothing else reaps our children (the pidfd watcher waits for its own pids only), so the pid
        # still names this child, exited or not.
        return popen, os.pidfd_open(popen.pid)
    except OSError:
        with contextlib.suppress(OSError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()
        raise


async def start(
    argv: Sequence[str], *, cwd: Path | None, env: Mapping[str, str], log_fd: int
) -> PidfdProcess:
    """Start ``argv`` in a new session on the helper thread, output to ``log_fd``.

    Raises what ``subprocess.Popen`` raises (``FileNotFoundError``, ``PermissionError``, ``OSError``). If the
    caller is cancelled while the child is being started, the child is killed and reaped before the
    ``CancelledError`` propagates: a cancelled start never leaves a process behind.
    """
    loop = asyncio.get_running_loop()
    if _busy():
        # The helper thread is busy (starting another child, making a layer): start this one here, so
        # that two starts (each blocked until its child has exec'd) overlap, with no second thread.
        popen, pidfd = _start_blocking(argv, cwd, env, log_fd)
        return PidfdProcess(popen, pidfd, loop)
    started = _submit(_start_blocking, argv, cwd, env, log_fd)
    try:
        popen, pidfd = await asyncio.shield(started)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            popen, pidfd = await _uncancellable(started)
            os.close(pidfd)
            with contextlib.suppress(OSError):
                os.killpg(popen.pid, signal.SIGKILL)
            await asyncio.get_running_loop().run_in_executor(_thread(), popen.wait)
        raise
    return PidfdProcess(popen, pidfd, loop)


async def _uncancellable(future: asyncio.Future[T]) -> T:
    """Await ``future`` to its end even if the caller is cancelled again meanwhile."""
    while True:
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.done():
                return future.result()
