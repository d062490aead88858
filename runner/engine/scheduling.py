"""Which hypothesis runs first.

With durations from a previous results file, the longest expected hypothesis starts first
(LPT: longest processing time first, which bounds the makespan at 4/3 of optimal and avoids a
long straggler starting last). Hypotheses without a recorded duration are expected to take the
average of the known ones, as pytest-split does. Without durations, the configured order is kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

from runner.config import ConfigError

T = TypeVar("T")

__all__ = ["load_durations", "order_by_expected_duration"]


def order_by_expected_duration(
    items: Iterable[T], durations: Mapping[str, float], *, key: Callable[[T], str]
) -> list[T]:
    ordered = list(items)
    if not durations:
        return ordered
    known = [d for d in durations.values() if d >= 0]
    average = sum(known) / len(known) if known else 0.0
    # sorted() is stable: equal expectations keep the configured order.
    return sorted(ordered, key=lambda item: -durations.get(key(item), average))


def load_durations(path: str | Path) -> dict[str, float]:
    """``name -> duration_s`` from a results JSON written by an earlier run (schema 1)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("file not found", source=str(p)) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"not a readable results JSON: {exc}", source=str(p)) from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ConfigError("not a worktree-runner results file (no 'results' list)", source=str(p))
    out: dict[str, float] = {}
    for i, entry in enumerate(data["results"]):
        if not isinstance(entry, dict):
            raise ConfigError("expected an object", source=str(p), location=f"results[{i}]")
        name, duration = entry.get("name"), entry.get("duration_s")
        if not isinstance(name, str) or not isinstance(duration, int | float) or isinstance(duration, bool):
            raise ConfigError(
                "needs a string 'name' and a number 'duration_s'", source=str(p), location=f"results[{i}]"
            )
        # A cancelled or errored hypothesis says nothing about how long it takes.
        if entry.get("status") in (None, "passed", "failed", "timeout"):
            out[name] = float(duration)
    return out
