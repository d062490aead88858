"""The asyncio executor: a bounded pool of workers running hypotheses' commands.

asyncio is used for structure, not speed: one loop owns the timeouts, cancellation, fail-fast and
progress reporting. Commands write straight to a log file per hypothesis (no pipes to drain, flat
memory whatever they print); only a bounded tail is read back for the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from runner.config import ExecutionSettings, Hypothesis, Status, TestExecutionResult
from runner.engine import per_test, result_cache, spawn
from runner.engine.aio import run_sync
from runner.engine.environments import EnvironmentPool, EnvironmentSetupError, HypothesisEnvironment
from runner.engine.gitutil import git_env
from runner.engine.naming import display_name, safe_name
from runner.engine.process import TASK_ENV, CommandOutcome, kill_marked, run_in_group, without_secrets
from runner.engine.result_cache import ResultCache
from runner.engine.scheduling import order_by_expected_duration
from runner.engine.worktrees import Worktree, WorktreeError

__all__ = ["AsyncTestExecutor", "ProgressCallback", "StartCallback", "WorkItem", "read_tail"]

logger = logging.getLogger("worktree_runner")

TAIL_BYTES = 64 * 1024
FAILING = frozenset({Status.FAILED, Status.TIMEOUT, Status.ERROR})


class ProgressCallback(Protocol):
    def __call__(self, result: TestExecutionResult, done: int, total: int) -> None: ...


class StartCallback(Protocol):
    """Called when a hypothesis' worktree is ready and its commands start (when its duration starts)."""

    def __call__(self, hypothesis: Hypothesis, index: int) -> None: ...


WorktreeProvider = Callable[[], contextlib.AbstractAsyncContextManager[Worktree]]


@dataclass(frozen=True)
class WorkItem:
    """A hypothesis and how to get the directory it runs in."""

    hypothesis: Hypothesis
    worktree: WorktreeProvider
    index: int


def read_tail(path: Path, limit: int = TAIL_BYTES) -> str:
    """The last ``limit`` bytes of a log, decoded with replacement, starting at a line boundary."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            data = fh.read(limit)
    except OSError:
        return ""
    if size > limit:
        newline = data.find(b"\n")
        if 0 <= newline < 4096:
            data = data[newline + 1 :]
    return data.decode("utf-8", "replace")


def _log_progress(result: TestExecutionResult, done: int, total: int) -> None:
    logger.info(
        "[%d/%d] %s: %s in %.2fs", done, total, display_name(result.name), result.status, result.duration_s
    )


class _Stopped(Exception):
    """Internal: the executor was asked to stop (fail-fast, a signal, ``stop()``)."""


class AsyncTestExecutor:
    """Runs hypotheses' commands in given directories, at most ``max_parallel`` at a time."""

    __test__ = False

    def __init__(
        self,
        config: ExecutionSettings | Mapping[str, Any],
        *,
        logs_dir: str | os.PathLike[str] | None = None,
        progress: ProgressCallback | None = None,
        durations: Mapping[str, float] | None = None,
        on_start: StartCallback | None = None,
        cache: ResultCache | None = None,
    ) -> None:
        self.config = (
            config
            if isinstance(config, ExecutionSettings)
            else ExecutionSettings.model_validate(dict(config))
        )
        self._logs_dir = Path(logs_dir) if logs_dir is not None else None
        self.progress: ProgressCallback = progress or _log_progress
        self.durations = dict(durations or {})
        self.on_start = on_start
        self.run_token = uuid.uuid4().hex
        self._stop_reason: str | None = None
        self._last_stop: str | None = None
        self._running: set[asyncio.Task[TestExecutionResult]] = set()
        self._base_env: dict[str, str] | None = None
        self._environments = EnvironmentPool(self.config.isolation)
        self._logs_ready = False
        self._plugin: per_test.SharedPlugin | None = None  # one copy of the pytest plugin per run
        self.cache = cache

    # -- public API -----------------------------------------------------------------------

    def should_parallelize(self, hypotheses: Sequence[Hypothesis | Mapping[str, Any]]) -> bool:
        return len(hypotheses) > 1 and self.config.max_parallel > 1

    def stop(self, reason: str = "cancelled") -> None:
        """Stop the run: running hypotheses are killed, queued ones are not started.

        Both end up ``cancelled``. Safe to call from a signal handler on the loop.
        """
        if self._stop_reason is None:
            self._stop_reason = reason
        for task in list(self._running):
            task.cancel()

    @property
    def stopped(self) -> str | None:
        """Why the current (or the last) run was stopped, if it was."""
        return self._stop_reason or self._last_stop

    async def execute_parallel_async(
        self,
        hypotheses: Sequence[Hypothesis | Mapping[str, Any]],
        worktrees: Sequence[str | os.PathLike[str] | Worktree]
        | Mapping[str, str | os.PathLike[str] | Worktree],
    ) -> list[TestExecutionResult]:
        """Run each hypothesis in its worktree; results in the order of ``hypotheses``."""
        hyps = [h if isinstance(h, Hypothesis) else Hypothesis.model_validate(h) for h in hypotheses]
        if isinstance(worktrees, Mapping):
            missing = [h.name for h in hyps if h.name not in worktrees]
            if missing:
                raise ValueError(f"no worktree given for {missing}")
            trees = [worktrees[h.name] for h in hyps]
        else:
            trees = list(worktrees)
            if len(trees) != len(hyps):
                raise ValueError(f"{len(hyps)} hypotheses but {len(trees)} worktrees")
        items = [WorkItem(h, _given(h, t), i) for i, (h, t) in enumerate(zip(hyps, trees, strict=True))]
        return await self.run(items)

    async def execute_single_async(
        self, hypothesis: Hypothesis | Mapping[str, Any], worktree: str | os.PathLike[str] | Worktree
    ) -> TestExecutionResult:
        return (await self.execute_parallel_async([hypothesis], [worktree]))[0]

    def execute_parallel(
        self,
        hypotheses: Sequence[Hypothesis | Mapping[str, Any]],
        worktrees: Sequence[str | os.PathLike[str] | Worktree]
        | Mapping[str, str | os.PathLike[str] | Worktree],
    ) -> list[TestExecutionResult]:
        return run_sync(self.execute_parallel_async(hypotheses, worktrees))

    def execute_single(
        self, hypothesis: Hypothesis | Mapping[str, Any], worktree: str | os.PathLike[str] | Worktree
    ) -> TestExecutionResult:
        return run_sync(self.execute_single_async(hypothesis, worktree))

    async def run(self, items: Sequence[WorkItem]) -> list[TestExecutionResult]:
        """Run all items; returns results in the order of ``items``. Never raises for one item."""
        results: dict[int, TestExecutionResult] = {}
        async for item, result in self.iter_results(items):
            results[item.index] = result
        return [results[item.index] for item in items]

    async def iter_results(
        self, items: Sequence[WorkItem]
    ) -> AsyncIterator[tuple[WorkItem, TestExecutionResult]]:
        """Yield ``(item, result)`` as hypotheses finish (then the cancelled ones)."""
        self._last_stop = None  # a stop() before the run starts still counts
        queue = deque(order_by_expected_duration(items, self.durations, key=lambda it: it.hypothesis.name))
        total = len(items)
        finished: asyncio.Queue[tuple[WorkItem, TestExecutionResult] | None] = asyncio.Queue()

        async def worker() -> None:
            try:
                while queue and self._stop_reason is None:
                    item = queue.popleft()
                    await finished.put((item, await self._run_item(item)))
                # Nothing left to start: the layers no hypothesis changed can wait for the next run
                # now, while other slots finish, rather than all at the end of this one.
                self._environments.spare_unused()
            finally:
                finished.put_nowait(None)  # this worker is done

        self._environments = EnvironmentPool(self.config.isolation)  # one scratch dir per run
        workers = [asyncio.create_task(worker()) for _ in range(min(self.config.max_parallel, total))]
        done = 0
        try:
            alive = len(workers)
            while alive:
                entry = await finished.get()
                if entry is None:
                    alive -= 1
                    continue
                item, result = entry
                done += 1
                self.progress(result, done, total)
                if self.config.fail_fast and result.status in FAILING:
                    self.stop(f"fail-fast: {display_name(result.name)} {result.status}")
                yield item, result
            for w in workers:
                if not w.cancelled() and w.exception() is not None:
                    raise w.exception()  # type: ignore[misc]
            # Whatever is still queued was never started: the run was stopped.
            while queue:
                item = queue.popleft()
                done += 1
                result = self._cancelled_result(item)
                self.progress(result, done, total)
                yield item, result
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await asyncio.shield(self._environments.close())
            if self._plugin is not None:
                shutil.rmtree(self._plugin.directory, ignore_errors=True)
                self._plugin = None
            # The executor can be used again; the reason stays readable through `stopped`.
            self._last_stop, self._stop_reason = self._stop_reason, None
            # One sweep per run for descendants that escaped their process group and outlived
            # their command (daemons started by a test).
            kill_marked(self.run_token)

    # -- internals -----------------------------------------------------------------------

    def _cancelled_result(
        self, item: WorkItem, duration: float = 0.0, log_path: Path | None = None
    ) -> TestExecutionResult:
        return TestExecutionResult(
            name=item.hypothesis.name,
            status=Status.CANCELLED,
            duration_s=round(duration, 3),
            ref=item.hypothesis.ref if item.hypothesis.ref is not None else item.hypothesis.patch,
            log_path=str(log_path) if log_path else None,
            output_tail=read_tail(log_path) if log_path else "",
            error=self._stop_reason or "cancelled",
        )

    def _logs(self) -> Path:
        if self._logs_dir is None:
            self._logs_dir = Path(tempfile.mkdtemp(prefix="worktree-runner-logs-"))
        if not self._logs_ready:
            self._logs_dir.mkdir(parents=True, exist_ok=True)
            self._logs_ready = True
        return self._logs_dir

    def _env_for(self, hypothesis: Hypothesis, worktree: Worktree, token: str) -> dict[str, str]:
        if self._base_env is None:
            base = without_secrets(git_env())
            base.update(self.config.env)
            self._base_env = base
        env = dict(self._base_env)
        env.update(hypothesis.env)
        env["WORKTREE_RUNNER_HYPOTHESIS"] = hypothesis.name
        env["WORKTREE_RUNNER_WORKTREE"] = str(worktree.path)
        env[TASK_ENV] = token
        return env

    async def _run_item(self, item: WorkItem) -> TestExecutionResult:
        task = asyncio.create_task(self._run_one(item))
        self._running.add(task)
        try:
            return await task
        except asyncio.CancelledError:
            # stop() can cancel the task before it ever ran; then _run_one had no chance to
            # turn the cancellation into a result. A cancellation of the worker itself propagates.
            current = asyncio.current_task()
            if self._stop_reason is not None and task.cancelled() and not (current and current.cancelling()):
                return self._cancelled_result(item)
            raise
        finally:
            self._running.discard(task)

    async def _run_one(self, item: WorkItem) -> TestExecutionResult:
        hyp = item.hypothesis
        ref = hyp.ref if hyp.ref is not None else hyp.patch
        log_path = self._logs() / f"{safe_name(item.index, hyp.name)}.log"
        started = time.monotonic()
        commit: str | None = None
        try:
            if self._stop_reason is not None:
                raise _Stopped
            async with item.worktree() as worktree:
                commit = worktree.commit
                started = time.monotonic()  # checkout time is not the hypothesis' duration
                cache_key = await self._cache_key(hyp, worktree) if self.cache is not None else None
                hit = self.cache.get(cache_key) if self.cache is not None and cache_key else None
                cached = self._cached_result(hit, hyp, ref, commit, log_path) if hit is not None else None
                if cached is not None:
                    return cached
                paths = self._env_for(hyp, worktree, "")  # the PATH that finds the base interpreter
                async with self._environments.environment(item.index, paths) as environment:
                    started = time.monotonic()  # checkout and environment are not the duration
                    if self.on_start is not None:
                        self.on_start(hyp, item.index)
                    outcome, stage, test_run = await self._run_commands(item, worktree, log_path, environment)
        except (WorktreeError, EnvironmentSetupError) as exc:
            return TestExecutionResult(
                name=hyp.name, status=Status.ERROR, ref=ref, commit=commit, error=str(exc),
                duration_s=round(time.monotonic() - started, 3),
            )  # fmt: skip
        except (asyncio.CancelledError, _Stopped):
            if self._stop_reason is None:
                raise  # cancelled from outside: not ours to swallow
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            result = self._cancelled_result(
                item, time.monotonic() - started, log_path if log_path.exists() else None
            )
            return result.model_copy(update={"commit": commit})
        duration = round(time.monotonic() - started, 3)
        status, error = _classify(outcome, stage, self.config.timeout_for(hyp))
        tests = None
        if test_run is not None:
            status, error = per_test_status(status, error, test_run)
            tests = per_test.to_json(test_run)
        result = TestExecutionResult(
            name=hyp.name, status=status, exit_code=outcome.exit_code, duration_s=duration, ref=ref,
            commit=commit, log_path=str(log_path), output_tail=read_tail(log_path), error=error, tests=tests,
        )  # fmt: skip
        if self.cache is not None and cache_key:
            self.cache.put(cache_key, result.model_dump(mode="json", exclude={"name", "ref", "log_path"}))
        return result

    async def _cache_key(self, hyp: Hypothesis, worktree: Worktree) -> str | None:
        """The result-cache key of this hypothesis in this worktree (None: no tree id, no caching)."""
        assert self.cache is not None
        tree = await result_cache.tree_id(worktree.path)
        if tree is None:
            return None
        try:
            command, setup = self.config.command_for(hyp), self.config.setup_for(hyp)
        except ValueError:
            return None
        settings = {
            "env": {**self.config.env, **hyp.env}, "timeout": self.config.timeout_for(hyp),
            "junit": self.config.junit_for(hyp), "per_test": self.config.per_test,
            "reruns": self.config.reruns, "isolation": self.config.isolation,
        }  # fmt: skip
        return self.cache.key(tree, command=command, setup=setup, settings=settings)

    def _cached_result(
        self, hit: dict[str, Any], hyp: Hypothesis, ref: str | None, commit: str | None, log_path: Path
    ) -> TestExecutionResult | None:
        """The cached result as this hypothesis' (None: an entry this version cannot read; run instead)."""
        try:
            here = {"name": hyp.name, "ref": ref, "commit": commit, "log_path": str(log_path), "cached": True}
            result = TestExecutionResult.model_validate({**hit, **here})
        except ValueError:
            return None
        log_path.write_text(f"(cached result: not run again)\n{result.output_tail}", encoding="utf-8")
        return result

    async def _run_commands(
        self, item: WorkItem, worktree: Worktree, log_path: Path, environment: HypothesisEnvironment
    ) -> tuple[CommandOutcome, str, per_test.TestRun | None]:
        hyp = item.hypothesis
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout_for(hyp)
        token = f"{self.run_token}-{item.index}"
        env = environment.apply(self._env_for(hyp, worktree, token))
        fd = spawn.open_log(log_path)
        try:
            try:
                command = self.config.command_for(hyp)
                setup = self.config.setup_for(hyp)
            except ValueError as exc:
                return CommandOutcome("spawn-error", error=str(exc)), "command", None
            stages = [("setup", setup), ("command", command)] if setup else [("command", command)]
            outcome = CommandOutcome("exited", exit_code=0)
            stage = "command"
            collector = self._per_test_collector(hyp, worktree, log_path)
            for name, argv in stages:
                if argv is None:
                    continue
                stage = name
                stage_env = collector.command_env(env) if name == "command" and collector else env
                os.write(fd, f"+ {_quote(argv)}\n".encode())
                outcome = await run_in_group(
                    argv, cwd=worktree.path, env=stage_env, log_fd=fd, deadline=deadline,
                    grace=self.config.kill_grace, token=token,
                )  # fmt: skip
                if name == "command" and collector and outcome.kind == "exited" and outcome.exit_code:
                    fallback = collector.fallback_env(read_tail(log_path))
                    if fallback is not None:
                        # Something between us and pytest dropped PYTHONPATH: run as if we never asked.
                        os.write(fd, b"+ (again, without the per-test result plugin, which could not load)\n")
                        collector = None
                        outcome = await run_in_group(
                            argv, cwd=worktree.path, env=fallback, log_fd=fd, deadline=deadline,
                            grace=self.config.kill_grace, token=token,
                        )  # fmt: skip
                if outcome.kind != "exited" or outcome.exit_code != 0:
                    break
                if name == "setup" and (escaped := environment.base_changed()):
                    os.write(fd, f"worktree-runner: {escaped}\n".encode())
                    return CommandOutcome("spawn-error", error=escaped), "setup", None
            test_run = None
            if collector is not None and stage == "command" and outcome.kind == "exited":

                async def rerun(rerun_env: dict[str, str], label: str) -> CommandOutcome:
                    os.write(fd, f"+ ({label}) {_quote(command)}\n".encode())
                    return await run_in_group(
                        command, cwd=worktree.path, env=rerun_env, log_fd=fd, deadline=deadline,
                        grace=self.config.kill_grace, token=token,
                    )  # fmt: skip

                test_run = await collector.finish(rerun, time_left=lambda: deadline - loop.time())
            return outcome, stage, test_run
        finally:
            os.close(fd)

    def _per_test_collector(
        self, hyp: Hypothesis, worktree: Worktree, log_path: Path
    ) -> per_test.PerTestCollector | None:
        """Per-test collection for this hypothesis, or None (``per-test: false`` and no ``junit``)."""
        junit = self.config.junit_for(hyp)
        if junit is None and not self.config.per_test:
            return None
        if self._plugin is None and junit is None:
            self._plugin = per_test.SharedPlugin(self._logs() / f".worktree-runner-{uuid.uuid4().hex[:12]}")
        return per_test.PerTestCollector(
            worktree=worktree.path, workdir=log_path.with_suffix(".tests"), junit=junit,
            pytest_plugin=self.config.per_test, reruns=self.config.reruns, shared_plugin=self._plugin,
        )  # fmt: skip


def _given(hypothesis: Hypothesis, tree: str | os.PathLike[str] | Worktree) -> WorktreeProvider:
    worktree = tree if isinstance(tree, Worktree) else Worktree(path=Path(tree), name=hypothesis.name)

    @contextlib.asynccontextmanager
    async def provide() -> AsyncIterator[Worktree]:
        if not worktree.path.is_dir():
            raise WorktreeError(f"worktree {worktree.path} does not exist")
        yield worktree

    return provide


def _quote(argv: Iterable[str]) -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in argv)


def _classify(outcome: CommandOutcome, stage: str, timeout: float) -> tuple[Status, str | None]:
    if outcome.kind == "timeout":
        return Status.TIMEOUT, f"timed out after {timeout:g}s (during {stage})"
    if outcome.kind == "spawn-error":
        return Status.ERROR, f"{stage}: {outcome.error}"
    code = outcome.exit_code
    if code == 0:
        return Status.PASSED, None
    if stage == "setup":
        return Status.ERROR, f"setup failed with exit code {code}"
    if code is not None and code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return Status.FAILED, f"killed by {name}"
    return Status.FAILED, f"exit code {code}"


def per_test_status(status: Status, error: str | None, run: per_test.TestRun) -> tuple[Status, str | None]:
    """A failed hypothesis whose every failing test passed on a re-run is ``passed`` (flaky, not broken)."""
    failing = run.failing_ids()
    if status is Status.FAILED and failing and all(i in run.flaky for i in failing):
        return Status.PASSED, f"{error}; all {len(failing)} failing test(s) passed when re-run (flaky)"
    return status, error
