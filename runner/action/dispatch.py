"""The action's entry point: signals first, the ``mode`` input, one mode, bad input as one ``::error``."""

from __future__ import annotations

import traceback

from runner.action.mode_test import run_test_mode
from runner.config import ConfigError
from runner.engine import signals
from runner.github import ActionsLog, InputError, get_input
from runner.run import EXIT_BAD_INPUT

__all__ = ["MODES", "main"]

MODES = ("test", "merge", "submit", "status", "collect", "generate")


def _error_annotation(log: ActionsLog, exc: Exception) -> None:
    file = None
    if isinstance(exc, ConfigError) and exc.source and not exc.source.startswith(("input", "inputs", "--")):
        file = exc.source
    log.error(str(exc), title="worktree-runner: bad input", file=file)


def main() -> int:
    signals.install()  # first: Python is PID 1 in the container and would drop SIGTERM
    log = ActionsLog()
    try:
        token = get_input("github-token")
        if token:
            log.add_mask(token)
        mode = get_input("mode") or "test"
        if mode not in MODES:
            raise InputError("mode", f"expected one of {', '.join(MODES)}; got {mode!r}")
        if mode == "merge":
            from runner.action.mode_merge import run_merge_mode

            return run_merge_mode(log)
        if mode in ("submit", "status", "collect", "generate"):
            from runner.action.mode_openhands import run_openhands_mode

            return run_openhands_mode(mode, log)
        return run_test_mode(log)
    except (InputError, ConfigError) as exc:
        if isinstance(exc, ConfigError) and exc.source == "--repo":
            exc = InputError("working-directory", exc.reason)
        _error_annotation(log, exc)
        return EXIT_BAD_INPUT
    except Exception as exc:  # a bug: say so in one annotation, keep the traceback in the log
        traceback.print_exc()
        log.error(f"internal error: {type(exc).__name__}: {exc}", title="worktree-runner")
        return 1
