#!/usr/bin/env python3
"""Diagnostic A/B: where the executor's per-task time goes, for N trivial commands (``true x``).

Variants, each in a fresh interpreter (imports and inputs before the clock), in rotated order, logs under
``--tmp`` (default: the system temp dir):

* ``ours``: ``AsyncTestExecutor.execute_parallel_async`` via ``run_sync`` (as in executor_overhead.py);
* ``ours_abs_argv0``: the same with ``/usr/bin/true`` (no PATH search in the vfork child);
* ``asyncio_min``: bare asyncio with ours' process handling (own session, stdin /dev/null, output to a log
  file per task, pidfd watcher via ``run_sync``) and none of the executor's bookkeeping;
* ``asyncio_min_env``: the same, passing an environment like ours (``git_env()`` + 3 variables);
* ``asyncio_spawn_in_threads``: as ``asyncio_min``, but ``subprocess.Popen`` runs in a ThreadPoolExecutor(P)
  (fork/exec off the loop thread) and the loop waits on a pidfd;
* ``threads_session``: ThreadPoolExecutor(P) + ``subprocess.run(start_new_session=True, stdout=<log>)``.

Prints median wall time, median CPU per task of the orchestrating process and the median per-repetition
ratio to ``ours``; the last line is a JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

VARIANTS = (
    "ours",
    "ours_abs_argv0",
    "asyncio_min",
    "asyncio_min_env",
    "asyncio_spawn_in_threads",
    "threads_session",
)
FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _ours(work: str, n: int, p: int, argv: list[str]) -> Callable[[], object]:
    from runner import AsyncTestExecutor, ExecutionSettings, Hypothesis
    from runner.engine.aio import run_sync

    hypotheses = [Hypothesis(name=f"t{i}", ref="HEAD") for i in range(n)]

    def run() -> object:
        settings = ExecutionSettings.model_validate({"command": argv, "max_parallel": p, "timeout": 600})
        executor = AsyncTestExecutor(settings, logs_dir=f"{work}/logs", progress=lambda r, d, t: None)
        return run_sync(executor.execute_parallel_async(hypotheses, [work] * n))

    return run


async def _wait_pidfd(pid: int) -> None:
    loop = asyncio.get_running_loop()
    fd = os.pidfd_open(pid)
    done: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _asyncio_min(
    work: str, n: int, p: int, argv: list[str], *, env: dict[str, str] | None, in_threads: bool
) -> Callable[[], object]:
    from runner.engine.aio import run_sync

    os.mkdir(f"{work}/logs")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(p) if in_threads else None
        queue = deque(range(n))

        async def worker() -> None:
            while queue:
                i = queue.popleft()
                fd = os.open(f"{work}/logs/{i}.log", FLAGS, 0o644)
                kwargs: dict[str, Any] = {
                    "stdin": subprocess.DEVNULL,
                    "stdout": fd,
                    "stderr": subprocess.STDOUT,
                    "cwd": work,
                    "env": env,
                    "start_new_session": True,
                }
                try:
                    if pool is not None:
                        popen = await loop.run_in_executor(
                            pool, functools.partial(subprocess.Popen, argv, **kwargs)
                        )
                    else:
                        proc = await asyncio.create_subprocess_exec(*argv, **kwargs)
                finally:
                    os.close(fd)
                if pool is not None:
                    await _wait_pidfd(popen.pid)
                    popen.wait()
                else:
                    await proc.wait()

        await asyncio.gather(*(worker() for _ in range(min(p, n))))
        if pool is not None:
            pool.shutdown()

    return lambda: run_sync(main())


def _threads(work: str, n: int, p: int, argv: list[str]) -> Callable[[], object]:
    os.mkdir(f"{work}/logs")

    def one(i: int) -> int:
        with open(f"{work}/logs/{i}.log", "wb") as fh:
            return subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=work,
                start_new_session=True,
                check=False,
            ).returncode

    def run() -> object:
        with ThreadPoolExecutor(p) as pool:
            return list(pool.map(one, range(n)))

    return run


def worker(name: str, tmp: str, n: int, p: int) -> dict[str, float]:
    work = tempfile.mkdtemp(prefix="bench-spawn-", dir=tmp)
    argv = ["true", "x"]
    try:
        if name in ("ours", "ours_abs_argv0"):
            run = _ours(work, n, p, ["/usr/bin/true", "x"] if name == "ours_abs_argv0" else argv)
        elif name.startswith("asyncio_"):
            env = None
            if name == "asyncio_min_env":
                from runner.engine.gitutil import git_env

                env = git_env()
                env.update(
                    WORKTREE_RUNNER_HYPOTHESIS="t", WORKTREE_RUNNER_WORKTREE=work, WORKTREE_RUNNER_TASK="x"
                )
            run = _asyncio_min(work, n, p, argv, env=env, in_threads=name == "asyncio_spawn_in_threads")
        else:
            run = _threads(work, n, p, argv)
        cpu0, t0 = _cpu_s(), time.perf_counter()
        run()
        wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"wall_s": wall, "cpu_ms_per_task": cpu * 1000.0 / n}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    parser.add_argument("-n", type=int, default=1000, help="commands per run (default 1000)")
    parser.add_argument("-p", type=int, default=4, help="parallelism (default 4)")
    parser.add_argument("--tmp", help="directory for the logs (default: system temp dir)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    tmp = args.tmp or tempfile.gettempdir()
    if args.worker:
        print(json.dumps(worker(args.worker, tmp, args.n, args.p)))
        return 0
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for rep in range(args.reps):
        k = rep % len(VARIANTS)
        for name in VARIANTS[k:] + VARIANTS[:k]:
            proc = subprocess.run(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--worker",
                    name,
                    "--tmp",
                    tmp,
                    "-n",
                    str(args.n),
                    "-p",
                    str(args.p),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            runs[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"rep {rep + 1}/{args.reps} {name:<26} {runs[name][-1]['wall_s']:.3f} s", file=sys.stderr)
    print(
        f"{args.n} x `true x` at P={args.p}, logs under {tmp}, {args.reps} reps, "
        f"Python {sys.version.split()[0]}\n"
    )
    print("| variant | makespan s | orchestrator CPU ms/task | makespan / ours (median of per-rep ratios) |")
    print("|---|---|---|---|")
    summary: dict[str, dict[str, float]] = {}
    for name in VARIANTS:
        wall = statistics.median(r["wall_s"] for r in runs[name])
        cpu = statistics.median(r["cpu_ms_per_task"] for r in runs[name])
        ratio = statistics.median(
            a["wall_s"] / b["wall_s"] for a, b in zip(runs[name], runs["ours"], strict=True)
        )
        summary[name] = {
            "wall_s": round(wall, 4),
            "cpu_ms_per_task": round(cpu, 3),
            "vs_ours": round(ratio, 3),
        }
        print(f"| {name} | {wall:.3f} | {cpu:.3f} | {ratio:.2f} |")
    print(json.dumps({"bench": "spawn_variants", "n": args.n, "p": args.p, "tmp": tmp, "variants": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
