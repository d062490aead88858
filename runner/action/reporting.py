"""A finished run on GitHub's surfaces: step outputs, annotations, log groups, job summary, PR comment.

Shared by ``mode: test`` and ``mode: merge`` (which does not annotate again: its shard jobs did).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from runner.action.workspace import relative
from runner.config import Status
from runner.engine.naming import display_name
from runner.github import (
    MAX_OUTPUT_BYTES,
    ActionsLog,
    AnnotationBudget,
    FileCommandWriter,
    InputError,
    get_bool_input,
    get_input,
    post_summary_comment,
    render_summary,
    write_summary,
)
from runner.report.grading import list_total
from runner.report.results import RunReport
from runner.run import RunOptions

__all__ = ["report_to_github"]

# "path/to/file.py:12: SomethingError" — how pytest (and most tools) point at a failing line.
_LOCATION = re.compile(r"^(?P<path>[^\s:]+\.[A-Za-z0-9]+):(?P<line>\d+):", re.MULTILINE)
# A path inside one of our worktrees: <RUNNER_TEMP>/worktree-runner-XXXX/<NNN-name-hash>/<repo path>
_IN_WORKTREE = re.compile(r"^/.*/worktree-runner-[^/]+/\d{3}-[^/]+-[0-9a-f]{8}/(?P<rest>.+)$")


def _compact_results(report: RunReport) -> str:
    """The ``results`` output: the JSON without logs and tails, shrunk to fit an output."""
    doc = report.to_dict()
    doc.pop("logs_dir", None)
    doc["results"] = [
        {k: r[k] for k in ("name", "status", "exit_code", "duration_s", "commit")} | _compact_tests(r)
        for r in doc["results"]
    ]
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > MAX_OUTPUT_BYTES // 2:
        doc["results"] = [r for r in doc["results"] if r["status"] != "passed"][:1000]
        doc["results_truncated"] = True
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return text


def _compact_tests(result: dict[str, object]) -> dict[str, object]:
    """Per-test counts for the ``results`` output (the id lists stay in the results file)."""
    tests = result.get("tests")
    if not isinstance(tests, dict):
        return {}
    keep = ("passed", "failed", "skipped", "pass_to_pass")
    counts: dict[str, object] = {k: tests[k] for k in keep if k in tests}
    for key in ("fail_to_pass", "pass_to_fail", "fail_to_fail", "flaky"):
        if key in tests:
            counts[key] = list_total(tests, key)
    return {"tests": counts}


def _annotation_target(tail: str, repo_rel: str) -> tuple[str | None, int | None]:
    """The last ``file:line:`` a failing tail points at, as a workspace-relative path."""
    matches = list(_LOCATION.finditer(tail))
    for match in reversed(matches):
        path = match.group("path")
        inside = _IN_WORKTREE.match(path)
        if inside:
            path = inside.group("rest")
        elif path.startswith("/"):
            continue  # a library or interpreter file, not the repository's
        if ".." in Path(path).parts:
            continue
        full = path if repo_rel in ("", ".") else f"{repo_rel}/{path}"
        return full, int(match.group("line"))
    return None, None


def _annotate_broken_tests(report: RunReport, budget: AnnotationBudget, repo_rel: str) -> None:
    """One annotation per test a hypothesis broke (``pass_to_fail``), at the test's file and line."""
    for result in report.results:
        tests = result.tests or {}
        broken = tests.get("pass_to_fail")
        locations = tests.get("locations")
        if not isinstance(broken, list):
            continue
        for test_id in broken:
            where = locations.get(test_id) if isinstance(locations, dict) else None
            file: str | None = None
            line: int | None = None
            message = "missing in this hypothesis (it passed in the baseline)"
            if isinstance(where, list) and len(where) == 3:
                path, number, text = where
                inside = isinstance(path, str) and path and not path.startswith("/")
                if inside and ".." not in Path(path).parts:
                    file = path if repo_rel in ("", ".") else f"{repo_rel}/{path}"
                    line = number if isinstance(number, int) and number > 0 else None
                message = text if isinstance(text, str) and text else "failed"
            budget.annotate(
                "error", f"{display_name(str(test_id), 300)}: {message}", file=file, line=line,
                title=f"test broken by hypothesis {display_name(result.name, 80)}",
            )  # fmt: skip


def report_to_github(
    report: RunReport, log: ActionsLog, budget: AnnotationBudget, *, workspace: Path, repo: Path,
    options: RunOptions, annotate: bool = True, notes: Sequence[str] = (),
) -> None:  # fmt: skip
    """Outputs and job summary; with ``annotate`` also an annotation and a log group per failure."""
    repo_rel = relative(repo, workspace)
    for result in report.results:
        if not annotate or result.status not in (Status.FAILED, Status.TIMEOUT, Status.ERROR):
            continue
        file, line = _annotation_target(result.output_tail, repo_rel)
        tail = "\n".join(result.output_tail.rstrip().splitlines()[-15:])
        message = f"{result.error or result.status}\n{tail}".strip()
        budget.annotate(
            "error", message, file=file, line=line,
            title=f"hypothesis {display_name(result.name, 80)}: {result.status}",
        )  # fmt: skip
        with log.group(f"{display_name(result.name)}: {result.status} (log tail)"):
            log.write_untrusted(result.output_tail or "(no output)\n")
    if annotate:
        _annotate_broken_tests(report, budget, repo_rel)
    cancelled = report.cancelled_by is not None and report.count(Status.CANCELLED) > 0
    summary = render_summary(
        report.to_dict(),
        cancelled_run=cancelled,
        annotation_overflow={str(k): v for k, v in budget.overflow.items()},
        extra_notes=list(notes),
    )
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        write_summary(summary)
    try:
        comment_on_pr = get_bool_input("comment-on-pr", default=False)
    except InputError as exc:  # read after the run: warn rather than fail a finished run
        log.warning(f"{exc}; no pull-request comment", title="worktree-runner")
        comment_on_pr = False
    if comment_on_pr and report.extra.get("shard"):  # every shard job would edit the same comment
        log.notice("Pull-request comment skipped for a shard: the merge job (comment-on-pr) comments the run")
    elif comment_on_pr:
        post_summary_comment(report.to_dict(), log, token=get_input("github-token"), cancelled_run=cancelled)
    if not os.environ.get("GITHUB_OUTPUT"):
        log.warning("GITHUB_OUTPUT is not set: step outputs are not written")
        return
    outputs = FileCommandWriter.from_env("GITHUB_OUTPUT", max_value_bytes=MAX_OUTPUT_BYTES)
    d = report.to_dict()
    outputs.write("conclusion", d["conclusion"])
    outputs.write("passed", d["passed"])
    outputs.write("failed", d["failed"] + d["timed_out"] + d["errors"])
    outputs.write("best", d["best"] or "")
    outputs.write("results", _compact_results(report))
    assert options.results_json is not None and options.junit is not None
    outputs.write("results-file", relative(options.results_json, workspace))
    outputs.write("junit-file", relative(options.junit, workspace))
