"""The synchronous, backwards-compatible face of the executor."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .async_test_executor import AsyncTestExecutor, ProgressCallback
from .config import ExecutionSettings, Hypothesis, TestExecutionResult
from .worktrees import Worktree

__all__ = ["TestExecutor"]

WorktreeLike = str | os.PathLike[str] | Worktree


class TestExecutor:
    """``TestExecutor(config).execute_parallel(hypotheses, worktrees) -> list[TestExecutionResult]``.

    A thin wrapper over :class:`AsyncTestExecutor`; every call runs its own event loop.
    """

    __test__ = False  # keep pytest from collecting this class

    def __init__(
        self,
        config: ExecutionSettings | Mapping[str, Any],
        *,
        logs_dir: str | os.PathLike[str] | None = None,
        progress: ProgressCallback | None = None,
        durations: Mapping[str, float] | None = None,
    ) -> None:
        self._async = AsyncTestExecutor(config, logs_dir=logs_dir, progress=progress, durations=durations)
        self.config = self._async.config

    def should_parallelize(self, hypotheses: Sequence[Hypothesis | Mapping[str, Any]]) -> bool:
        return self._async.should_parallelize(list(hypotheses))  # type: ignore[arg-type]

    def execute_parallel(
        self,
        hypotheses: Sequence[Hypothesis | Mapping[str, Any]],
        worktrees: Sequence[WorktreeLike] | Mapping[str, WorktreeLike],
    ) -> list[TestExecutionResult]:
        return self._async.execute_parallel(hypotheses, worktrees)

    def execute_single(
        self, hypothesis: Hypothesis | Mapping[str, Any], worktree: WorktreeLike
    ) -> TestExecutionResult:
        return self._async.execute_single(hypothesis, worktree)
