"""The synchronous, backwards-compatible face of the executor."""

from __future__ import annotations

from runner.async_test_executor import AsyncTestExecutor

__all__ = ["TestExecutor"]


class TestExecutor(AsyncTestExecutor):
    """``TestExecutor(config).execute_parallel(hypotheses, worktrees) -> list[TestExecutionResult]``.

    The historical synchronous API: ``execute_parallel``, ``execute_single`` and
    ``should_parallelize``. Each sync call runs its own event loop (see ``runner.engine.aio.run_sync``);
    the ``*_async`` methods of :class:`AsyncTestExecutor` are available too.
    """

    __test__ = False  # keep pytest from collecting this class
