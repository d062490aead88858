"""``started_at`` timestamps: written by the run (runner.report.timeline), read by the summary's timeline."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["format_started_at", "parse_started_at"]


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
