#!/usr/bin/env python3
"""What a user waits for per hypothesis: worktree + environment layer + spawn + report, end to end.

A repository of ``--files`` files (default 1,000, ~1 KiB each, in 50 directories) with one branch per
hypothesis (each changes one file). Every hypothesis runs the trivial command ``true x``; ``--count``
hypotheses (default 16) at max-parallel ``--parallel`` (default 4). In one process, imports done before any
clock starts, methods rotated per repetition:

* ``ours``: ``run_config`` as the CLI runs it (``isolation: venv``, per-test collection on, results JSON and
  JUnit written);
* ``ours_bare``: the same with ``isolation: none`` and ``per-test: false`` (what the environment layer and the
  per-test plumbing cost, by difference);
* ``diy``: what a careful workflow script does without us: a thread pool of ``--parallel`` running, per
  hypothesis, ``git worktree add --detach``, ``true x`` with output to a log file, ``git worktree remove
  --force``, the two git commands under one lock (unlocked, they race on ``.git/worktrees`` and fail: seen
  here) - no isolation, no report. The baseline.

Then the breakdown, each phase alone at the same parallelism on the same repository and refs:

* ``worktree``: ``WorktreeManager`` create + remove (ours, two-phase);
* ``environment``: the run's template layer (``fixed``, once per run) and one layer per hypothesis
  (``EnvironmentPool.environment`` in and out; unchanged layers are served again, as in a run);
* ``spawn``: log file + start + wait of ``true x`` (``run_in_group``);
* ``report``: results JSON + JUnit for ``--count`` results.

Reported: wall per run, the amortised wall per hypothesis (wall / count, i.e. what one more hypothesis
costs at this parallelism), each phase's amortised ms per hypothesis, and ratios to ``diy`` (medians of the
per-repetition ratios). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import fs_type, markdown_table  # sibling module of this script

from runner import Hypothesis, RunnerConfig, RunOptions, WorktreeManager, run_config
from runner.config import Status
from runner.engine.aio import run_sync
from runner.engine.environments import EnvironmentPool
from runner.engine.gitutil import git_env
from runner.engine.process import run_in_group
from runner.engine.spawn import open_log
from runner.report.results import write_junit, write_results_json

COMMAND = ["true", "x"]
METHODS = ("ours", "ours_bare", "diy")
PHASES = ("worktree", "environment", "spawn", "report")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, env=git_env(), check=True, capture_output=True, text=True
    ).stdout.strip()


def build_repo(root: Path, files: int, count: int) -> Path:
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "bench@example.invalid")
    git(repo, "config", "user.name", "bench")
    for i in range(files):
        d = repo / f"pkg{i % 50:02d}"
        d.mkdir(exist_ok=True)
        (d / f"mod{i:04d}.py").write_text(f"# module {i}\n" + "VALUE = 'x' * 64\n" * 12)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    for k in range(count):
        git(repo, "checkout", "-q", "-b", f"h{k}", "main")
        target = repo / f"pkg{k % 50:02d}" / f"mod{k:04d}.py"
        target.write_text(target.read_text() + f"CHANGED = {k}\n")
        git(repo, "commit", "-q", "-am", f"h{k}")
    git(repo, "checkout", "-q", "main")
    return repo


def run_ours(repo: Path, work: Path, count: int, parallel: int, bare: bool) -> float:
    extra: dict[str, Any] = {"isolation": "none", "per-test": False} if bare else {}
    config = RunnerConfig.model_validate({
        "command": COMMAND, "max-parallel": parallel, "timeout": 600, **extra,
        "hypotheses": [{"name": f"h{k}", "ref": f"h{k}"} for k in range(count)],
    })  # fmt: skip
    options = RunOptions(
        repo=repo, results_json=work / "results.json", junit=work / "junit.xml", logs_dir=work / "logs",
        worktree_base=work / "wt", progress=lambda r, d, t: None, handle_signals=False,
    )  # fmt: skip
    t0 = time.perf_counter()
    report = run_config(config, options)
    wall = time.perf_counter() - t0
    bad = [r.name for r in report.results if r.status is not Status.PASSED]
    if bad:
        raise RuntimeError(f"ours: not passed: {bad}: {report.results[0].error}")
    return wall


def run_diy(repo: Path, work: Path, count: int, parallel: int) -> float:
    (work / "logs").mkdir()
    env = git_env()

    lock = threading.Lock()  # concurrent `git worktree add/remove` race on .git/worktrees

    def one(k: int) -> int:
        tree = work / f"wt-{k}"
        with lock:
            subprocess.run(["git", "worktree", "add", "-q", "--detach", str(tree), f"h{k}"], cwd=repo,
                           env=env, check=True, capture_output=True)  # fmt: skip
        with open(work / "logs" / f"h{k}.log", "wb") as log:
            code = subprocess.run(COMMAND, cwd=tree, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT).returncode  # fmt: skip
        with lock:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=repo, env=env,
                           check=True, capture_output=True)  # fmt: skip
        return code

    t0 = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        codes = list(pool.map(one, range(count)))
    wall = time.perf_counter() - t0
    if any(codes):
        raise RuntimeError(f"diy: exit codes {codes}")
    return wall


def phase_worktree(repo: Path, work: Path, count: int, parallel: int) -> float:
    async def main() -> float:
        manager = WorktreeManager(repo, base=work / "wt")
        gate = asyncio.Semaphore(parallel)

        async def one(k: int) -> None:
            async with gate:
                tree = await manager.create(Hypothesis(name=f"h{k}", ref=f"h{k}"), k)
                await manager.remove(tree)

        t0 = time.perf_counter()
        await manager.open()
        await asyncio.gather(*(one(k) for k in range(count)))
        await manager.close()
        return time.perf_counter() - t0

    return run_sync(main())


def phase_environment(work: Path, count: int, parallel: int) -> tuple[float, float]:
    """(fixed: the template, per run; wall of ``count`` layers in and out at ``parallel``)."""

    async def main() -> tuple[float, float]:
        pool = EnvironmentPool("venv", base_dir=work)
        env = dict(os.environ)
        gate = asyncio.Semaphore(parallel)
        t0 = time.perf_counter()
        async with pool.environment(-1, env):
            pass
        fixed = time.perf_counter() - t0

        async def one(k: int) -> None:
            async with gate, pool.environment(k, env):
                await asyncio.sleep(0)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(count)))
        layers = time.perf_counter() - t0
        await pool.close()
        return fixed, layers

    return run_sync(main())


def phase_spawn(work: Path, count: int, parallel: int) -> float:
    logs = work / "logs"
    logs.mkdir()

    async def main() -> float:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(parallel)
        env = dict(os.environ)

        async def one(k: int) -> None:
            async with gate:
                fd = open_log(logs / f"h{k}.log")
                try:
                    outcome = await run_in_group(COMMAND, cwd=work, env=env, log_fd=fd,
                                                 deadline=loop.time() + 600, grace=1.0)  # fmt: skip
                finally:
                    os.close(fd)
                if outcome.exit_code != 0:
                    raise RuntimeError(f"spawn: {outcome}")

        t0 = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(count)))
        return time.perf_counter() - t0

    return run_sync(main())


def phase_report(report_of: Any, work: Path) -> float:
    t0 = time.perf_counter()
    write_results_json(report_of, work / "r.json")
    write_junit(report_of, work / "r.xml")
    return time.perf_counter() - t0


def _sample_report(repo: Path, work: Path, count: int, parallel: int) -> Any:
    config = RunnerConfig.model_validate({
        "command": COMMAND, "max-parallel": parallel,
        "hypotheses": [{"name": f"h{k}", "ref": f"h{k}"} for k in range(count)],
    })  # fmt: skip
    return run_config(config, RunOptions(repo=repo, logs_dir=work / "logs", worktree_base=work / "wt",
                                         progress=lambda r, d, t: None, handle_signals=False))  # fmt: skip


def _fresh(base: Path, name: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))
    (path / "wt").mkdir()  # the worktree base must exist
    return path


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--count", type=int, default=16, help="hypotheses per run (default 16)")
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--quick", action="store_true", help="--files 200 --count 8 --reps 1")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.count, args.reps = 200, 8, 1
    n, p = args.count, args.parallel
    root = Path(tempfile.mkdtemp(prefix="e2e-bench-", dir=args.tmp))
    started = time.perf_counter()
    try:
        repo = build_repo(root, args.files, n)
        walls: dict[str, list[float]] = {m: [] for m in METHODS}
        phases: dict[str, list[float]] = {ph: [] for ph in (*PHASES, "environment_fixed")}
        ratios: dict[str, list[float]] = {"ours/diy": [], "ours_bare/diy": []}
        sample = _sample_report(repo, _fresh(root, "sample"), n, p)
        runs: dict[str, Callable[[Path], float]] = {
            "ours": lambda w: run_ours(repo, w, n, p, bare=False),
            "ours_bare": lambda w: run_ours(repo, w, n, p, bare=True),
            "diy": lambda w: run_diy(repo, w, n, p),
        }
        for rep in range(args.reps):
            order = METHODS[rep % len(METHODS) :] + METHODS[: rep % len(METHODS)]
            got: dict[str, float] = {}
            for method in order:
                work = _fresh(root, method)
                got[method] = runs[method](work)
                shutil.rmtree(work, ignore_errors=True)
                walls[method].append(got[method])
            ratios["ours/diy"].append(got["ours"] / got["diy"])
            ratios["ours_bare/diy"].append(got["ours_bare"] / got["diy"])
            work = _fresh(root, "phases")
            phases["worktree"].append(phase_worktree(repo, work, n, p))
            fixed, layers = phase_environment(work, n, p)
            phases["environment_fixed"].append(fixed)
            phases["environment"].append(layers)
            phases["spawn"].append(phase_spawn(work, n, p))
            phases["report"].append(phase_report(sample, work))
            shutil.rmtree(work, ignore_errors=True)
        if git(repo, "worktree", "list").count("\n") != 0:
            raise RuntimeError(f"worktrees left behind: {git(repo, 'worktree', 'list')}")
    finally:
        shutil.rmtree(root, ignore_errors=True)

    per_hyp = {m: round(_med(v) / n * 1000, 2) for m, v in walls.items()}
    phase_ms = {ph: round(_med(phases[ph]) / n * 1000, 2) for ph in PHASES}
    fixed_ms = round(_med(phases["environment_fixed"]) * 1000, 1)
    print(f"{n} hypotheses x `{' '.join(COMMAND)}` at max-parallel {p}, repository of {args.files} files, "
          f"{args.reps} repetitions, temp dir {args.tmp} ({fs_type(args.tmp)})\n")  # fmt: skip
    rows = [
        [m, f"{_med(walls[m]):.3f}", f"{per_hyp[m]:.2f}", " ".join(f"{x:.3f}" for x in walls[m])]
        for m in METHODS
    ]
    print(markdown_table(["method", "wall s (median)", "ms per hypothesis", "per repetition"], rows))
    print()
    rows = [[ph, f"{phase_ms[ph]:.2f}"] for ph in PHASES]
    rows.append(["environment, fixed per run (template layer)", f"{fixed_ms:.1f} (per run)"])
    print(markdown_table(["phase (alone, same parallelism)", "ms per hypothesis"], rows))
    print()
    ratio = {k: round(_med(v), 3) for k, v in ratios.items()}
    each = " ".join(f"{x:.3f}" for x in ratios["ours/diy"])
    bare = ratio["ours_bare/diy"]
    print(f"ours / diy: {ratio['ours/diy']} (per repetition {each}); ours_bare / diy: {bare}")
    print(json.dumps({
        "bench": "end_to_end", "files": args.files, "count": n, "parallel": p, "reps": args.reps,
        "wall_s": {m: round(_med(v), 4) for m, v in walls.items()}, "ms_per_hypothesis": per_hyp,
        "phases_ms_per_hypothesis": phase_ms, "environment_fixed_ms": fixed_ms, "ratios": ratio,
        "python": platform.python_version(), "cpus": os.cpu_count(), "tmp_fs": fs_type(args.tmp),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
