"""One line per finished hypothesis, as results arrive (the CLI's stderr, the action's log)."""

from __future__ import annotations

import sys

from runner.config import TestExecutionResult
from runner.engine.naming import display_name

__all__ = ["progress_printer"]


def progress_printer(stream: object = None) -> object:
    out = stream or sys.stderr

    def show(result: TestExecutionResult, done: int, total: int) -> None:
        code = "" if result.exit_code is None else f", exit {result.exit_code}"
        name = display_name(result.name)
        print(
            f"[{done}/{total}] {name}: {result.status} in {result.duration_s:.2f}s{code}",
            file=out,  # type: ignore[arg-type]
            flush=True,
        )

    return show
