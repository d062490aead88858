"""The GitHub Action face: action inputs -> the same ``execute`` the CLI calls -> GitHub surfaces.

Everything GitHub-specific (inputs, outputs, annotations, the job summary, file ownership in the
workspace) lives here and in ``runner.github``; the run itself is ``runner.run.execute``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import signals
from .cli import exit_code_for, progress_printer
from .config import ConfigError, RunnerConfig, Status, load_yaml, parse_config, parse_hypotheses
from .github import (
    MAX_OUTPUT_BYTES,
    ActionsLog,
    AnnotationBudget,
    FileCommandWriter,
    InputError,
    get_bool_input,
    get_float_input,
    get_input,
    get_int_input,
    post_summary_comment,
    render_summary,
    write_summary,
)
from .naming import display_name
from .ownership import restore_ownership
from .results import RunReport
from .run import RunOptions, execute
from .sharding import ShardSpecError, parse_shard

__all__ = ["MODES", "main"]

MODES = ("test", "merge", "submit", "status", "collect", "generate")
DEFAULT_CONFIG = ".github/worktree-runner.yml"
DEFAULT_RESULTS_DIR = ".worktree-runner"
EXIT_BAD_INPUT = 2

# "path/to/file.py:12: SomethingError" — how pytest (and most tools) point at a failing line.
_LOCATION = re.compile(r"^(?P<path>[^\s:]+\.[A-Za-z0-9]+):(?P<line>\d+):", re.MULTILINE)
# A path inside one of our worktrees: <RUNNER_TEMP>/worktree-runner-XXXX/<NNN-name-hash>/<repo path>
_IN_WORKTREE = re.compile(r"^/.*/worktree-runner-[^/]+/\d{3}-[^/]+-[0-9a-f]{8}/(?P<rest>.+)$")


def _workspace() -> Path:
    return Path(os.environ.get("GITHUB_WORKSPACE") or os.getcwd()).resolve()


def _inside(workspace: Path, value: str, name: str) -> Path:
    path = (workspace / value).resolve()
    if path != workspace and workspace not in path.parents:
        raise InputError(name, f"{value!r} points outside the workspace {workspace}")
    return path


def _rel(path: Path, workspace: Path) -> str:
    try:
        return str(path.relative_to(workspace)) or "."
    except ValueError:
        return str(path)


def read_config(workspace: Path, repo: Path) -> tuple[RunnerConfig, str]:
    """Build the run's configuration from the config file and the inputs (inputs win)."""
    config_input = get_input("config") or DEFAULT_CONFIG
    config_path = Path(config_input) if os.path.isabs(config_input) else _inside(repo, config_input, "config")
    inline = get_input("hypotheses")
    source = _rel(config_path, workspace)
    data: dict[str, Any] = {}
    if config_path.is_file():
        loaded = load_yaml(config_path.read_text(encoding="utf-8"), source=source)
        if loaded is not None and not isinstance(loaded, dict):
            kind = type(loaded).__name__
            raise ConfigError(f"expected a mapping at the top level, got {kind}", source=source)
        data = dict(loaded or {})
    elif not inline:
        raise InputError(
            "config", f"{source} not found, and input 'hypotheses' is empty: one of them must list hypotheses"
        )
    if inline:
        hyps = parse_hypotheses(load_yaml(inline, source="input 'hypotheses'"), source="input 'hypotheses'")
        data["hypotheses"] = [h.model_dump(exclude_none=True) for h in hyps]
        if not config_path.is_file():
            source = "inputs"
    overrides: dict[str, Any] = {
        "command": get_input("test-command") or None,
        "setup": get_input("setup-command") or None,
        "max-parallel": get_int_input("max-parallel", minimum=1) if get_input("max-parallel") else None,
        "timeout": get_float_input("timeout", minimum=0.001) if get_input("timeout") else None,
        "fail-fast": get_bool_input("fail-fast") if get_input("fail-fast") else None,
        "succeed-if": get_input("succeed-if") or None,
    }
    if overrides["succeed-if"] not in (None, "all", "any"):
        raise InputError("succeed-if", f"expected 'all' or 'any', got {overrides['succeed-if']!r}")
    for key, value in overrides.items():
        if value is not None:
            data.pop(key.replace("-", "_"), None)
            data[key] = value
    return parse_config(data, source=source), source


def _compact_results(report: RunReport) -> str:
    """The ``results`` output: the JSON without logs and tails, shrunk to fit an output."""
    doc = report.to_dict()
    doc.pop("logs_dir", None)
    doc["results"] = [
        {k: r[k] for k in ("name", "status", "exit_code", "duration_s", "commit")} for r in doc["results"]
    ]
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > MAX_OUTPUT_BYTES // 2:
        doc["results"] = [r for r in doc["results"] if r["status"] != "passed"][:1000]
        doc["results_truncated"] = True
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return text


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


def report_to_github(
    report: RunReport, log: ActionsLog, budget: AnnotationBudget, *, workspace: Path, repo: Path,
    options: RunOptions, annotate: bool = True, notes: Sequence[str] = (),
) -> None:  # fmt: skip
    """Outputs and job summary; with ``annotate`` also an annotation and a log group per failure."""
    repo_rel = _rel(repo, workspace)
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
    outputs.write("results-file", _rel(options.results_json, workspace))
    outputs.write("junit-file", _rel(options.junit, workspace))


def run_test_mode(log: ActionsLog) -> int:
    workspace = _workspace()
    repo = _inside(workspace, get_input("working-directory") or ".", "working-directory")
    if not repo.is_dir():
        raise InputError("working-directory", f"{_rel(repo, workspace)!r} is not a directory")
    config, source = read_config(workspace, repo)
    get_bool_input("comment-on-pr", default=False)  # a bad value fails now, before anything runs
    results_dir = _inside(workspace, get_input("results-dir") or DEFAULT_RESULTS_DIR, "results-dir")
    durations_input = get_input("durations-file")
    shard_input = get_input("shard")
    try:
        shard = parse_shard(shard_input) if shard_input else None
    except ShardSpecError as exc:
        raise InputError("shard", str(exc)) from None
    options = RunOptions(
        repo=repo,
        results_json=results_dir / "results.json",
        junit=results_dir / "junit.xml",
        logs_dir=results_dir / "logs",
        durations_file=_inside(workspace, durations_input, "durations-file") if durations_input else None,
        progress=progress_printer(sys.stdout),  # type: ignore[arg-type]
        paths_relative_to=workspace,
        shard=shard,
    )
    budget = AnnotationBudget(log, workspace=str(workspace))

    def make_results_dir() -> None:
        results_dir.mkdir(parents=True, exist_ok=True)
        # Keep the results out of `git status` without touching the user's .gitignore.
        (results_dir / ".gitignore").write_text("*\n", encoding="utf-8")

    try:
        try:
            report = execute(config, options, source=source, before_run=make_results_dir)
        except ConfigError as exc:
            if exc.source == "--shard":  # an empty shard: name the input, not the CLI flag
                raise InputError("shard", exc.reason) from None
            raise
        meta = report.extra.get("shard")
        notes = (
            [f"Shard {meta['index']}/{meta['total']}: {len(report.results)} of {meta['hypotheses_total']} "
             f"hypotheses ({meta['strategy']} split); the merge job reports the whole run."]
            if meta else []
        )  # fmt: skip
        report_to_github(report, log, budget, workspace=workspace, repo=repo, options=options, notes=notes)
    finally:
        restore_ownership(workspace, [results_dir, repo / ".git" / "worktrees"])
    return exit_code_for(report)


def _error_annotation(log: ActionsLog, exc: Exception) -> None:
    file = None
    if isinstance(exc, ConfigError) and exc.source and not exc.source.startswith(("input", "inputs", "--")):
        file = exc.source
    log.error(str(exc), title="worktree-runner: bad input", file=file)


def main() -> int:
    signals.install()  # first: Python is PID 1 in the container and would drop SIGTERM
    log = ActionsLog()
    try:
        token = get_input("github-token")
        if token:
            log.add_mask(token)
        mode = get_input("mode") or "test"
        if mode not in MODES:
            raise InputError("mode", f"expected one of {', '.join(MODES)}; got {mode!r}")
        if mode == "merge":
            from .action_merge import run_merge_mode

            return run_merge_mode(log)
        if mode in ("submit", "status", "collect", "generate"):
            from .action_openhands import run_openhands_mode

            return run_openhands_mode(mode, log)
        return run_test_mode(log)
    except (InputError, ConfigError) as exc:
        if isinstance(exc, ConfigError) and exc.source == "--repo":
            exc = InputError("working-directory", exc.reason)
        _error_annotation(log, exc)
        return EXIT_BAD_INPUT
    except Exception as exc:  # a bug: say so in one annotation, keep the traceback in the log
        traceback.print_exc()
        log.error(f"internal error: {type(exc).__name__}: {exc}", title="worktree-runner")
        return 1
