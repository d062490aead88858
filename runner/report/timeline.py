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
from datetime import UTC, datetime

from runner.config import Hypothesis, TestExecutionResult

__all__ = ["StartTimes", "format_started_at", "parse_started_at"]


def format_started_at(epoch_s: float) -> str:
    """``2026-11-28T21:10:03.123Z`` for a Unix time in seconds."""
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_started_at(text: object) -> float | None:
    """The Unix time (seconds) of a ``started_at`` value, or None when it is missing or malformed.

    Results files are untrusted input (a shard's upload): anything that is not an ISO 8601 time with
    a timezone is treated as unknown rather than an error.
    """
    if not isinstance(text, str) or not 10 <= len(text) <= 40:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


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
