"""``mode: merge``: combine the results files of a sharded run into one set of outputs.

The shard jobs (``shard: K/N``) each upload their results directory; the merge job downloads them and
names their ``results.json`` files in ``results-files`` (paths or globs, one per line, inside the
workspace). The merged run gets the same surfaces as an unsharded one: ``results.json`` and
``junit.xml`` in ``results-dir``, the step outputs and the job summary. Failing hypotheses are not
annotated again (their shard jobs did that). Anything that does not add up (see runner/report/merge.py) is
one ``::error`` per problem, exit code 2, and nothing is written.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

from runner.action.ownership import restore_ownership
from runner.action.reporting import report_to_github
from runner.action.workspace import DEFAULT_RESULTS_DIR, inside, relative, workspace_dir
from runner.engine.naming import display_name
from runner.github import ActionsLog, AnnotationBudget, InputError, get_bool_input, get_input
from runner.report.merge import MergeError, merge_files
from runner.run import EXIT_BAD_INPUT, RunOptions, exit_code_for, write_reports

__all__ = ["expand_results_files", "run_merge_mode"]

_MAGIC = re.compile(r"[*?[]")
_SOURCE = "input 'results-files'"


def expand_results_files(text: str, workspace: Path) -> tuple[list[Path], list[str]]:
    """The files named by ``results-files`` (sorted within each glob, first mention wins) and the
    problems found (a glob that matches nothing). Paths outside the workspace raise InputError."""
    paths: list[Path] = []
    problems: list[str] = []
    for line in text.splitlines():
        pattern = line.strip()
        if not pattern:
            continue
        if not _MAGIC.search(pattern):
            paths.append(inside(workspace, pattern, "results-files"))
            continue
        matches = sorted(glob.glob(pattern, root_dir=workspace, recursive=True))
        files = [inside(workspace, m, "results-files") for m in matches]
        files = [f for f in files if f.is_file()]
        if not files:
            problems.append(f"{_SOURCE}: {display_name(pattern, 200)!r} matches no file")
        paths.extend(files)
    if not paths and not problems:
        raise InputError("results-files", "is empty: list the shards' results JSON files (paths or globs)")
    return paths, problems


def run_merge_mode(log: ActionsLog) -> int:
    workspace = workspace_dir()
    get_bool_input("comment-on-pr", default=False)  # a bad value fails now, before anything runs
    paths, problems = expand_results_files(get_input("results-files"), workspace)
    results_dir = inside(workspace, get_input("results-dir") or DEFAULT_RESULTS_DIR, "results-dir")
    report = None
    if paths:
        try:
            report = merge_files(paths, source=_SOURCE, shown=[relative(p, workspace) for p in paths])
        except MergeError as exc:
            problems.extend(exc.problems)
    if problems or report is None:
        for problem in problems:
            log.error(problem, title="worktree-runner: cannot merge")
        return EXIT_BAD_INPUT

    merged = report.extra["merged"]
    log.write_untrusted(
        "".join(
            f"shard {s['index']}/{merged['total']}: {display_name(s['file'])}: {s['results']} results, "
            f"{s['conclusion']} in {s['duration_s']:.1f}s\n"
            for s in merged["shards"]
        )
    )
    options = RunOptions(
        repo=workspace, results_json=results_dir / "results.json", junit=results_dir / "junit.xml"
    )
    note = (
        f"Merged {merged['total']} shards ({merged['strategy']} split) of {merged['hypotheses_total']} "
        "hypotheses; failures were annotated in the shard jobs."
    )
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        (results_dir / ".gitignore").write_text("*\n", encoding="utf-8")
        write_reports(report, options)
        report_to_github(
            report, log, AnnotationBudget(log, workspace=str(workspace)), workspace=workspace,
            repo=workspace, options=options, annotate=False, notes=[note],
        )  # fmt: skip
    finally:
        restore_ownership(workspace, [results_dir])
    return exit_code_for(report)
