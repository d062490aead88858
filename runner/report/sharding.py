"""Splitting the hypotheses of one configuration across the jobs of a matrix (``shard: K/N``).

Every shard job computes the whole split on its own and keeps its part, so the split must be a pure
function of what every job sees alike: the configured hypothesis names (in configuration order) and,
optionally, the durations of an earlier run.

* **lpt** (a durations file is given and knows at least one configured hypothesis): hypotheses are
  taken longest expected duration first (ties: configuration order) and each goes to the shard with
  the least expected load so far (ties: fewer hypotheses, then the lower shard number). A hypothesis
  without a recorded duration is expected to take the median of the known ones. Greedy list
  scheduling guarantees ``max load <= total / N + longest single duration``.
* **round-robin** (otherwise): hypothesis ``i`` (0-based, configuration order) goes to shard
  ``i mod N + 1``; shard sizes differ by at most one.

Within a shard the hypotheses keep their configuration order.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = [
    "MAX_SHARDS",
    "ShardPlan",
    "ShardSpec",
    "ShardSpecError",
    "config_digest",
    "expected_durations",
    "parse_shard",
    "plan_shard",
    "split",
]

#: GitHub refuses a matrix of more than 256 jobs.
MAX_SHARDS: Final = 256

Strategy = Literal["lpt", "round-robin"]

_SPEC: Final = re.compile(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*")
_MAX_DIGITS: Final = 9  # anything longer is far above MAX_SHARDS; int() of huge strings is slow


class ShardSpecError(ValueError):
    """A malformed or out-of-range ``K/N``; the message is one line without the flag/input name."""


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` of ``total`` (both 1-based)."""

    index: int
    total: int

    def __post_init__(self) -> None:
        if not 1 <= self.total <= MAX_SHARDS:
            raise ShardSpecError(f"the shard count must be between 1 and {MAX_SHARDS}, got {self.total}")
        if not 1 <= self.index <= self.total:
            raise ShardSpecError(f"the shard number must be between 1 and {self.total}, got {self.index}")

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


def _number(digits: str) -> int:
    return int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS


def parse_shard(text: str) -> ShardSpec:
    """``"2/4"`` -> ShardSpec(2, 4). Raises ShardSpecError with a one-line reason."""
    match = _SPEC.fullmatch(text)
    if match is None:
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise ShardSpecError(f"expected K/N with 1 <= K <= N <= {MAX_SHARDS} (e.g. 2/4), got {shown!r}")
    index, total = _number(match.group(1)), _number(match.group(2))
    if total > MAX_SHARDS:
        raise ShardSpecError(
            f"{total} shards is more than {MAX_SHARDS}, the most jobs GitHub allows in one matrix"
        )
    if total < 1:
        raise ShardSpecError(f"the shard count N must be at least 1, got {text.strip()!r}")
    if index < 1:
        raise ShardSpecError(f"shards are numbered from 1, got {text.strip()!r}")
    if index > total:
        raise ShardSpecError(f"shard {index} does not exist when there are {total} shards")
    return ShardSpec(index, total)


def config_digest(names: Sequence[str]) -> str:
    """sha256 of the sorted hypothesis names as compact JSON: the identity of a configuration."""
    text = json.dumps(sorted(names), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _usable(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value >= 0


def expected_durations(names: Sequence[str], durations: Mapping[str, float]) -> list[float] | None:
    """Expected duration per name, or None when no name has a usable recorded duration.

    Unknown names (and negative or non-finite records) are expected to take the median of the known.
    """
    known = [durations[n] for n in names if n in durations and _usable(durations[n])]
    if not known:
        return None
    median = statistics.median(known)
    return [durations[n] if n in durations and _usable(durations[n]) else median for n in names]


def split(
    names: Sequence[str], total: int, durations: Mapping[str, float] | None = None
) -> tuple[Strategy, list[list[int]]]:
    """Partition the configuration indices ``0..len(names)-1`` into ``total`` shards.

    Returns the strategy used and, per shard (0-based here), its indices in ascending order.
    """
    if not 1 <= total <= MAX_SHARDS:
        raise ValueError(f"total must be between 1 and {MAX_SHARDS}, got {total}")
    expected = expected_durations(names, durations) if durations else None
    shards: list[list[int]] = [[] for _ in range(total)]
    if expected is None:
        for i in range(len(names)):
            shards[i % total].append(i)
        return "round-robin", shards
    # (load, count, shard) is unique per shard, so the heap order (and the split) is deterministic.
    heap: list[tuple[float, int, int]] = [(0.0, 0, s) for s in range(total)]
    for i in sorted(range(len(names)), key=lambda i: (-expected[i], i)):
        load, count, shard = heapq.heappop(heap)
        shards[shard].append(i)
        heapq.heappush(heap, (load + expected[i], count + 1, shard))
    for part in shards:
        part.sort()
    return "lpt", shards


@dataclass(frozen=True)
class ShardPlan:
    """What one shard job runs, and the metadata its results file records."""

    spec: ShardSpec
    strategy: Strategy
    positions: list[int]  # configuration indices of this shard's hypotheses, ascending
    hypotheses_total: int
    digest: str

    def metadata(self) -> dict[str, Any]:
        """The results JSON's ``shard`` object."""
        return {
            "index": self.spec.index,
            "total": self.spec.total,
            "strategy": self.strategy,
            "hypotheses_total": self.hypotheses_total,
            "config_digest": self.digest,
            "positions": list(self.positions),
        }


def plan_shard(names: Sequence[str], spec: ShardSpec, durations: Mapping[str, float] | None) -> ShardPlan:
    strategy, shards = split(names, spec.total, durations)
    return ShardPlan(
        spec=spec,
        strategy=strategy,
        positions=shards[spec.index - 1],
        hypotheses_total=len(names),
        digest=config_digest(names),
    )
