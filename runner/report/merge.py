"""Combining the results files of the shards of one run (``worktree-runner merge``, ``mode: merge``).

Each shard job writes an ordinary results JSON (schema 1) with a ``shard`` object (see
runner/report/sharding.py ``ShardPlan.metadata``): its number, the shard count, the split strategy, the
number of configured hypotheses, a digest of their sorted names, and the configuration index of each
of its results. That is enough to put the whole run back together in configuration order, and to
refuse anything that does not add up: a corrupt file, a file that is not a shard's, shards of
different runs, a duplicate or missing shard, shards that were split differently. Every problem is
one line naming the file (or the input, for a missing shard); any problem means no merged report.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeGuard

from pydantic import ValidationError

from runner.config import Status, TestExecutionResult
from runner.engine.naming import display_name
from runner.report.grading import grade_results
from runner.report.results import SCHEMA_VERSION, RunReport
from runner.report.sharding import MAX_SHARDS, config_digest

__all__ = ["MergeError", "ShardResults", "load_shard_file", "merge_files", "merge_shards", "parse_shard_doc"]

_DIGEST: Final = re.compile(r"[0-9a-f]{64}")
_COUNTS: Final = (
    ("passed", Status.PASSED),
    ("failed", Status.FAILED),
    ("timed_out", Status.TIMEOUT),
    ("errors", Status.ERROR),
    ("cancelled", Status.CANCELLED),
)
_RESULT_FIELDS: Final = frozenset(TestExecutionResult.model_fields)


class MergeError(Exception):
    """The shard files cannot be merged. ``problems``: one line each, naming the file or the input."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class _Corrupt(Exception):
    """One problem with one file (the message is the reason, without the file name)."""


@dataclass(frozen=True)
class ShardResults:
    """One shard's results file, validated."""

    file: str  # as shown in messages and in the merged report
    index: int
    total: int
    strategy: str
    hypotheses_total: int
    digest: str
    positions: list[int]
    results: list[TestExecutionResult]
    succeed_if: Literal["all", "any"]
    duration_s: float
    stopped: str | None
    baseline: str | None = None  # per-test grading: the same name in every shard of a run

    @property
    def label(self) -> str:
        return f"shard {self.index}/{self.total}"

    def run_key(self) -> tuple[int, str, int, str]:
        return (self.total, self.strategy, self.hypotheses_total, self.digest)


def _shown(text: str) -> str:
    return display_name(text, 200)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _result(entry: Any, i: int) -> TestExecutionResult:
    if not isinstance(entry, dict):
        raise _Corrupt(f"results[{i}] is not an object")
    # Consumers ignore keys they do not know (a newer writer may add some).
    known = {k: v for k, v in entry.items() if k in _RESULT_FIELDS}
    try:
        return TestExecutionResult.model_validate(known)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        raise _Corrupt(f"results[{i}].{where}: {err['msg']}") from None


def _shard_meta(meta: Any) -> tuple[int, int, str, int, str, list[int]]:
    if not isinstance(meta, dict):
        raise _Corrupt("'shard' is not an object")
    index, total, strategy = meta.get("index"), meta.get("total"), meta.get("strategy")
    hypotheses_total, digest, positions = (
        meta.get("hypotheses_total"),
        meta.get("config_digest"),
        meta.get("positions"),
    )
    if not _is_int(total) or not 1 <= total <= MAX_SHARDS:
        raise _Corrupt(f"'shard.total' must be a whole number from 1 to {MAX_SHARDS}")
    if not _is_int(index) or not 1 <= index <= total:
        raise _Corrupt(f"'shard.index' must be a whole number from 1 to {total}")
    if strategy not in ("lpt", "round-robin"):
        raise _Corrupt("'shard.strategy' must be 'lpt' or 'round-robin'")
    if not _is_int(hypotheses_total) or hypotheses_total < 1:
        raise _Corrupt("'shard.hypotheses_total' must be a whole number >= 1")
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise _Corrupt("'shard.config_digest' must be 64 lower-case hex digits")
    if not isinstance(positions, list) or not all(
        _is_int(p) and 0 <= p < hypotheses_total for p in positions
    ):
        raise _Corrupt(f"'shard.positions' must list indices from 0 to {hypotheses_total - 1}")
    if len(set(positions)) != len(positions):
        raise _Corrupt("'shard.positions' lists an index twice")
    return index, total, strategy, hypotheses_total, digest, positions


def parse_shard_doc(doc: Any, file: str) -> ShardResults:
    """Validate one loaded results document. Raises MergeError with exactly one problem."""
    try:
        return _parse(doc, file)
    except _Corrupt as exc:
        raise MergeError([f"{_shown(file)}: {exc}"]) from None


def _parse(doc: Any, file: str) -> ShardResults:
    if not isinstance(doc, dict):
        raise _Corrupt(f"corrupt results file: expected a JSON object, got {type(doc).__name__}")
    if doc.get("schema") != SCHEMA_VERSION:
        raise _Corrupt(f"corrupt results file: 'schema' is {doc.get('schema')!r}, expected {SCHEMA_VERSION}")
    if "shard" not in doc:
        raise _Corrupt(
            "not a shard results file (it has no 'shard' key: only runs with shard: K/N / --shard K/N "
            "can be merged)"
        )
    try:
        index, total, strategy, hypotheses_total, digest, positions = _shard_meta(doc["shard"])
        entries = doc.get("results")
        if not isinstance(entries, list):
            raise _Corrupt("'results' is not a list")
        results = [_result(entry, i) for i, entry in enumerate(entries)]
        if len(results) != len(positions):
            raise _Corrupt(
                f"'results' has {len(results)} entries but 'shard.positions' lists {len(positions)}"
            )
        names = Counter(r.name for r in results)
        twice = [n for n, c in names.items() if c > 1]
        if twice:
            raise _Corrupt(f"hypothesis '{display_name(twice[0], 80)}' is listed twice in 'results'")
        for key, status in _COUNTS:
            counted = sum(1 for r in results if r.status is status)
            if doc.get(key) != counted:
                raise _Corrupt(f"'{key}' is {doc.get(key)!r} but 'results' has {counted}")
        succeed_if = doc.get("succeed_if")
        if succeed_if not in ("all", "any"):
            raise _Corrupt("'succeed_if' must be 'all' or 'any'")
        duration = doc.get("duration_s")
        if not _is_number(duration) or duration < 0:
            raise _Corrupt("'duration_s' must be a number >= 0")
        stopped = doc.get("stopped")
        if stopped is not None and not isinstance(stopped, str):
            raise _Corrupt("'stopped' must be a string or null")
        baseline = doc.get("baseline")
        if baseline is not None and not isinstance(baseline, str):
            raise _Corrupt("'baseline' must be a string or null")
    except _Corrupt as exc:
        raise _Corrupt(f"corrupt results file: {exc}") from None
    return ShardResults(
        file=file,
        index=index,
        total=total,
        strategy=strategy,
        hypotheses_total=hypotheses_total,
        digest=digest,
        positions=positions,
        results=results,
        succeed_if=succeed_if,
        duration_s=float(duration),
        stopped=stopped,
        baseline=baseline,
    )


def load_shard_file(path: Path, shown: str | None = None) -> ShardResults:
    """Read and validate one shard's results JSON. Raises MergeError with exactly one problem."""
    file = shown if shown is not None else str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MergeError([f"{_shown(file)}: file not found"]) from None
    except IsADirectoryError:
        raise MergeError([f"{_shown(file)}: is a directory, expected a results JSON file"]) from None
    except OSError as exc:
        raise MergeError([f"{_shown(file)}: cannot read: {exc.strerror or exc}"]) from None
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise MergeError([f"{_shown(file)}: corrupt results file: not UTF-8 text"]) from None
    except json.JSONDecodeError as exc:
        reason = f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        raise MergeError([f"{_shown(file)}: corrupt results file: {reason}"]) from None
    except RecursionError:
        raise MergeError([f"{_shown(file)}: corrupt results file: nested too deeply"]) from None
    return parse_shard_doc(doc, file)


def _difference(shard: ShardResults, ref: ShardResults) -> str:
    if shard.total != ref.total:
        return f"it is one of {shard.total} shards, {_shown(ref.file)} one of {ref.total}"
    if shard.hypotheses_total != ref.hypotheses_total or shard.digest != ref.digest:
        return f"its hypotheses differ from those of {_shown(ref.file)} (config_digest)"
    return (
        f"it was split by {shard.strategy}, {_shown(ref.file)} by {ref.strategy} "
        "(give every shard job the same durations-file)"
    )


def merge_shards(shards: Sequence[ShardResults], *, source: str, unreadable: int = 0) -> RunReport:
    """The merged report of every shard of one run. Raises MergeError listing every problem.

    ``source`` names where the files came from (the flag or input) in problems that concern no
    single file; ``unreadable`` is how many files were already rejected (mentioned with missing shards).
    """
    problems: list[str] = []
    if not shards:
        raise MergeError([f"{source}: no shard results to merge"])
    # The run most files belong to is the reference; the odd ones out are reported.
    # (Counter keeps first-seen order and max() returns the first of equals: ties go to the earlier file.)
    keys = Counter(s.run_key() for s in shards)
    ref_key = max(keys, key=keys.__getitem__)
    ref = next(s for s in shards if s.run_key() == ref_key)
    by_index: dict[int, ShardResults] = {}
    for shard in shards:
        if shard.run_key() != ref_key:
            problems.append(
                f"{_shown(shard.file)}: {shard.label} is from a different run: {_difference(shard, ref)}"
            )
            continue
        if shard.succeed_if != ref.succeed_if:
            problems.append(
                f"{_shown(shard.file)}: succeed_if is '{shard.succeed_if}' but '{ref.succeed_if}' in "
                f"{_shown(ref.file)}; every shard job must use the same succeed-if"
            )
        if shard.index in by_index:
            problems.append(
                f"{_shown(shard.file)}: duplicate {shard.label} "
                f"(also in {_shown(by_index[shard.index].file)})"
            )
        else:
            by_index[shard.index] = shard
    missing = [k for k in range(1, ref.total + 1) if k not in by_index]
    hint = f" ({unreadable} of the files could not be used)" if unreadable else ""
    problems.extend(f"{source}: missing shard {k}/{ref.total}{hint}" for k in missing)

    owner: dict[int, ShardResults] = {}
    name_owner: dict[str, ShardResults] = {}
    placed: dict[int, TestExecutionResult] = {}
    for index in sorted(by_index):
        shard = by_index[index]
        for position, result in zip(shard.positions, shard.results, strict=True):
            name = display_name(result.name, 80)
            if position in owner:
                other = owner[position]
                problems.append(
                    f"{_shown(shard.file)}: hypothesis #{position + 1} '{name}' is also in {other.label} "
                    f"({_shown(other.file)}): the shards were split differently (every shard job must see "
                    "the same hypotheses and durations-file)"
                )
                continue
            if result.name in name_owner:
                other = name_owner[result.name]
                problems.append(
                    f"{_shown(shard.file)}: hypothesis '{name}' is also in {other.label} "
                    f"({_shown(other.file)})"
                )
                continue
            owner[position], name_owner[result.name] = shard, shard
            placed[position] = result
    if problems:
        raise MergeError(problems)
    absent = [p for p in range(ref.hypotheses_total) if p not in placed]
    if absent:
        shown = ", ".join(f"#{p + 1}" for p in absent[:10]) + (" …" if len(absent) > 10 else "")
        raise MergeError(
            [
                f"{source}: {len(absent)} hypotheses are in no shard ({shown}): "
                "the shards were split differently"
            ]
        )
    results = [placed[p] for p in range(ref.hypotheses_total)]
    if config_digest([r.name for r in results]) != ref.digest:
        raise MergeError(
            [f"{source}: the hypothesis names in the shards do not match their config_digest "
             "(was a results file changed after the run?)"]
        )  # fmt: skip
    ordered = [by_index[k] for k in sorted(by_index)]
    stopped = [f"{s.label}: {s.stopped}" for s in ordered if s.stopped]
    # Grade again across shards: the baseline ran in one shard, the others could not compare with it.
    baseline = next((s.baseline for s in ordered if s.baseline), None)
    results = grade_results(results, baseline)
    report = RunReport(
        results=results,
        succeed_if=ref.succeed_if,
        # The shards ran side by side: the run took as long as its slowest shard.
        duration_s=max(s.duration_s for s in ordered),
        cancelled_by="; ".join(stopped) or None,
        extra={
            "logs_dir": None,
            "merged": {
                "total": ref.total,
                "strategy": ref.strategy,
                "hypotheses_total": ref.hypotheses_total,
                "config_digest": ref.digest,
                "shards": [
                    {
                        "index": s.index,
                        "file": s.file,
                        "results": len(s.results),
                        "conclusion": RunReport(results=s.results, succeed_if=s.succeed_if).conclusion,
                        "duration_s": round(s.duration_s, 3),
                        "stopped": s.stopped,
                    }
                    for s in ordered
                ],
            },
        },
    )
    if baseline is not None:
        report.extra["baseline"] = baseline
    return report


def merge_files(paths: Sequence[Path], *, source: str, shown: Sequence[str] | None = None) -> RunReport:
    """Load every file and merge them. The same file named twice counts once. Raises MergeError
    listing every problem (unreadable or corrupt files first, then what does not add up)."""
    labels = list(shown) if shown is not None else [str(p) for p in paths]
    problems: list[str] = []
    loaded: list[ShardResults] = []
    seen: set[Path] = set()
    for path, label in zip(paths, labels, strict=True):
        key = path.resolve()
        if key in seen:
            continue
        seen.add(key)
        try:
            loaded.append(load_shard_file(path, label))
        except MergeError as exc:
            problems.extend(exc.problems)
    if not loaded:
        raise MergeError(problems or [f"{source}: no shard results to merge"])
    try:
        report = merge_shards(loaded, source=source, unreadable=len(problems))
    except MergeError as exc:
        problems.extend(exc.problems)
    if problems:
        raise MergeError(problems)
    return report
