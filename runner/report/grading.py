"""Per-test verdicts of each hypothesis against the baseline (SWE-bench's vocabulary), and ``best``.

Input: each result's ``tests`` as the executor left it (``runner.engine.per_test.to_json``: ``outcomes``
``{id: outcome}``, ``flaky`` ids that passed on a re-run, ``locations`` of failing ids). Output, added to
the same mapping: counts and, against the baseline, the transitions:

* ``fail_to_pass``: failed (or errored) in the baseline, passes here: **fixed**;
* ``pass_to_fail``: passed or was skipped in the baseline, fails here *or is missing here* (as
  SWE-bench: a test that disappeared counts as failed): **broken**;
* ``fail_to_fail``: failed in the baseline, still fails, is skipped or is missing here;
* ``pass_to_pass``: how many kept passing (a count);
* ``flaky``: ids of this hypothesis that failed, then passed on a re-run; they, and the baseline's
  flaky ids, are never fixed nor broken. (``rerun_passed`` is the same list, uncapped, as the engine
  wrote it.)

``passed`` / ``failed`` / ``skipped`` count this hypothesis' own first-run outcomes, flaky ids excluded
(``passed + failed + skipped + len(flaky)`` is the number of tests). Lists longer than
:data:`LIST_CAP` keep their first ids (sorted) and ``truncated: {list: total}`` gives the full length.
Tests new in a hypothesis (absent from the baseline) count in its totals but in no transition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runner.config import Status, TestExecutionResult

__all__ = ["LIST_CAP", "best_by_tests", "grade_results", "list_total"]

LIST_CAP = 200
PASSING = frozenset({"passed", "xfail", "xpass"})
FAILING = frozenset({"failed", "error"})
TRANSITIONS = ("fail_to_pass", "pass_to_fail", "fail_to_fail")


def _outcomes(tests: Mapping[str, Any] | None) -> dict[str, str] | None:
    if not isinstance(tests, Mapping):
        return None
    raw = tests.get("outcomes")
    if not isinstance(raw, Mapping):
        return None
    return {str(k): str(v) for k, v in raw.items()}


def _flaky(tests: Mapping[str, Any]) -> set[str]:
    raw = tests.get("rerun_passed")
    return {str(i) for i in raw} if isinstance(raw, list) else set()


def _capped(name: str, ids: Iterable[str], truncated: dict[str, int]) -> list[str]:
    ordered = sorted(ids)
    if len(ordered) > LIST_CAP:
        truncated[name] = len(ordered)
        return ordered[:LIST_CAP]
    return ordered


def list_total(tests: Mapping[str, Any], name: str) -> int:
    """The full length of a (possibly capped) list in a graded ``tests`` mapping."""
    truncated = tests.get("truncated")
    if isinstance(truncated, Mapping) and isinstance(truncated.get(name), int):
        return int(truncated[name])
    value = tests.get(name)
    return len(value) if isinstance(value, list) else 0


def _grade_one(tests: dict[str, Any], base: Mapping[str, Any] | None) -> dict[str, Any]:
    outcomes = _outcomes(tests) or {}
    own_flaky = _flaky(tests)
    out: dict[str, Any] = {k: v for k, v in tests.items() if k not in _GRADED}
    real = {i: o for i, o in outcomes.items() if i not in own_flaky}
    out["passed"] = sum(1 for o in real.values() if o in PASSING)
    out["failed"] = sum(1 for o in real.values() if o in FAILING)
    out["skipped"] = sum(1 for o in real.values() if o == "skipped")
    truncated: dict[str, int] = {}
    flaky = set(own_flaky)
    if base is not None:
        base_outcomes = _outcomes(base) or {}
        # A baseline failure that passed on its re-run says nothing about this hypothesis either way.
        base_flaky = _flaky(base)
        f2p: list[str] = []
        p2f: list[str] = []
        f2f: list[str] = []
        p2p = 0
        for test_id, before in base_outcomes.items():
            if test_id in flaky or test_id in base_flaky:
                continue
            after = outcomes.get(test_id)  # None: missing here, which counts as failed
            if before in FAILING:
                (f2p if after in PASSING else f2f).append(test_id)
            elif after is None or after in FAILING:
                p2f.append(test_id)
            else:
                p2p += 1
        out["fail_to_pass"] = _capped("fail_to_pass", f2p, truncated)
        out["pass_to_fail"] = _capped("pass_to_fail", p2f, truncated)
        out["fail_to_fail"] = _capped("fail_to_fail", f2f, truncated)
        out["pass_to_pass"] = p2p
    out["flaky"] = _capped("flaky", flaky, truncated)
    if truncated:
        out["truncated"] = truncated
    return out


_GRADED = frozenset({
    "passed", "failed", "skipped", "fail_to_pass", "pass_to_fail", "fail_to_fail", "pass_to_pass",
    "flaky", "truncated", "baseline",
})  # fmt: skip


def grade_results(results: Sequence[TestExecutionResult], baseline: str | None) -> list[TestExecutionResult]:
    """``results`` with ``tests`` graded against the result named ``baseline`` (if it has per-test data).

    Grading is idempotent (a merge of shards grades again with the baseline from whichever shard ran it).
    """
    base_result = next((r for r in results if r.name == baseline), None) if baseline else None
    base_tests = base_result.tests if base_result is not None and _outcomes(base_result.tests) else None
    if base_tests is not None and base_result is not None and base_result.status not in _GRADABLE:
        base_tests = None
    graded: list[TestExecutionResult] = []
    for r in results:
        if r.tests is None or _outcomes(r.tests) is None:
            graded.append(r)
            continue
        against = base_tests if (base_tests is not None and r.name != baseline) else None
        tests = _grade_one(dict(r.tests), against)
        if against is not None:
            tests["baseline"] = baseline
        graded.append(r.model_copy(update={"tests": tests}))
    return graded


_GRADABLE = frozenset({Status.PASSED, Status.FAILED})


def best_by_tests(results: Sequence[TestExecutionResult], baseline: str | None) -> str | None:
    """The hypothesis that breaks nothing, fixes most, fails fewest, has fewest flaky tests, then is
    fastest (configuration order breaks ties); ``None`` when no hypothesis other than the baseline
    was graded against it."""
    candidates = [
        r for r in results
        if r.name != baseline and r.status in _GRADABLE and r.tests is not None and "fail_to_pass" in r.tests
    ]  # fmt: skip
    if not candidates:
        return None

    def key(r: TestExecutionResult) -> tuple[bool, int, int, int, float]:
        tests = r.tests or {}
        return (
            list_total(tests, "pass_to_fail") > 0,
            -list_total(tests, "fail_to_pass"),
            int(tests.get("failed") or 0),
            list_total(tests, "flaky"),  # of two otherwise equal candidates, the one that needed no re-run
            r.duration_s,
        )

    return min(candidates, key=key).name
