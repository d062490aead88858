"""``mode: test`` (the default): action inputs -> the same ``execute`` the CLI calls -> GitHub surfaces.

The configuration comes from the config file and the inputs (inputs win); the run itself is
``runner.run.execute``; outputs, annotations, summary and comment are ``runner.action.reporting``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from runner.action.checkout_notes import checkout_notes, git_dir_in_workspace
from runner.action.ownership import restore_ownership
from runner.action.reporting import report_to_github
from runner.action.workspace import DEFAULT_RESULTS_DIR, inside, relative, workspace_dir
from runner.config import ConfigError, RunnerConfig, load_yaml, parse_config, parse_hypotheses
from runner.github import (
    ActionsLog,
    AnnotationBudget,
    InputError,
    get_bool_input,
    get_float_input,
    get_input,
    get_int_input,
)
from runner.report.progress import progress_printer
from runner.report.sharding import ShardSpecError, parse_shard
from runner.run import RunOptions, execute, exit_code_for

__all__ = ["DEFAULT_CONFIG", "read_config", "run_test_mode"]

DEFAULT_CONFIG = ".github/worktree-runner.yml"


def read_config(workspace: Path, repo: Path) -> tuple[RunnerConfig, str]:
    """Build the run's configuration from the config file and the inputs (inputs win)."""
    config_input = get_input("config") or DEFAULT_CONFIG
    config_path = Path(config_input) if os.path.isabs(config_input) else inside(repo, config_input, "config")
    inline = get_input("hypotheses")
    source = relative(config_path, workspace)
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
        "remote": get_input("remote") or None,
        "fetch": get_bool_input("fetch") if get_input("fetch") else None,
        "submodules": get_input("submodules") or None,
        "isolation": get_input("isolation") or None,
    }
    if overrides["succeed-if"] not in (None, "all", "any"):
        raise InputError("succeed-if", f"expected 'all' or 'any', got {overrides['succeed-if']!r}")
    if overrides["submodules"] not in (None, "true", "false", "recursive"):
        raise InputError("submodules", f"expected true, false or recursive, got {overrides['submodules']!r}")
    if overrides["isolation"] not in (None, "venv", "none"):
        raise InputError("isolation", f"expected 'venv' or 'none', got {overrides['isolation']!r}")
    for key, value in overrides.items():
        if value is not None:
            data.pop(key.replace("-", "_"), None)
            data[key] = value
    return parse_config(data, source=source), source


def run_test_mode(log: ActionsLog) -> int:
    workspace = workspace_dir()
    repo = inside(workspace, get_input("working-directory") or ".", "working-directory")
    if not repo.is_dir():
        raise InputError("working-directory", f"{relative(repo, workspace)!r} is not a directory")
    config, source = read_config(workspace, repo)
    get_bool_input("comment-on-pr", default=False)  # a bad value fails now, before anything runs
    results_dir = inside(workspace, get_input("results-dir") or DEFAULT_RESULTS_DIR, "results-dir")
    durations_input = get_input("durations-file")
    cache_input = get_input("cache-dir")
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
        durations_file=inside(workspace, durations_input, "durations-file") if durations_input else None,
        progress=progress_printer(sys.stdout),  # type: ignore[arg-type]
        paths_relative_to=workspace,
        shard=shard,
        cache_dir=inside(workspace, cache_input, "cache-dir") if cache_input else None,
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
        notes += checkout_notes(report, repo, workspace, log)
        report_to_github(report, log, budget, workspace=workspace, repo=repo, options=options, notes=notes)
    finally:
        restore_ownership(
            workspace, [results_dir, repo / ".git" / "worktrees", *git_dir_in_workspace(repo, workspace)]
        )
    return exit_code_for(report)
