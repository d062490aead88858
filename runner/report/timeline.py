"""When each hypothesis started: recorded from the executor's start events, stamped on the results.

The executor measures ``duration_s`` from the moment a hypothesis' worktree is ready; it calls its
``on_start`` hook at exactly that moment. :class:`StartTimes` records the wall-clock time of each
call and afterwards stamps it on the results as ``started_at`` (ISO 8601, UTC, milliseconds), so a
result's bar on a timeline runs from ``started_at`` to ``started_at + duration_s``. A hypothesis that
never started (cancelled while queued) keeps ``started_at: null``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from runner.config import Hypothesis, TestExecutionResult
from runner.engine.timestamps import format_started_at

__all__ = ["StartTimes"]


class StartTimes:
    """Collects start events by configuration index; forwards them as ``(name, total)``."""

    def __init__(self, total: int, forward: Callable[[str, int], None] | None = None) -> None:
        self.total = total
        self.forward = forward
        self.started: dict[int, float] = {}

    def record(self, hypothesis: Hypothesis, index: int) -> None:
        self.started[index] = time.time()
        if self.forward is not None:
            self.forward(hypothesis.name, self.total)

    def stamp(self, results: Sequence[TestExecutionResult]) -> list[TestExecutionResult]:
        """``results`` (in configuration order) with ``started_at`` set where a start was seen."""
        return [
            r.model_copy(update={"started_at": format_started_at(self.started[i])})
            if i in self.started
            else r
            for i, r in enumerate(results)
        ]
