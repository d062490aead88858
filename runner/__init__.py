"""worktree-runner: test several candidate changes at once, each in its own git worktree."""

from __future__ import annotations

__version__ = "0.1.0"

from .async_test_executor import AsyncTestExecutor, WorkItem
from .config import (
    ConfigError,
    ExecutionSettings,
    Hypothesis,
    RunnerConfig,
    Status,
    TestExecutionResult,
    load_config,
    parse_config,
)
from .results import RunReport, write_junit, write_results_json
from .run import RunOptions, run_config, run_config_async
from .test_executor import TestExecutor
from .worktrees import Worktree, WorktreeError, WorktreeManager

__all__ = [
    "AsyncTestExecutor",
    "ConfigError",
    "ExecutionSettings",
    "Hypothesis",
    "RunOptions",
    "RunReport",
    "RunnerConfig",
    "Status",
    "TestExecutionResult",
    "TestExecutor",
    "WorkItem",
    "Worktree",
    "WorktreeError",
    "WorktreeManager",
    "__version__",
    "load_config",
    "parse_config",
    "run_config",
    "run_config_async",
    "write_junit",
    "write_results_json",
]
