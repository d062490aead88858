"""Process management: start commands in their own session, stop whole process trees.

Every command runs in a new session (``start_new_session=True``), so ``os.killpg`` reaches its
children and grandchildren. A descendant that escapes with its own ``setsid`` is still found: each
command gets a unique ``WORKTREE_RUNNER_TASK`` token in its environment, and the stop path scans
``/proc`` for processes that carry it. Output goes straight from the child to a file descriptor,
never through a pipe we must drain, so ``wait()`` cannot deadlock on a full pipe or on a grandchild
that holds the pipe open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from runner.engine import spawn

TASK_ENV = "WORKTREE_RUNNER_TASK"

# What the commands we run (hypotheses' tests, agent-written tests) must never inherit: action inputs
# (INPUT_GITHUB-TOKEN, INPUT_OPENHANDS-API-KEY arrive as INPUT_*), the runner's own tokens, and our
# OpenHands keys. A workflow that wants a command to see a token sets it in `env:` under another name.
_SECRET_PREFIXES = ("INPUT_",)
_SECRET_NAMES = frozenset({
    "ACTIONS_RUNTIME_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL",
    "OPENHANDS_API_KEY", "OPENHANDS_LLM_API_KEY",
})  # fmt: skip


def without_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` minus the variables untrusted commands must not see (see ``_SECRET_NAMES``)."""
    return {k: v for k, v in env.items() if k not in _SECRET_NAMES and not k.startswith(_SECRET_PREFIXES)}


# How long we wait for a process to be reaped after SIGKILL. SIGKILL cannot be ignored, so this
# only guards against a lost exit status (python/cpython#87744) turning into a hang.
_REAP_TIMEOUT = 5.0
_POLL = 0.02


@dataclass(frozen=True)
class CommandOutcome:
    """How a command ended. ``exit_code`` is None when it was stopped or never started."""

    kind: Literal["exited", "timeout", "cancelled", "spawn-error"]
    exit_code: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class CapturedResult:
    returncode: int
    output: str


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_alive(pgid: int) -> bool:
    return _signal_group(pgid, 0)


def marked_pids(token: str, *, exclude: Iterable[int] = ()) -> list[int]:
    """Processes whose environment contains ``WORKTREE_RUNNER_TASK`` starting with ``token``.

    Matching a prefix lets one scan find every task of a run (tokens are ``<run>-<n>``).
    """
    needle = f"{TASK_ENV}={token}".encode()
    skip = {os.getpid(), *exclude}
    found: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid in skip:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:
            continue
        for var in environ.split(b"\0"):
            if var.startswith(needle):
                found.append(pid)
                break
    return found


def kill_marked(token: str, sig: int = signal.SIGKILL) -> int:
    """Signal every process carrying ``token``; returns how many were signalled."""
    count = 0
    for pid in marked_pids(token):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
            count += 1
    return count


class _Child(Protocol):
    """What stopping a process tree needs of a started child (asyncio's Process, spawn.PidfdProcess)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...


async def stop_process_tree(proc: _Child, *, grace: float, token: str | None = None) -> None:
    """SIGTERM the process group (and marked escapees), wait up to ``grace``, then SIGKILL.

    Returns only when the direct child is reaped (bounded) and the group is empty.
    """
    pgid = proc.pid
    _signal_group(pgid, signal.SIGTERM)
    if token:
        kill_marked(token, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    # Done early when every process in the group is gone; a TERM-ignoring grandchild keeps the
    # group alive after the leader exits, which is exactly the case the grace period is for.
    while loop.time() < deadline and (proc.returncode is None or _group_alive(pgid)):
        await asyncio.sleep(_POLL)
    _signal_group(pgid, signal.SIGKILL)
    if token:
        kill_marked(token, signal.SIGKILL)
    with contextlib.suppress(TimeoutError, ProcessLookupError):
        await asyncio.wait_for(proc.wait(), _REAP_TIMEOUT)


class _AsyncioChild:
    """An ``asyncio.subprocess.Process`` with the interface of :class:`spawn.PidfdProcess`."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self.pid = proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    async def wait(self) -> int:
        return await self._proc.wait()

    async def wait_until(self, deadline: float) -> int | None:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(self._proc.wait(), timeout=max(remaining, 0.0))
        except TimeoutError:
            return None

    def abandon(self) -> None:
        """Nothing to release: asyncio's child watcher owns the waiting."""


async def _start(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], log_fd: int
) -> spawn.PidfdProcess | _AsyncioChild:
    if spawn.available():  # no subprocess transport, a pidfd and one timer for the deadline
        return spawn.start(argv, cwd=cwd, env=env, log_fd=log_fd)
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=log_fd, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    return _AsyncioChild(proc)


async def run_in_group(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_fd: int,
    deadline: float,
    grace: float,
    token: str | None = None,
) -> CommandOutcome:
    """Run ``argv`` with output to ``log_fd`` until it exits or the loop time ``deadline`` passes.

    On cancellation the process tree is stopped before CancelledError propagates.
    """
    try:
        proc = await _start(argv, cwd, env, log_fd)
    except FileNotFoundError:
        return CommandOutcome("spawn-error", error=f"command not found: {argv[0]}")
    except PermissionError:
        return CommandOutcome("spawn-error", error=f"command is not executable: {argv[0]}")
    except OSError as exc:
        return CommandOutcome("spawn-error", error=f"cannot start {argv[0]}: {exc.strerror or exc}")
    try:
        returncode = await proc.wait_until(deadline)
        if returncode is None:
            await stop_process_tree(proc, grace=grace, token=token)
            return CommandOutcome("timeout")
    except asyncio.CancelledError:
        # Stop the tree even if we are cancelled again while doing so.
        await asyncio.shield(stop_process_tree(proc, grace=grace, token=token))
        raise
    finally:
        if proc.returncode is None:
            proc.abandon()  # not reaped even after SIGKILL and the reap timeout (python/cpython#87744)
    # The command is done; anything it left running in its group goes with it.
    _signal_group(proc.pid, signal.SIGKILL)
    return CommandOutcome("exited", exit_code=returncode)


async def run_captured(
    argv: Sequence[str], *, cwd: Path | None, env: Mapping[str, str], timeout: float
) -> CapturedResult:
    """Run a short helper command (git) and capture its combined output.

    Used only for commands whose output is small. The process group is killed on timeout or
    cancellation, which also closes the pipe for any descendant.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    except (TimeoutError, asyncio.CancelledError) as exc:
        _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await asyncio.shield(asyncio.wait_for(proc.wait(), _REAP_TIMEOUT))
        if isinstance(exc, TimeoutError):
            return CapturedResult(124, f"{argv[0]} timed out after {timeout:g}s")
        raise
    return CapturedResult(
        proc.returncode if proc.returncode is not None else -1, out.decode("utf-8", "replace")
    )


def install_pidfd_watcher(loop: asyncio.AbstractEventLoop) -> bool:
    """On Python 3.11, use the pidfd child watcher instead of one waitpid thread per child.

    3.12+ picks it by default where the kernel supports it (python/cpython#98023). Returns True
    when the pidfd watcher is in use for ``loop``.
    """
    if sys.version_info >= (3, 12) or not sys.platform.startswith("linux"):
        return sys.version_info >= (3, 12)
    try:
        fd = os.pidfd_open(os.getpid())
    except (AttributeError, OSError):
        return False
    os.close(fd)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(loop)
        asyncio.get_event_loop_policy().set_child_watcher(watcher)
    return True
