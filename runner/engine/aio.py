"""Running the async engine from synchronous code (the sync wrappers and the CLI)."""

from __future__ import annotations

import asyncio
import sys
import threading
import warnings
from collections.abc import Coroutine
from typing import Any, TypeVar

from runner.engine.process import install_pidfd_watcher

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh event loop and return its result.

    Called from inside a running loop (a notebook, an async test), the coroutine runs on a
    private loop in a helper thread instead of failing with "asyncio.run() cannot be called
    from a running event loop".
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="worktree-runner-loop")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]


def _run_here(coro: Coroutine[Any, Any, T]) -> T:
    pidfd = sys.version_info < (3, 12) and threading.current_thread() is threading.main_thread()
    with asyncio.Runner() as runner:
        if pidfd:
            pidfd = install_pidfd_watcher(runner.get_loop())
        box: list[T] = []

        async def keep() -> None:
            # Return None to the Runner: on 3.11 it formats the main task's repr (result included)
            # at exit, which costs megabytes for a report with many output tails.
            box.append(await coro)

        try:
            runner.run(keep())
            return box[0]
        finally:
            if pidfd:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    asyncio.get_event_loop_policy().set_child_watcher(None)  # type: ignore[arg-type]
