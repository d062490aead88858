"""Judge each generated test alone, then prune the rejected ones (TestGen-LLM / CoverUp / Qodo style).

A test function (or a test method of a top-level class) is kept only if, in this order:

1. it passes (every pytest item it makes: a parametrized test passes only when all its cases do);
2. it passes again in each of ``reruns`` more runs, every run a fresh process (a hash-seed-dependent test
   never mixes outcomes inside one process);
3. it asserts something: an ``assert``, a ``raise``, ``pytest.raises``/``warns``/``fail``/``approx``, a
   ``self.assert*``/``mock.assert_*`` call, or a call to a helper of the same file that does;
4. it covers lines of the module beyond the repository's own tests named by the user (measured in their
   own run) and beyond the tests kept before it (file order, Qodo's greedy rule). Lines run at import time
   (``def`` lines, constants) belong to no test.

Per-test coverage comes from ONE ``coverage run`` in which a tiny pytest plugin switches coverage.py's
dynamic context to each item's node id (what pytest-cov's ``--cov-context=test`` does, without needing
pytest-cov); ``coverage json --show-contexts`` gives the lines of each context. The same plugin writes
each item's folded outcome to a JSON file, so no console text is parsed.

Rejected tests are removed from the file with ``ast`` line spans (from the first decorator to the end;
imports, fixtures, helpers and module code stay; a class left without statements goes too), and the
pruned file is verified once more as a whole, because pruning can lower coverage.
"""

from __future__ import annotations

import ast
import contextlib
import json
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "PLUGIN_MODULE",
    "PLUGIN_SOURCE",
    "REPORT_ENV",
    "CoverageData",
    "JudgeReport",
    "TestCandidate",
    "TestVerdict",
    "coverage_writer_version",
    "find_candidates",
    "judge_tests",
    "outcomes_by_key",
    "percent",
    "prune",
    "read_coverage_data",
    "read_coverage_json",
    "read_items",
]

PLUGIN_MODULE = "worktree_runner_judge_plugin"
REPORT_ENV = "WORKTREE_RUNNER_JUDGE_REPORT"

# Written into a scratch directory outside the worktree and loaded with ``-p``. Standard library + pytest
# only; coverage.py is optional (the re-runs run without it).
PLUGIN_SOURCE = '''\
"""worktree-runner: per-item outcome and per-item coverage context (written by runner.openhands.judge)."""
import json
import os

import pytest

_items = {}
_outcomes = {}
_RANK = {"passed": 0, "skipped": 1, "xfailed": 1, "xpassed": 1, "failed": 2, "error": 3}


def _coverage():
    try:
        import coverage
    except ImportError:
        return None
    return coverage.Coverage.current()


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        cls = getattr(item, "cls", None)
        name = getattr(item, "originalname", None) or item.name.split("[", 1)[0]
        key = f"{cls.__name__}::{name}" if cls is not None else name
        _items[item.nodeid] = {"path": str(item.path), "key": key}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cov = _coverage()
    if cov is not None:
        cov.switch_context(item.nodeid)
    try:
        yield
    finally:
        if cov is not None:
            cov.switch_context("")


def pytest_runtest_logreport(report):
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        else:
            outcome = report.outcome
    elif report.failed:
        outcome = "error"
    elif report.skipped:
        outcome = "skipped"
    else:
        outcome = "passed"
    old = _outcomes.get(report.nodeid, "passed")
    _outcomes[report.nodeid] = outcome if _RANK[outcome] >= _RANK[old] else old


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):
        return
    out = os.environ.get("WORKTREE_RUNNER_JUDGE_REPORT")
    if out:
        items = {
            nodeid: dict(info, outcome=_outcomes.get(nodeid, "not run")) for nodeid, info in _items.items()
        }
        with open(out, "w", encoding="utf-8") as f:
            json.dump(items, f)
'''

_ASSERTING_CALLS = frozenset({"raises", "warns", "deprecated_call", "fail", "approx"})


@dataclass(frozen=True)
class TestCandidate:
    """One test function/method of the generated file, with its source span (1-based, inclusive)."""

    __test__ = False

    key: str  # "test_x" or "TestC::test_m", as the plugin names items
    start: int
    end: int
    shadowed: bool  # an earlier definition of a name defined again later: pytest never collects it
    asserts: bool


@dataclass
class TestVerdict:
    __test__ = False

    name: str
    verdict: str  # "kept" or "rejected"
    reason: str
    stage: str  # the last stage it passed: generated, passing, stable, asserting, adding_coverage, kept
    new_lines: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict,
            "reason": self.reason,
            "new_lines": self.new_lines,
        }


@dataclass
class JudgeReport:
    verdicts: list[TestVerdict] = field(default_factory=list)
    coverage_before: float = 0.0
    coverage_by_union: float | None = None  # existing + kept, from the line sets (None: never imported)
    module_imported: bool = False

    @property
    def kept(self) -> list[str]:
        return [v.name for v in self.verdicts if v.verdict == "kept"]

    @property
    def rejected(self) -> list[str]:
        return [v.name for v in self.verdicts if v.verdict != "kept"]

    def funnel(self) -> dict[str, int]:
        order = ("generated", "passing", "stable", "asserting", "adding_coverage", "kept")
        reached = {stage: i for i, stage in enumerate(order)}
        return {
            stage: sum(1 for v in self.verdicts if reached[v.stage] >= i) for i, stage in enumerate(order)
        }


# -- the file, read with ast -------------------------------------------------------------------


def _called_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _asserts_directly(body: ast.AST) -> tuple[bool, set[str]]:
    """(asserts itself, names of plain functions it calls)."""
    called: set[str] = set()
    for node in ast.walk(body):
        if isinstance(node, ast.Assert | ast.Raise):
            return True, called
        if isinstance(node, ast.Call):
            name = _called_name(node)
            if name.startswith("assert") or name in _ASSERTING_CALLS:
                return True, called
            if isinstance(node.func, ast.Name):
                called.add(node.func.id)
    return False, called


def _is_test_class(node: ast.ClassDef) -> bool:
    return node.name.startswith("Test") or any(
        isinstance(b, ast.Attribute | ast.Name)
        and (getattr(b, "attr", None) or getattr(b, "id", "")) == "TestCase"
        for b in node.bases
    )


def _span(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> tuple[int, int]:
    # Since Python 3.8 ``lineno`` is the ``def`` line: start at the first decorator, or removing the
    # function would leave its decorator on whatever follows.
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return start, node.end_lineno or node.lineno


def find_candidates(source: str) -> list[TestCandidate]:
    """Top-level ``def test*`` and ``def test*`` directly inside a top-level test class, in file order."""
    tree = ast.parse(source)
    helpers: dict[str, bool] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("test"):
            helpers[node.name] = _asserts_directly(node)[0]
    found: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            found.append((node.name, node))
        elif isinstance(node, ast.ClassDef) and _is_test_class(node):
            for sub in node.body:
                if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef) and sub.name.startswith("test"):
                    found.append((f"{node.name}::{sub.name}", sub))
    last = {key: i for i, (key, _) in enumerate(found)}
    candidates = []
    for i, (key, node) in enumerate(found):
        direct, called = _asserts_directly(node)
        asserts = direct or any(helpers.get(name, False) for name in called)
        start, end = _span(node)
        candidates.append(TestCandidate(key, start, end, last[key] != i, asserts))
    return candidates


def prune(source: str, remove: Sequence[TestCandidate]) -> str:
    """``source`` without the spans of ``remove``; test classes left with no statement go too."""
    drop: set[int] = set()
    for cand in remove:
        drop.update(range(cand.start, cand.end + 1))
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            inner = [s for s in node.body if not set(range(_span_of(s)[0], _span_of(s)[1] + 1)) <= drop]
            if node.body and not inner:
                start, end = _span(node)
                drop.update(range(start, end + 1))
    lines = source.splitlines(keepends=True)
    pruned = "".join(line for number, line in enumerate(lines, start=1) if number not in drop)
    ast.parse(pruned)  # never write a file that does not parse
    return pruned


def _span_of(node: ast.stmt) -> tuple[int, int]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return _span(node)
    return node.lineno, node.end_lineno or node.lineno


# -- the runs ----------------------------------------------------------------------------------

Lines = set[tuple[str, int]]


@dataclass
class CoverageData:
    statements: Lines
    by_context: dict[str, Lines]

    @property
    def all_lines(self) -> Lines:
        out: Lines = set()
        for lines in self.by_context.values():
            out |= lines
        return out


def read_coverage_json(path: Path) -> CoverageData | None:
    """Statements and per-context executed lines of a ``coverage json --show-contexts`` report."""
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    statements: Lines = set()
    by_context: dict[str, Lines] = {}
    for name, info in files.items():
        executed = set(info.get("executed_lines", []))
        statements |= {(name, n) for n in executed | set(info.get("missing_lines", []))}
        contexts = info.get("contexts") or {}
        for line, labels in contexts.items():
            if int(line) not in executed:
                continue  # e.g. a docstring line recorded but not a statement
            for label in labels or [""]:
                by_context.setdefault(label, set()).add((name, int(line)))
        if not contexts:
            by_context.setdefault("", set()).update((name, n) for n in executed)
    if not statements:
        return None
    return CoverageData(statements, by_context)


def coverage_writer_version(data_file: Path) -> str | None:
    """The version of coverage.py that wrote ``data_file`` (its SQLite ``meta`` table), None if unknown."""
    try:
        with contextlib.closing(sqlite3.connect(f"{data_file.resolve().as_uri()}?mode=ro", uri=True)) as db:
            row = db.execute("select value from meta where key = 'version'").fetchone()
    except (sqlite3.Error, OSError, ValueError):
        return None
    return str(row[0]) if row else None


def read_coverage_data(data_file: Path, root: Path) -> CoverageData | None:
    """The same as ``read_coverage_json`` of ``coverage json --show-contexts``, read in this process
    with coverage.py's API (file names relative to ``root``, as the json report has them), without a
    configuration file. ValueError if another version of coverage.py wrote ``data_file`` (its json report
    could differ: ask that version)."""
    import coverage  # a dependency of ours; imported here because only verification needs it

    writer = coverage_writer_version(data_file)
    if writer != coverage.__version__:
        raise ValueError(f"coverage.py {writer} wrote {data_file}, this is {coverage.__version__}")
    cov = coverage.Coverage(data_file=str(data_file), config_file=False)
    cov.load()
    data = cov.get_data()
    statements: Lines = set()
    by_context: dict[str, Lines] = {}
    for path in data.measured_files():
        if not Path(path).is_absolute():  # the project's relative_files: let coverage json resolve it
            raise ValueError(f"relative file name in the coverage data: {path}")
        try:
            name = str(Path(path).resolve().relative_to(root.resolve()))
        except ValueError:
            name = path
        _, file_statements, _, missing, _ = cov.analysis2(path)
        executed = set(file_statements) - set(missing)
        statements |= {(name, n) for n in file_statements}
        contexts = data.contexts_by_lineno(path)
        for line, labels in contexts.items():
            if line not in executed:
                continue
            for label in labels or [""]:
                by_context.setdefault(label, set()).add((name, line))
        if not contexts:
            by_context.setdefault("", set()).update((name, n) for n in executed)
    if not statements:
        return None
    return CoverageData(statements, by_context)


def percent(covered: Lines, statements: Lines) -> float:
    if not statements:
        return 0.0
    return round(100.0 * len(covered & statements) / len(statements), 2)


def read_items(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def outcomes_by_key(items: dict[str, dict[str, str]], test_file: Path) -> dict[str, list[tuple[str, str]]]:
    """{function key: [(node id, outcome), ...]} for the items of ``test_file``."""
    target = test_file.resolve()
    out: dict[str, list[tuple[str, str]]] = {}
    for nodeid, info in items.items():
        try:
            same = Path(info["path"]).resolve() == target
        except (KeyError, OSError, TypeError):
            continue
        if same:
            out.setdefault(info["key"], []).append((nodeid, info.get("outcome", "not run")))
    return out


async def judge_tests(
    *,
    source: str,
    test_file: Path,
    first_items: dict[str, dict[str, str]],
    first_coverage: CoverageData | None,
    baseline: Lines,
    coverage_before: float,
    rerun: Callable[[int], Awaitable[dict[str, dict[str, str]] | None]],
    reruns: int,
) -> JudgeReport:
    """Verdicts for every candidate of ``source``, given the first (coverage) run's items and contexts.

    ``rerun(i)`` runs the file once more in a fresh process and returns its items (None: it did not
    finish, which counts as a failure of every test).
    """
    candidates = find_candidates(source)
    first = outcomes_by_key(first_items, test_file)
    report = JudgeReport(coverage_before=coverage_before, module_imported=first_coverage is not None)
    verdicts: dict[str, TestVerdict] = {}
    passing: list[TestCandidate] = []
    for cand in candidates:
        if cand.shadowed:
            verdicts[cand.key + f"@{cand.start}"] = TestVerdict(
                cand.key, "rejected", "shadowed by a later definition of the same name (never collected)",
                "generated",
            )  # fmt: skip
            continue
        runs = first.get(cand.key)
        if not runs:
            verdicts[cand.key] = TestVerdict(cand.key, "rejected", "not collected by pytest", "generated")
            continue
        bad = [f"{nodeid.split('::', 1)[-1]} {outcome}" for nodeid, outcome in runs if outcome != "passed"]
        if bad:
            verdicts[cand.key] = TestVerdict(
                cand.key, "rejected", "fails: " + ", ".join(bad[:3]), "generated"
            )
            continue
        passing.append(cand)
    unstable: dict[str, str] = {}
    if passing:
        for i in range(1, reruns + 1):
            items = await rerun(i)
            again = outcomes_by_key(items or {}, test_file)
            for cand in passing:
                if cand.key in unstable:
                    continue
                outcomes = again.get(cand.key)
                if items is None or not outcomes or any(o != "passed" for _, o in outcomes):
                    what = "did not finish" if items is None else ("not run" if not outcomes else "failed")
                    unstable[cand.key] = f"flaky: passed in the first run, {what} in re-run {i} of {reruns}"
    contexts: dict[str, Lines] = {}
    import_lines: Lines = set()
    if first_coverage is not None:
        import_lines = first_coverage.by_context.get("", set())
        for key, runs in first.items():
            lines: Lines = set()
            for nodeid, _ in runs:
                lines |= first_coverage.by_context.get(nodeid, set())
            contexts[key] = lines & first_coverage.statements
    covered = set(baseline) | import_lines
    for cand in passing:
        if cand.key in unstable:
            verdicts[cand.key] = TestVerdict(cand.key, "rejected", unstable[cand.key], "passing")
        elif not cand.asserts:
            verdicts[cand.key] = TestVerdict(cand.key, "rejected", "asserts nothing", "stable")
        else:
            gain = contexts.get(cand.key, set()) - covered
            if not gain:
                why = "adds no line coverage beyond the repository's tests and the tests kept before it"
                verdicts[cand.key] = TestVerdict(cand.key, "rejected", why, "asserting")
            else:
                covered |= gain
                verdicts[cand.key] = TestVerdict(
                    cand.key, "kept", f"passes, stable, asserts, covers {len(gain)} new line(s)", "kept",
                    new_lines=len(gain),
                )  # fmt: skip
    # Report in file order.
    order = [c.key + (f"@{c.start}" if c.shadowed else "") for c in candidates]
    report.verdicts = [verdicts[k] for k in order if k in verdicts]
    if first_coverage is not None:
        report.coverage_by_union = percent(covered, first_coverage.statements)
    return report
