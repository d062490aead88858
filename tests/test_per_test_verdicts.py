"""Per-test verdicts end to end: a real project's suite (six 1.17.0 from its sdist), JUnit from another
runner, a command without a report, the plugin-load fallback, re-runs and grading."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from runner import RunOptions, RunReport, parse_config, run_config
from runner.config import ConfigError, Status, TestExecutionResult
from runner.report.grading import LIST_CAP, grade_results
from runner.report.results import write_junit, write_results_json

from .conftest import REPO_ROOT, git
from .per_test_support import REGRESSED_TESTS, SDIST, make_six_repo

PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]


@pytest.fixture(scope="module")
def six_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunReport, Path]:
    """One run of the whole scenario (shared by the assertions below: the suite runs once)."""
    root = tmp_path_factory.mktemp("six")
    repo = make_six_repo(root / "repo")
    config = parse_config({
        "command": PYTEST, "max-parallel": 2,
        "hypotheses": [
            {"name": "regressed", "ref": "HEAD"},
            {"name": "right fix", "ref": "fix/right"},
            {"name": "partial fix", "ref": "fix/partial"},
            {"name": "breaks another", "ref": "fix/breaks-other"},
            {"name": "right fix, flaky test", "ref": "fix/flaky"},
            {"name": "flaky only", "patch": str(root / "flaky-only.diff")},
        ],
    })  # fmt: skip
    report = run_config(config, RunOptions(repo=repo, logs_dir=root / "logs", worktree_base=root))
    write_results_json(report, root / "results.json")
    write_junit(report, root / "junit.xml")
    return report, root


def _by_name(report: RunReport) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in report.to_dict()["results"]}


def test_each_hypothesis_fixed_broken_flaky_exactly(six_run: tuple[RunReport, Path]) -> None:
    report, _ = six_run
    results = _by_name(report)
    assert report.extra["baseline"] == "regressed"  # the first hypothesis at HEAD
    base = results["regressed"]["tests"]
    assert (base["passed"], base["failed"], base["skipped"], base["flaky"]) == (195, 3, 2, [])
    assert "fail_to_pass" not in base  # the baseline is not graded against itself
    assert sorted(i for i, o in base["outcomes"].items() if o == "failed") == REGRESSED_TESTS

    expected = {
        "right fix": (REGRESSED_TESTS, [], [], []),
        "partial fix": (["test_six.py::test_int2byte"], [], REGRESSED_TESTS[:2], []),
        "breaks another": (REGRESSED_TESTS, ["test_six.py::test_unichr"], [], []),
        "right fix, flaky test": (REGRESSED_TESTS, [], [], ["test_six.py::test_unichr"]),
        "flaky only": ([], [], REGRESSED_TESTS, ["test_six.py::test_bytesiter"]),
    }
    for name, (f2p, p2f, f2f, flaky) in expected.items():
        tests = results[name]["tests"]
        got = (tests["fail_to_pass"], tests["pass_to_fail"], tests["fail_to_fail"], tests["flaky"])
        assert got == (f2p, p2f, f2f, flaky), name
        total = tests["passed"] + tests["failed"] + tests["skipped"] + len(tests["flaky"])
        assert total == 200, name
        # 197 did not fail in the baseline (2 of them skipped: kept); flaky ids are in no transition.
        assert tests["pass_to_pass"] == 197 - len(p2f) - len(flaky), name
    assert report.best == "right fix"
    assert report.to_dict()["best"] == "right fix"


def test_status_follows_the_reruns(six_run: tuple[RunReport, Path]) -> None:
    report, _ = six_run
    status = {r.name: r for r in report.results}
    assert status["right fix"].status is Status.PASSED
    assert status["breaks another"].status is Status.FAILED
    # Its only failure passed when re-run: passed, with the exit code and the reason kept.
    flaky = status["right fix, flaky test"]
    assert flaky.status is Status.PASSED and flaky.exit_code == 1
    assert flaky.error is not None and "flaky" in flaky.error
    # Real failures next to a flaky one: still failed.
    assert status["flaky only"].status is Status.FAILED
    log = Path(status["right fix, flaky test"].log_path or "").read_text()
    assert "re-run 1/2 of 1 failing test(s)" in log


def test_each_hypothesis_ran_its_own_code(six_run: tuple[RunReport, Path]) -> None:
    report, _ = six_run
    results = _by_name(report)
    # Only the hypotheses whose six.py has the regression fail test_int2byte: their own trees ran.
    failing_int2byte = sorted(
        name
        for name, r in results.items()
        if r["tests"]["outcomes"]["test_six.py::test_int2byte"] == "failed"
    )
    assert failing_int2byte == ["flaky only", "regressed"]


def test_results_json_and_junit_agree(six_run: tuple[RunReport, Path]) -> None:
    _, root = six_run
    doc = json.loads((root / "results.json").read_text())
    assert doc["schema"] == 1 and doc["baseline"] == "regressed" and doc["best"] == "right fix"
    tree = ET.parse(root / "junit.xml")
    for case in tree.getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        tests = next(r["tests"] for r in doc["results"] if r["name"] == case.get("name"))
        assert props["tests.failed"] == str(tests["failed"])
        assert props["tests.flaky"] == str(len(tests["flaky"]))
        if "fail_to_pass" in tests:
            assert props["tests.fail_to_pass"] == str(len(tests["fail_to_pass"]))
            assert props["tests.pass_to_fail"] == str(len(tests["pass_to_fail"]))


def test_without_reruns_a_flaky_test_is_broken(tmp_path: Path) -> None:
    repo = make_six_repo(tmp_path / "repo")
    config = parse_config({
        "command": PYTEST, "reruns": 0,
        "hypotheses": [{"name": "base", "ref": "HEAD"}, {"name": "flaky", "ref": "fix/flaky"}],
    })  # fmt: skip
    report = run_config(config, RunOptions(repo=repo, worktree_base=tmp_path))
    flaky = _by_name(report)["flaky"]
    assert flaky["status"] == "failed"
    assert flaky["tests"]["pass_to_fail"] == ["test_six.py::test_unichr"]
    assert flaky["tests"]["flaky"] == []


JUNIT_RUNNER = r"""
// A tiny test runner of another language: runs three checks and writes JUnit XML.
const fs = require("fs");
const value = Number(fs.readFileSync("value.txt", "utf8"));
const checks = [
  ["calc", "adds", value + 1 === 3], ["calc", "is positive", value > 0], ["misc", "always", true],
];
let xml = '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites><testsuite name="js">\n';
for (const [cls, name, ok] of checks) {
  const failure = ok ? "" : '<failure message="nope"/>';
  xml += `<testcase classname="${cls}" name="${name}">${failure}</testcase>\n`;
}
xml += "</testsuite></testsuites>\n";
fs.mkdirSync("reports", {recursive: true});
fs.writeFileSync("reports/junit.xml", xml);
process.exit(checks.every(c => c[2]) ? 0 : 1);
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_another_runner_through_junit_and_a_command_without_report(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "run.js").write_text(JUNIT_RUNNER, encoding="utf-8")
    (repo / "value.txt").write_text("5\n", encoding="utf-8")
    # A stale report committed in the repository must not count as this run's.
    (repo / "reports").mkdir()
    (repo / "reports" / "junit.xml").write_text(
        '<testsuite><testcase classname="calc" name="adds"/></testsuite>', encoding="utf-8"
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "value 5")
    git(repo, "checkout", "-q", "-b", "fix")
    (repo / "value.txt").write_text("2\n", encoding="utf-8")
    git(repo, "commit", "-q", "-am", "value 2")
    git(repo, "checkout", "-q", "-b", "negative")
    (repo / "value.txt").write_text("-1\n", encoding="utf-8")
    git(repo, "commit", "-q", "-am", "value -1")
    git(repo, "checkout", "-q", "main")
    config = parse_config({
        "command": ["node", "run.js"], "junit": "reports/*.xml",
        "hypotheses": [
            {"name": "base", "ref": "HEAD"},
            {"name": "fix", "ref": "fix"},
            {"name": "negative", "ref": "negative"},
            {"name": "no report", "ref": "fix", "command": ["node", "-e", "process.exit(1)"],
             "junit": "none/*.xml"},
            {"name": "exit code only", "ref": "fix", "command": [sys.executable, "-c", "pass"]},
        ],
    })  # fmt: skip
    report = run_config(config, RunOptions(repo=repo, worktree_base=tmp_path))
    results = _by_name(report)
    base = results["base"]["tests"]
    assert base["outcomes"] == {
        "calc::adds": "failed", "calc::is positive": "passed", "misc::always": "passed",
    }  # fmt: skip
    assert results["fix"]["tests"]["fail_to_pass"] == ["calc::adds"]
    assert results["negative"]["tests"]["pass_to_fail"] == ["calc::is positive"]
    assert results["negative"]["tests"]["fail_to_fail"] == ["calc::adds"]
    # Commands that write no report keep today's behaviour: exit code only, no "tests".
    assert "tests" not in results["no report"] and results["no report"]["status"] == "failed"
    assert "tests" not in results["exit code only"] and results["exit code only"]["status"] == "passed"
    assert report.best == "fix"


def test_junit_with_a_doctype_is_refused(tmp_path: Path) -> None:
    from runner.engine.per_test import JUnitError, read_junit

    bomb = tmp_path / "bomb.xml"
    bomb.write_text(
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        '<testsuite><testcase classname="c" name="&b;"/></testsuite>', encoding="utf-8",
    )  # fmt: skip
    with pytest.raises(JUnitError, match="DOCTYPE"):
        read_junit([bomb])


def test_plugin_that_cannot_load_falls_back_to_the_exit_code(tmp_path: Path) -> None:
    """A wrapper that keeps PYTEST_PLUGINS but drops PYTHONPATH (pytest exits 4): run again without us."""
    repo = make_six_repo(tmp_path / "repo")
    wrapper = [sys.executable, "-c",
               "import os, subprocess, sys; env = dict(os.environ); env.pop('PYTHONPATH', None); "
               "sys.exit(subprocess.call([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider'], env=env))"]  # noqa: E501
    config = parse_config({"command": wrapper, "hypotheses": [{"name": "right", "ref": "fix/right"}]})
    report = run_config(config, RunOptions(repo=repo, worktree_base=tmp_path))
    result = report.results[0]
    assert result.status is Status.PASSED and result.tests is None
    log = Path(result.log_path or "").read_text()
    assert "Error importing plugin" in log and "without the per-test result plugin" in log


def test_per_test_false_injects_nothing(tmp_path: Path) -> None:
    repo = make_six_repo(tmp_path / "repo")
    probe = [sys.executable, "-c", "import os, sys; sys.exit(1 if 'PYTEST_PLUGINS' in os.environ else 0)"]
    config = parse_config({"command": probe, "per-test": False, "hypotheses": [{"name": "a", "ref": "HEAD"}]})
    report = run_config(config, RunOptions(repo=repo, worktree_base=tmp_path))
    assert report.results[0].status is Status.PASSED and report.results[0].tests is None


def test_config_errors_name_the_field() -> None:
    hyps = [{"name": "a", "ref": "HEAD"}]
    with pytest.raises(ConfigError, match=r"wr.yml: baseline: no hypothesis is named 'zzz'"):
        parse_config({"command": "pytest", "baseline": "zzz", "hypotheses": hyps}, source="wr.yml")
    with pytest.raises(ConfigError, match=r"wr.yml: junit: .*stay inside"):
        parse_config({"command": "pytest", "junit": "../out.xml", "hypotheses": hyps}, source="wr.yml")
    with pytest.raises(ConfigError, match=r"hypotheses\[0\]\.junit: .*stay inside"):
        parse_config({"command": "pytest", "hypotheses": [{**hyps[0], "junit": "/abs.xml"}]}, source="wr.yml")
    with pytest.raises(ConfigError, match=r"reruns"):
        parse_config({"command": "pytest", "reruns": -1, "hypotheses": hyps}, source="wr.yml")
    no_head = parse_config({"command": "x", "hypotheses": [{"name": "p", "ref": "main"}]})
    assert no_head.baseline_name() is None


def _result(
    name: str, outcomes: dict[str, str], rerun_passed: list[str] | None = None
) -> TestExecutionResult:
    failing = any(o in ("failed", "error") for o in outcomes.values())
    return TestExecutionResult(
        name=name, status=Status.FAILED if failing else Status.PASSED, duration_s=1.0,
        tests={"source": "pytest", "outcomes": outcomes, "rerun_passed": rerun_passed or []},
    )  # fmt: skip


def test_grading_missing_tests_skips_and_caps() -> None:
    base = _result("base", {"a": "passed", "b": "failed", "c": "skipped", "d": "error", "e": "passed"})
    hyp = _result("hyp", {"a": "xfail", "b": "skipped", "c": "failed", "d": "passed", "new": "failed"})
    graded = {r.name: r.tests for r in grade_results([base, hyp], "base")}
    tests = graded["hyp"]
    assert tests is not None
    assert tests["fail_to_pass"] == ["d"]  # an error fixed
    assert tests["fail_to_fail"] == ["b"]  # skipped is no fix
    assert tests["pass_to_fail"] == ["c", "e"]  # skipped before, failing now; e is missing: failed
    assert tests["pass_to_pass"] == 1  # a (xfail counts as passing)
    assert (tests["passed"], tests["failed"], tests["skipped"]) == (2, 2, 1)
    # Grading again (a merge) gives the same answer.
    again = grade_results(grade_results([base, hyp], "base"), "base")
    assert again[1].tests == tests

    many = {f"t{i:04d}": "failed" for i in range(LIST_CAP + 5)}
    graded_many = grade_results([_result("b", many), _result("h", dict.fromkeys(many, "passed"))], "b")
    tests = graded_many[1].tests
    assert tests is not None
    assert len(tests["fail_to_pass"]) == LIST_CAP and tests["truncated"] == {"fail_to_pass": LIST_CAP + 5}


def test_cli_runs_the_scenario_and_writes_consistent_files(tmp_path: Path) -> None:
    repo = make_six_repo(tmp_path / "repo")
    (tmp_path / "wr.yml").write_text(json.dumps({
        "command": PYTEST, "baseline": "base",
        "hypotheses": [{"name": "base", "ref": "HEAD"}, {"name": "partial", "ref": "fix/partial"},
                       {"name": "right", "ref": "fix/right"}],
    }), encoding="utf-8")  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "test", "--config", str(tmp_path / "wr.yml"), "--repo", str(repo),
         "--results-json", str(tmp_path / "r.json"), "-q"],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # base and partial fail
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["best"] == "right" and doc["baseline"] == "base"
    assert "best: right" in proc.stderr


def test_merge_of_shards_grades_against_the_baseline_of_another_shard(tmp_path: Path) -> None:
    from runner.report.merge import merge_files
    from runner.report.sharding import parse_shard
    from runner.run import execute

    repo = make_six_repo(tmp_path / "repo")
    config = parse_config({
        "command": PYTEST,
        "hypotheses": [{"name": "base", "ref": "HEAD"}, {"name": "breaks", "ref": "fix/breaks-other"},
                       {"name": "right, flaky", "ref": "fix/flaky"}],
    })  # fmt: skip
    files = []
    for k in (1, 2):
        out = tmp_path / f"shard-{k}.json"
        shard = parse_shard(f"{k}/2")
        execute(config, RunOptions(repo=repo, worktree_base=tmp_path, results_json=out, shard=shard))
        files.append(out)
    shard2 = json.loads(files[1].read_text())
    assert [r["name"] for r in shard2["results"]] == ["breaks"]  # round-robin: the baseline is in shard 1
    assert shard2["baseline"] == "base" and "fail_to_pass" not in shard2["results"][0]["tests"]
    merged = merge_files(files, source="FILES")
    results = _by_name(merged)
    assert merged.extra["baseline"] == "base" and merged.best == "right, flaky"
    assert results["breaks"]["tests"]["pass_to_fail"] == ["test_six.py::test_unichr"]
    assert results["breaks"]["tests"]["fail_to_pass"] == REGRESSED_TESTS
    assert results["right, flaky"]["tests"]["flaky"] == ["test_six.py::test_unichr"]
    assert results["right, flaky"]["status"] == "passed"


def test_summary_has_verdict_columns_and_the_differing_tests(six_run: tuple[RunReport, Path]) -> None:
    from runner.github.summary import render_summary

    report, _ = six_run
    doc = report.to_dict()
    text = render_summary(doc)
    assert "| Status | Hypothesis | Ref @ commit | Duration | Exit code | Fixed | Broken | Flaky |" in text
    row = next(line for line in text.splitlines() if "breaks another" in line and line.startswith("| ❌"))
    assert row.endswith("| 3 | 1 | 0 |")
    rows = [line for line in text.splitlines() if line.startswith("| ✅")]
    row = next(line for line in rows if "right fix, flaky test" in line)
    assert row.endswith("| 3 | 0 | 1 |")
    assert "<details><summary>Tests whose outcome differs across hypotheses (5)</summary>" in text
    # Baseline first; test_unichr is broken by one hypothesis, flaky in another: listed first.
    table = text.split("(5)</summary>", 1)[1].split("</details>", 1)[0]
    lines = [line for line in table.splitlines() if line.startswith("| test")]
    assert lines[0].startswith("| test\\_six.py::test\\_unichr | ✅ | ✅ | ✅ | ❌ | 🔁 | ✅ |")
    names = ("unichr", "bytesiter", "int2byte", "byte2int", "bytesindex")
    assert {line.split(" |")[0] for line in lines} == {f"| test\\_six.py::test\\_{n}" for n in names}
    # A PR comment (characters) and a tiny budget still fit.
    assert len(render_summary(doc, max_chars=4000)) <= 4000


def test_differing_tests_stay_within_the_budget() -> None:
    from runner.github.summary import SUMMARY_TARGET_BYTES, render_summary

    outcomes = {f"tests/test_{i:05d}.py::test_x[{'p' * 50}]": "failed" for i in range(20_000)}
    doc = {
        "schema": 1, "conclusion": "failure", "baseline": "b", "results": [
            {"name": "b", "status": "failed", "tests": {"outcomes": outcomes}},
            {"name": "h", "status": "passed", "tests": {
                "outcomes": dict.fromkeys(outcomes, "passed"), "fail_to_pass": [],
                "truncated": {"fail_to_pass": 20_000},
            }},
        ],
    }  # fmt: skip
    text = render_summary(doc)
    assert len(text.encode()) <= SUMMARY_TARGET_BYTES
    assert "of 20000 tests shown" in text
    assert "| 20000 | — | — |" in text  # the full count, not the capped list's length


def test_annotations_point_at_each_broken_test(six_run: tuple[RunReport, Path], tmp_path: Path) -> None:
    import io

    from runner.action.reporting import _annotate_broken_tests, _compact_results
    from runner.github import ActionsLog, AnnotationBudget

    report, _ = six_run
    stream = io.StringIO()
    budget = AnnotationBudget(ActionsLog(stream), workspace=str(tmp_path))
    _annotate_broken_tests(report, budget, "repo")
    lines = stream.getvalue().splitlines()
    with tarfile.open(SDIST) as tar:
        source = tar.extractfile("six-1.17.0/test_six.py")
        assert source is not None
        line_no = source.read().decode().splitlines().index("def test_unichr():") + 1
    assert len(lines) == 1
    assert lines[0].startswith("::error title=test broken by hypothesis breaks another,")
    assert f",file=repo/test_six.py,line={line_no}::" in lines[0]
    assert "test_six.py::test_unichr" in lines[0]
    compact = json.loads(_compact_results(report))
    by_name = {r["name"]: r for r in compact["results"]}
    assert by_name["breaks another"]["tests"]["pass_to_fail"] == 1
    assert by_name["right fix"]["tests"]["fail_to_pass"] == 3
    assert "outcomes" not in json.dumps(compact)


def test_reruns_share_the_hypothesis_timeout(tmp_path: Path) -> None:
    """A re-run that outlives the hypothesis' timeout is stopped; the first run's verdicts stand."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "test_slow_rerun.py").write_text(
        "import os, time\n"
        "def test_fails_then_hangs():\n"
        "    if os.path.exists('.ran'):\n"
        "        time.sleep(600)\n"
        "    open('.ran', 'w').close()\n"
        "    assert False\n"
        "def test_ok():\n"
        "    pass\n",
        encoding="utf-8",
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "slow re-run")
    config = parse_config({
        "command": PYTEST, "timeout": 10, "kill-grace": 0, "hypotheses": [{"name": "h", "ref": "HEAD"}],
    })  # fmt: skip
    result = run_config(config, RunOptions(repo=repo, worktree_base=tmp_path)).results[0]
    assert result.status is Status.FAILED and result.exit_code == 1
    assert result.tests is not None and result.tests["rerun_passed"] == [] and result.tests["reruns"] == 0
    assert result.tests["outcomes"] == {
        "test_slow_rerun.py::test_fails_then_hangs": "failed", "test_slow_rerun.py::test_ok": "passed",
    }  # fmt: skip
    assert "re-run 1/2 of 1 failing test(s)" in Path(result.log_path or "").read_text()


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="pytest-xdist is not installed")
def test_reruns_under_xdist_deselect_in_the_workers(tmp_path: Path) -> None:
    repo = make_six_repo(tmp_path / "repo")
    config = parse_config({
        "command": [*PYTEST, "-n", "2"],
        "hypotheses": [{"name": "base", "ref": "HEAD"}, {"name": "flaky", "ref": "fix/flaky"}],
    })  # fmt: skip
    report = run_config(config, RunOptions(repo=repo, worktree_base=tmp_path))
    flaky = _by_name(report)["flaky"]
    assert flaky["status"] == "passed" and flaky["tests"]["flaky"] == ["test_six.py::test_unichr"]
    assert flaky["tests"]["fail_to_pass"] == REGRESSED_TESTS
    assert "1 passed" in Path(flaky["log_path"]).read_text().rsplit("re-run 1/2", 1)[1]  # only the listed id
