"""One line per finished hypothesis, as results arrive (the CLI's stderr, the action's log)."""

from __future__ import annotations

import sys

from runner.config import TestExecutionResult
from runner.engine.naming import display_name

__all__ = ["progress_line", "progress_printer"]


def progress_line(result: TestExecutionResult, done: int, total: int) -> str:
    """``[3/8] fix-a: passed in 12.31s, exit 0``"""
    code = "" if result.exit_code is None else f", exit {result.exit_code}"
    name = display_name(result.name)
    return f"[{done}/{total}] {name}: {result.status} in {result.duration_s:.2f}s{code}"


def progress_printer(stream: object = None) -> object:
    out = stream or sys.stderr

    def show(result: TestExecutionResult, done: int, total: int) -> None:
        print(progress_line(result, done, total), file=out, flush=True)  # type: ignore[arg-type]

    return show
