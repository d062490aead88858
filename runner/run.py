"""One run from configuration to report: the code path shared by the CLI and the action."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from runner.async_test_executor import AsyncTestExecutor, ProgressCallback, WorkItem
from runner.config import ConfigError, RunnerConfig, Status
from runner.engine import signals
from runner.engine.fetch import FetchOutcome, FetchSettings
from runner.engine.result_cache import ResultCache
from runner.engine.scheduling import load_durations
from runner.engine.worktrees import WorktreeError, WorktreeManager, default_worktree_base
from runner.report.grading import grade_results
from runner.report.results import RunReport, write_junit, write_results_json
from runner.report.sharding import ShardPlan, ShardSpec, plan_shard
from runner.report.timeline import StartTimes

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILURE",
    "EXIT_SUCCESS",
    "RunOptions",
    "check_inputs",
    "execute",
    "exit_code_for",
    "run_config",
    "run_config_async",
    "select_shard",
    "write_reports",
]

# The process exit codes both faces use: 0 success, 1 failure, 2 bad input, 128 + signal after a signal.
EXIT_SUCCESS = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
_SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}


def exit_code_for(report: RunReport) -> int:
    signal_name = report.extra.get("signal") or signals.first_signal()
    if isinstance(signal_name, str) and signal_name in _SIGNAL_EXIT:
        return _SIGNAL_EXIT[signal_name]
    return EXIT_SUCCESS if report.succeeded else EXIT_FAILURE


@dataclass
class RunOptions:
    repo: Path = Path(".")
    results_json: Path | None = None
    junit: Path | None = None
    logs_dir: Path | None = None
    durations_file: Path | None = None
    worktree_base: Path | None = None
    progress: ProgressCallback | None = None
    # Stop the run on SIGINT/SIGTERM. Takes effect where runner.engine.signals.install() was called (the
    # CLI and the action do so first thing); a library caller keeps its own signal handling.
    handle_signals: bool = True
    # Report log paths relative to this directory (the action: the workspace, so that they mean
    # something outside the container).
    paths_relative_to: Path | None = None
    # Run only this shard of the hypotheses (``execute`` selects it; the report records ``shard``).
    shard: ShardSpec | None = None
    # Called with (name, number of hypotheses in this run) when a hypothesis' commands start (the live
    # status line); every result also gets ``started_at``.
    on_start: Callable[[str, int], None] | None = None
    # The result cache (``cache-dir`` / ``--cache-dir``); None: every hypothesis runs.
    cache_dir: Path | None = None


def check_inputs(config: RunnerConfig, options: RunOptions, *, source: str = "config") -> dict[str, float]:
    """Everything that can be checked before anything is created. Raises ConfigError.

    Returns the durations read from ``options.durations_file`` (empty without one).
    """
    if not options.repo.is_dir():
        raise ConfigError(f"repository directory {options.repo} does not exist", source="--repo")
    for i, hyp in enumerate(config.hypotheses):
        if hyp.patch is not None:
            patch = Path(hyp.patch)
            resolved = patch if patch.is_absolute() else options.repo / patch
            if not resolved.is_file():
                raise ConfigError(
                    f"patch file {hyp.patch!r} not found (looked at {resolved})",
                    source=source, location=f"hypotheses[{i}].patch",
                )  # fmt: skip
    for flag, path in (("--results-json", options.results_json), ("--junit", options.junit)):
        if path is not None and path.is_dir():
            raise ConfigError(f"{path} is a directory, expected a file path", source=flag)
    if options.cache_dir is not None and options.cache_dir.exists() and not options.cache_dir.is_dir():
        raise ConfigError(f"{options.cache_dir} is not a directory", source="--cache-dir")
    if options.durations_file is not None:
        return load_durations(options.durations_file)
    return {}


async def run_config_async(
    config: RunnerConfig, options: RunOptions, *, durations: dict[str, float] | None = None
) -> RunReport:
    """Create worktrees, run every hypothesis, clean up; returns the report (never half-done)."""
    started = time.monotonic()
    manager = WorktreeManager(options.repo, base=options.worktree_base, submodules=config.submodules)
    try:
        await manager.open()
    except WorktreeError as exc:
        raise ConfigError(str(exc), source="--repo") from None
    logs_dir = options.logs_dir or Path(
        tempfile.mkdtemp(prefix="worktree-runner-logs-", dir=options.worktree_base or default_worktree_base())
    )
    starts = StartTimes(len(config.hypotheses), options.on_start)
    executor = AsyncTestExecutor(
        config, logs_dir=logs_dir, progress=options.progress, durations=durations, on_start=starts.record,
        cache=_cache(options),
    )
    items = [
        WorkItem(hyp, functools.partial(manager.worktree, hyp, i, patch_root=options.repo.resolve()), i)
        for i, hyp in enumerate(config.hypotheses)
    ]
    fetching: asyncio.Task[FetchOutcome] | None = None

    def stop(reason: str) -> None:
        # A signal during the up-front fetch must not wait for the network: GitHub allows 7.5 s.
        if fetching is not None and not fetching.done():
            fetching.cancel()
        executor.stop(reason)

    watch = signals.stopping(stop) if options.handle_signals else contextlib.nullcontext()
    with watch:
        try:
            fetching = asyncio.ensure_future(
                manager.fetch_missing(
                    [h.source_ref for h in config.hypotheses],
                    FetchSettings(remote=config.remote, enabled=config.fetch),
                )
            )
            try:
                fetched = await fetching
            except asyncio.CancelledError:
                if executor.stopped is None:
                    raise  # cancelled from outside, not by a signal
                fetched = FetchOutcome()  # stopped: the executor reports every hypothesis cancelled
            results = await executor.run(items)
        finally:
            await asyncio.shield(manager.close())
    results = starts.stamp(results)
    stopped = executor.stopped if any(r.status is Status.CANCELLED for r in results) else None
    baseline = config.baseline_name()
    results = grade_results(results, baseline)
    report = RunReport(
        results=results,
        succeed_if=config.succeed_if,
        duration_s=time.monotonic() - started,
        cancelled_by=stopped,
    )
    if baseline is not None and any(r.tests is not None for r in results):
        report.extra["baseline"] = baseline
    if options.handle_signals and signals.first_signal():
        report.extra["signal"] = signals.first_signal()
    if fetched.fetched:
        report.extra["fetched"] = {"remote": config.remote, "refs": fetched.fetched}
    report.extra["logs_dir"] = _shown_path(logs_dir, options.paths_relative_to)
    if options.paths_relative_to is not None:
        report.results = [
            r.model_copy(update={"log_path": _shown_path(Path(r.log_path), options.paths_relative_to)})
            if r.log_path
            else r
            for r in report.results
        ]
    return report


def _cache(options: RunOptions) -> ResultCache | None:
    from runner import __version__

    return ResultCache(options.cache_dir, runner_version=__version__) if options.cache_dir else None


def _shown_path(path: Path, base: Path | None) -> str:
    if base is None:
        return str(path)
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def run_config(
    config: RunnerConfig, options: RunOptions, *, durations: dict[str, float] | None = None
) -> RunReport:
    from runner.engine.aio import run_sync

    return run_sync(run_config_async(config, options, durations=durations))


def execute(
    config: RunnerConfig,
    options: RunOptions,
    *,
    source: str = "config",
    before_run: Callable[[], None] | None = None,
) -> RunReport:
    """Check inputs, run, write the results files: the one code path behind the CLI and the action.

    ``before_run`` is called once every input has been checked and before anything is created.
    """
    durations = check_inputs(config, options, source=source)
    # Settle the default baseline on the whole configuration: a shard may not hold it.
    config = config.model_copy(update={"baseline": config.baseline_name()})
    plan = None
    if options.shard is not None:
        config, plan = select_shard(config, options.shard, durations)
        options = replace(options, shard=None)
    if before_run is not None:
        before_run()
    report = run_config(config, options, durations=durations)
    if plan is not None:
        report.extra["shard"] = plan.metadata()
    write_reports(report, options)
    return report


def select_shard(
    config: RunnerConfig, spec: ShardSpec, durations: dict[str, float]
) -> tuple[RunnerConfig, ShardPlan]:
    """The configuration reduced to shard ``spec``'s hypotheses. Raises ConfigError (source
    ``--shard``) when the shard would be empty (more shards than hypotheses)."""
    plan = plan_shard([h.name for h in config.hypotheses], spec, durations)
    if not plan.positions:
        raise ConfigError(
            f"shard {spec} has no hypotheses: there are only {plan.hypotheses_total}, "
            f"so use at most {plan.hypotheses_total} shards",
            source="--shard",
        )
    hypotheses = [config.hypotheses[i] for i in plan.positions]
    return config.model_copy(update={"hypotheses": hypotheses}), plan


def write_reports(report: RunReport, options: RunOptions) -> None:
    if options.results_json is not None:
        write_results_json(report, options.results_json)
    if options.junit is not None:
        write_junit(report, options.junit)
