"""worktree-runner: test several candidate changes at once, each in its own git worktree."""

from __future__ import annotations

__version__ = "0.1.0"

from runner.async_test_executor import AsyncTestExecutor, WorkItem
from runner.config import (
    ConfigError,
    ExecutionSettings,
    Hypothesis,
    RunnerConfig,
    Status,
    TestExecutionResult,
    load_config,
    parse_config,
)
from runner.engine.worktrees import Worktree, WorktreeError, WorktreeManager
from runner.report.results import RunReport, write_junit, write_results_json
from runner.run import RunOptions, run_config, run_config_async
from runner.test_executor import TestExecutor

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
