"""Per-test verdicts in the job summary and PR comment: fixed / broken / flaky cells, and the tests whose
outcome differs across hypotheses (test x hypothesis, icons), collapsed and within a size budget.

Reads only the results document (schema 1, ``results[].tests`` as ``runner.report.grading`` writes it);
every id and name is untrusted text and goes through the summary's escaping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["VERDICT_HEAD", "differing_tests_section", "has_verdicts", "verdict_cells"]

#: Columns appended to the summary's table when any hypothesis has per-test data.
VERDICT_HEAD: Final = (" Fixed | Broken | Flaky |", " ---: | ---: | ---: |")
#: At most this many hypotheses (columns) and tests (rows) in the differing-tests table.
MAX_COLUMNS: Final = 12
MAX_ROWS: Final = 200

_ICONS: Final[Mapping[str, str]] = {
    "passed": "✅", "xfail": "✅", "xpass": "✅", "failed": "❌", "error": "💥", "skipped": "⏭️",
    "flaky": "🔁", "missing": "➖",
}  # fmt: skip
_PASSING: Final = frozenset({"passed", "xfail", "xpass"})


def _tests(result: object) -> Mapping[str, Any] | None:
    if not isinstance(result, Mapping):
        return None
    tests = result.get("tests")
    return tests if isinstance(tests, Mapping) and isinstance(tests.get("outcomes"), Mapping) else None


def _total(tests: Mapping[str, Any], name: str) -> int | None:
    truncated = tests.get("truncated")
    if isinstance(truncated, Mapping) and isinstance(truncated.get(name), int):
        return int(truncated[name])
    value = tests.get(name)
    return len(value) if isinstance(value, list) else None


def has_verdicts(doc: Mapping[str, Any]) -> bool:
    results = doc.get("results")
    return isinstance(results, list) and any(_tests(r) is not None for r in results)


def verdict_cells(result: object) -> str:
    """`` 3 | 1 | 2 |``: fixed, broken, flaky of one hypothesis (``—`` where there is nothing to say)."""
    tests = _tests(result)
    if tests is None:
        return " — | — | — |"
    fixed, broken, flaky = (_total(tests, k) for k in ("fail_to_pass", "pass_to_fail", "flaky"))
    return "".join(f" {'—' if v is None else v} |" for v in (fixed, broken, flaky))


def _folded(outcome: str | None, flaky: bool) -> str:
    if flaky:
        return "flaky"
    if outcome is None:
        return "missing"
    return "passed" if outcome in _PASSING else outcome


def differing_tests_section(
    doc: Mapping[str, Any],
    *,
    escape: Callable[[str, int], str],
    budget: int,
    measure: Callable[[str], int],
) -> str:
    """A collapsed table of the tests whose outcome is not the same in every hypothesis with per-test
    data (baseline first), cut to ``budget`` (in ``measure`` units); ``""`` when there is none."""
    results = doc.get("results")
    graded = [(r, t) for r in (results if isinstance(results, list) else []) if (t := _tests(r)) is not None]
    if len(graded) < 2:
        return ""
    baseline = doc.get("baseline")
    graded.sort(key=lambda rt: rt[0].get("name") != baseline)  # stable: configuration order otherwise
    columns: list[tuple[str, dict[str, str]]] = []
    for result, tests in graded:
        outcomes = tests["outcomes"]
        rerun_passed = tests.get("rerun_passed")
        flaky = set(rerun_passed) if isinstance(rerun_passed, list) else set()
        name = str(result.get("name", "?"))
        folded = {str(i): _folded(str(o), str(i) in flaky) for i, o in outcomes.items()}
        columns.append((name, folded))
    ids = sorted({i for _, folded in columns for i in folded})
    differing = [i for i in ids if len({folded.get(i, "missing") for _, folded in columns}) > 1]
    if not differing:
        return ""
    broken = {str(i) for _, t in graded if isinstance(t.get("pass_to_fail"), list) for i in t["pass_to_fail"]}
    differing.sort(key=lambda i: (i not in broken, i))  # broken tests first
    shown_columns = columns[:MAX_COLUMNS]
    head = "| Test |" + "".join(f" {escape(name, 60)} |" for name, _ in shown_columns) + "\n"
    head += "| --- |" + " :---: |" * len(shown_columns) + "\n"
    opening = (
        f"<details><summary>Tests whose outcome differs across hypotheses ({len(differing)})</summary>\n\n"
        "✅ passed · ❌ failed · 💥 error · ⏭️ skipped · 🔁 flaky (passed on a re-run) · ➖ not run\n\n"
    )
    closing = "\n</details>\n\n"
    text = opening + head
    shown = 0
    for test_id in differing[:MAX_ROWS]:
        row = f"| {escape(test_id, 300)} |" + "".join(
            f" {_ICONS[folded.get(test_id, 'missing')]} |" for _, folded in shown_columns
        ) + "\n"
        if measure(text + row + closing) + 120 > budget:
            break
        text += row
        shown += 1
    if shown == 0:
        return ""
    left = []
    if shown < len(differing):
        left.append(f"{shown} of {len(differing)} tests shown")
    if len(shown_columns) < len(columns):
        left.append(f"{len(shown_columns)} of {len(columns)} hypotheses shown")
    note = f"\n_{'; '.join(left)}; the results file has them all._\n" if left else ""
    return text + note + closing
