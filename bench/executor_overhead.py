#!/usr/bin/env python3
"""Orchestration overhead of the asyncio executor next to a thread pool and ``xargs -P``.

Scenarios (default size; ``--quick`` in brackets):

* ``trivial``: N x ``true x`` at P=4, N = 1000 [200] - the executor itself is the whole cost;
* ``sleep``:   N x ``sleep 0.2`` at P=8, N = 64 [16] - ideal makespan ``ceil(N/P) * 0.2`` s;
* ``output``:  N x ``head -c 20971520 /dev/zero`` at P=8, N = 16 [4] - 20 MiB of output per task;
  the interesting number is the peak RSS of the orchestrating process.

Methods:

* ``ours``: ``AsyncTestExecutor.execute_parallel_async`` through ``runner.engine.aio.run_sync`` (the CLI's
  path: on 3.11 it installs the pidfd child watcher). Each command writes to its own log file.
* ``threads_file``: ``ThreadPoolExecutor(P)`` + ``subprocess.run(stdout=<own log file>, stderr=STDOUT)`` -
  the fair baseline (output handled like ours).
* ``threads_capture``: ``ThreadPoolExecutor(P)`` + ``subprocess.run(capture_output=True)`` - what naive
  runners do; only the length of the output is kept once a task is done (the baseline is not charged for
  keeping it).
* ``xargs``: ``xargs -P P -n 1 <cmd>`` with one argument per line on stdin, stdout to one file; timed from
  outside (its own start-up included).

Each Python method runs in a fresh interpreter; imports and the task list (``Hypothesis`` objects, argument
vectors) are prepared before the clock starts and the child reports its own wall time, CPU time and
``ru_maxrss`` (RUSAGE_SELF: the orchestrator alone, not its children). Within one repetition every method runs
back to back, in an order rotated per repetition; reported are medians, and ratios are medians of the
per-repetition ratios. The last line printed is one JSON object.

Noise: the machine is shared. For every method run the driver also measures the "foreign load": CPUs kept
busy by other processes meanwhile (``/proc/stat`` busy time minus the CPU time of our own process tree,
divided by the wall time; kernel threads working for us, e.g. writeback, count as foreign, so it is an
upper bound). When any method of a (repetition, scenario) group saw more than ``--noise-threshold`` CPUs of
foreign load, the whole group is run again (``--noise-retries`` times at most) and the least noisy attempt is
kept; the tables show the foreign load of the kept runs.

Log files go to ``--tmp`` (default: the system temp dir, where the runner puts them too). The file system
matters: see ``bench/README.md`` (creating a file in this VM's ext4 ``/tmp`` costs ~0.3-0.75 ms of CPU).
``--extra`` adds the diagnostic method ``asyncio_min`` (bare asyncio, same process handling as ours, none of
the executor's bookkeeping); ``--profile`` runs ``ours`` once under cProfile; ``--only`` picks scenarios.

About RSS: on Linux ``ru_maxrss`` survives ``execve``, and ``subprocess``/``posix_spawn`` start children
with ``vfork`` semantics, so a child's ``ru_maxrss`` is at least the RSS its parent had when it was spawned
(here the ~17 MiB of this driver). The workers therefore also report ``VmHWM`` from ``/proc/self/status``
(the peak of their own address space only). The goal is judged on ``ru_maxrss``, the larger of the two. For
``xargs`` only ``wait4``'s ``ru_maxrss`` is available; it includes that inherited value and the commands
xargs ran, so it says nothing about xargs itself (a C program of ~2 MiB).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import busy_cpu_s, cell, fs_type, markdown_table  # sibling module of this script

OUTPUT_BYTES = 20 * 1024 * 1024
SLEEP_S = 0.2
METHODS = ("ours", "threads_file", "threads_capture", "xargs")
# Diagnostic only (--extra): bare asyncio with the same process handling as ours (own session, output to a
# log file per task, pidfd watcher via run_sync) and none of the executor's bookkeeping.
EXTRA_METHODS = ("asyncio_min",)

# Goals as set for this project (derived from /work/shared/docs/executor-and-worktrees.md).
GOAL_VS_XARGS_TRIVIAL = 1.3
GOAL_VS_XARGS_SLEEP = 1.01  # the old goal, 1.02 over the ideal, is out of reach when xargs is at 1.026
GOAL_VS_THREADS_TRIVIAL = 1.0
GOAL_RSS_MIB = 40.0


@dataclass(frozen=True)
class Scenario:
    key: str
    prefix: tuple[str, ...]  # the command without its last argument (xargs appends it)
    item: str  # the last argument, one per task
    n: int
    p: int
    expect_bytes: int  # output each task must produce (checked afterwards)

    @property
    def argv(self) -> list[str]:
        return [*self.prefix, self.item]

    @property
    def ideal_s(self) -> float | None:
        return math.ceil(self.n / self.p) * SLEEP_S if self.key == "sleep" else None

    def describe(self) -> str:
        return f"{self.n} x `{' '.join(self.argv)}` at P={self.p}"


def scenarios(quick: bool) -> list[Scenario]:
    return [
        Scenario("trivial", ("true",), "x", 200 if quick else 1000, 4, 0),
        Scenario("sleep", ("sleep",), f"{SLEEP_S}", 16 if quick else 64, 8, 0),
        Scenario(
            "output", ("head", "-c", str(OUTPUT_BYTES)), "/dev/zero", 4 if quick else 16, 8, OUTPUT_BYTES
        ),
    ]


# --------------------------------------------------------------------------------------------------
# Worker side: one method, one scenario, in a fresh interpreter.
# --------------------------------------------------------------------------------------------------


def _usage() -> tuple[float, float]:
    """(CPU seconds, ru_maxrss MiB) of this process, all threads, children excluded."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0


def _vm_hwm_mib() -> float | None:
    """Peak RSS of this process' own address space (not inherited through exec, unlike ru_maxrss)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return None


def _pidfd_in_use() -> bool:
    """Called on the running loop: is the pidfd child watcher the one asyncio uses?"""
    import asyncio
    import warnings

    if sys.version_info >= (3, 12):
        from asyncio import unix_events

        can_use: Callable[[], bool] = getattr(unix_events, "can_use_pidfd", lambda: False)
        return bool(can_use())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = asyncio.get_event_loop_policy().get_child_watcher()
    return type(watcher).__name__ == "PidfdChildWatcher"


def _timed(run: Callable[[], Any], profile_path: str | None) -> tuple[Any, float, float]:
    """Run ``run()``; returns (its result, wall seconds, orchestrator CPU seconds)."""
    profiler = None
    if profile_path:
        import cProfile

        profiler = cProfile.Profile()
    cpu0, _ = _usage()
    t0 = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    result = run()
    if profiler is not None:
        profiler.disable()
    wall = time.perf_counter() - t0
    cpu1, _ = _usage()
    if profiler is not None and profile_path:
        import io
        import pstats

        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)
        Path(profile_path).write_text(out.getvalue(), encoding="utf-8")
    return result, wall, cpu1 - cpu0


def _worker_ours(spec: dict[str, Any]) -> dict[str, Any]:
    from runner import AsyncTestExecutor, ExecutionSettings, Hypothesis, Status
    from runner.engine.aio import run_sync

    n, p, workdir = spec["n"], spec["p"], spec["workdir"]
    logs = Path(workdir) / "logs"
    t_inputs = time.perf_counter()
    hypotheses = [Hypothesis(name=f"task-{i}", ref="HEAD") for i in range(n)]
    trees = [workdir] * n
    inputs_s = time.perf_counter() - t_inputs
    _, floor_rss = _usage()
    seen: dict[str, bool] = {}

    async def main() -> list[Any]:
        seen["pidfd"] = _pidfd_in_use()
        executor = AsyncTestExecutor(
            # == ExecutionSettings(command=..., max_parallel=p, timeout=600), spelled so mypy needs no plugin
            ExecutionSettings.model_validate({"command": spec["argv"], "max_parallel": p, "timeout": 600}),
            logs_dir=logs,
            progress=lambda r, d, t: None,
        )
        return await executor.execute_parallel_async(hypotheses, trees)

    results, wall, cpu = _timed(lambda: run_sync(main()), spec.get("profile"))
    _, rss = _usage()
    hwm = _vm_hwm_mib()
    failures = sum(1 for r in results if r.status is not Status.PASSED)
    if spec["expect_bytes"]:
        # Each log holds a "+ <command>" line, then the output.
        failures += sum(
            1 for r in results if not r.log_path or os.path.getsize(r.log_path) < spec["expect_bytes"]
        )
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_mib": rss,
        "hwm_mib": hwm,
        "floor_rss_mib": floor_rss,
        "failures": failures,
        "pidfd": seen.get("pidfd", False),
        "inputs_s": inputs_s,
    }


def _worker_threads(spec: dict[str, Any], capture: bool) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor, as_completed

    n, p, workdir, argv = spec["n"], spec["p"], spec["workdir"], spec["argv"]
    logs = Path(workdir) / "logs"
    logs.mkdir()
    log_paths = [str(logs / f"task-{i}.log") for i in range(n)]
    _, floor_rss = _usage()

    def one_file(i: int) -> tuple[int, int]:
        with open(log_paths[i], "wb") as fh:
            proc = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, cwd=workdir
            )
        return proc.returncode, 0

    def one_capture(i: int) -> tuple[int, int]:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, cwd=workdir)
        return proc.returncode, len(proc.stdout)  # the output itself is dropped here

    one = one_capture if capture else one_file

    def run() -> list[tuple[int, int]]:
        done: list[tuple[int, int]] = []
        with ThreadPoolExecutor(max_workers=p) as pool:
            futures = [pool.submit(one, i) for i in range(n)]
            for fut in as_completed(futures):
                done.append(fut.result())
        return done

    done, wall, cpu = _timed(run, None)
    _, rss = _usage()
    hwm = _vm_hwm_mib()
    failures = sum(1 for code, _ in done if code != 0)
    if spec["expect_bytes"]:
        if capture:
            failures += sum(1 for _, size in done if size != spec["expect_bytes"])
        else:
            failures += sum(1 for path in log_paths if os.path.getsize(path) != spec["expect_bytes"])
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_mib": rss,
        "hwm_mib": hwm,
        "floor_rss_mib": floor_rss,
        "failures": failures,
    }


def _worker_asyncio_min(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncio
    from collections import deque

    from runner.engine.aio import run_sync

    n, p, workdir, argv = spec["n"], spec["p"], spec["workdir"], spec["argv"]
    logs = Path(workdir) / "logs"
    logs.mkdir()
    log_paths = [str(logs / f"task-{i}.log") for i in range(n)]
    _, floor_rss = _usage()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC

    async def main() -> list[int]:
        queue = deque(range(n))
        codes: list[int] = []

        async def worker() -> None:
            while queue:
                i = queue.popleft()
                fd = os.open(log_paths[i], flags, 0o644)
                try:
                    proc = await asyncio.create_subprocess_exec(
                        *argv,
                        stdin=subprocess.DEVNULL,
                        stdout=fd,
                        stderr=subprocess.STDOUT,
                        cwd=workdir,
                        start_new_session=True,
                    )
                finally:
                    os.close(fd)
                codes.append(await proc.wait())

        await asyncio.gather(*(worker() for _ in range(min(p, n))))
        return codes

    codes, wall, cpu = _timed(lambda: run_sync(main()), None)
    _, rss = _usage()
    hwm = _vm_hwm_mib()
    failures = sum(1 for code in codes if code != 0) + (n - len(codes))
    if spec["expect_bytes"]:
        failures += sum(1 for path in log_paths if os.path.getsize(path) != spec["expect_bytes"])
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_mib": rss,
        "hwm_mib": hwm,
        "floor_rss_mib": floor_rss,
        "failures": failures,
    }


def worker_main(spec_json: str) -> None:
    spec = json.loads(spec_json)
    method = spec["method"]
    if method == "ours":
        out = _worker_ours(spec)
    elif method == "asyncio_min":
        out = _worker_asyncio_min(spec)
    elif method in ("threads_file", "threads_capture"):
        out = _worker_threads(spec, capture=method == "threads_capture")
    else:
        raise SystemExit(f"unknown worker method {method!r}")
    print(json.dumps(out))


# --------------------------------------------------------------------------------------------------
# Driver side.
# --------------------------------------------------------------------------------------------------


def run_python_method(
    method: str, sc: Scenario, workdir: Path, *, profile: str | None = None
) -> dict[str, Any]:
    spec = {
        "method": method,
        "argv": sc.argv,
        "n": sc.n,
        "p": sc.p,
        "workdir": str(workdir),
        "expect_bytes": sc.expect_bytes,
        "profile": profile,
    }
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{method} worker failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run_xargs(sc: Scenario, workdir: Path) -> dict[str, Any]:
    xargs = shutil.which("xargs")
    if xargs is None:
        raise RuntimeError("xargs not found")
    items = workdir / "items.txt"
    items.write_text(f"{sc.item}\n" * sc.n, encoding="ascii")
    out_path = workdir / "xargs.out"
    fd_in = os.open(items, os.O_RDONLY)
    fd_out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    argv = [xargs, "-P", str(sc.p), "-n", "1", *sc.prefix]
    actions = [
        (os.POSIX_SPAWN_DUP2, fd_in, 0),
        (os.POSIX_SPAWN_DUP2, fd_out, 1),
        (os.POSIX_SPAWN_DUP2, fd_out, 2),
    ]
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawn(xargs, argv, os.environ, file_actions=actions)
        _, status, ru = os.wait4(pid, 0)
        wall = time.perf_counter() - t0
    finally:
        os.close(fd_in)
        os.close(fd_out)
    code = os.waitstatus_to_exitcode(status)
    failures = 0 if code == 0 else sc.n  # xargs only says "some failed" (123)
    if sc.expect_bytes and code == 0 and out_path.stat().st_size != sc.n * sc.expect_bytes:
        failures = sc.n
    return {
        "wall_s": wall,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "rss_mib": ru.ru_maxrss / 1024.0,
        "hwm_mib": None,
        "floor_rss_mib": None,
        "failures": failures,
    }


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_method(
    method: str, sc: Scenario, profile: str | None = None, tmp: str | None = None
) -> dict[str, Any]:
    """One method, one scenario; adds ``foreign_cores``: CPUs kept busy by anything else meanwhile."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-exec-{method}-", dir=tmp))
    busy0, ours0, t0 = busy_cpu_s(), _children_cpu_s(), time.perf_counter()
    try:
        run = (
            run_xargs if method == "xargs" else functools.partial(run_python_method, method, profile=profile)
        )
        res = run(sc, workdir)
        busy1, ours1, t1 = busy_cpu_s(), _children_cpu_s(), time.perf_counter()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    # Includes kernel threads working for us (writeback of the logs): an upper bound on the noise.
    if busy0 is not None and busy1 is not None and t1 > t0:
        res["foreign_cores"] = max(0.0, (busy1 - busy0) - (ours1 - ours0)) / (t1 - t0)
    else:
        res["foreign_cores"] = None
    return res


def run_group(
    methods: Sequence[str], sc: Scenario, tmp: str | None, threshold: float, retries: int, label: str
) -> tuple[dict[str, dict[str, Any]], int, int]:
    """All methods side by side; the whole group again (up to ``retries`` times) while another process
    kept more than ``threshold`` CPUs busy during any of them.

    Returns the least noisy attempt, the number of attempts and the failed tasks of the discarded ones.
    """
    best: dict[str, dict[str, Any]] | None = None
    best_noise = math.inf
    attempts = 0
    failed_all = 0
    for attempt in range(retries + 1):
        attempts = attempt + 1
        group: dict[str, dict[str, Any]] = {}
        for m in methods:
            res = run_method(m, sc, tmp=tmp)
            group[m] = res
            print(
                f"{label} {sc.key:<8} {m:<16} {res['wall_s']:8.3f} s  rss {res['rss_mib']:6.1f} MiB  "
                f"failures {res['failures']}  foreign load {cell(res['foreign_cores'], 2)} CPUs"
                + (f"  (attempt {attempts})" if attempt else ""),
                file=sys.stderr,
                flush=True,
            )
        failed_all += sum(r["failures"] for r in group.values())
        noise = max((r["foreign_cores"] or 0.0) for r in group.values())
        if noise < best_noise:
            best, best_noise = group, noise
        if noise <= threshold:
            break
    assert best is not None
    return best, attempts, failed_all - sum(r["failures"] for r in best.values())


def rotated(seq: tuple[str, ...], k: int) -> list[str]:
    k %= len(seq)
    return list(seq[k:] + seq[:k])


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")




def summarise(
    scs: list[Scenario],
    runs: dict[str, dict[str, list[dict[str, Any]]]],
    reps: int,
    quick: bool,
    methods: tuple[str, ...] = METHODS,
) -> tuple[str, dict[str, Any]]:
    def per_rep_ratio(key: str, num: str, den: str) -> list[float]:
        a, b = runs[key][num], runs[key][den]
        return [x["wall_s"] / y["wall_s"] for x, y in zip(a, b, strict=True) if y["wall_s"] > 0]

    text: list[str] = []
    medians: dict[str, dict[str, dict[str, float | None]]] = {}
    rows: list[list[str]] = []
    for sc in scs:
        medians[sc.key] = {}
        for m in methods:
            rs = runs[sc.key][m]
            wall = _med([r["wall_s"] for r in rs])
            rss = _med([r["rss_mib"] for r in rs])
            rss_max = max(r["rss_mib"] for r in rs)
            hwms = [r["hwm_mib"] for r in rs if r.get("hwm_mib") is not None]
            cpu_ms = _med([r["cpu_s"] * 1000.0 / sc.n for r in rs])
            floors = [r["floor_rss_mib"] for r in rs if r.get("floor_rss_mib") is not None]
            fails = sum(r["failures"] for r in rs)
            noise = [r["foreign_cores"] for r in rs if r.get("foreign_cores") is not None]
            over_xargs = [
                (x["wall_s"] - y["wall_s"]) * 1000.0 / sc.n
                for x, y in zip(rs, runs[sc.key]["xargs"], strict=True)
            ]
            medians[sc.key][m] = {
                "wall_s": round(wall, 4),
                "rss_mib": round(rss, 1),
                "rss_mib_max": round(rss_max, 1),
                "vm_hwm_mib": round(_med(hwms), 1) if hwms else None,
                "cpu_ms_per_task": round(cpu_ms, 3),
                "rss_after_imports_mib": round(_med(floors), 1) if floors else None,
                "ms_per_task_over_xargs": round(_med(over_xargs), 3),
                "failures": fails,
                "foreign_cpus_max": round(max(noise), 3) if noise else None,
            }
            rows.append(
                [
                    sc.key,
                    str(sc.n),
                    str(sc.p),
                    m,
                    cell(wall),
                    cell(_med(over_xargs), 3) if m != "xargs" else "0",
                    cell(cpu_ms, 3),
                    cell(_med(floors), 1) if floors else "-",
                    cell(rss, 1) + ("*" if m == "xargs" else ""),
                    cell(_med(hwms), 1) if hwms else "-",
                    str(fails),
                    f"{cell(_med(noise), 2)} / {cell(max(noise), 2)}" if noise else "-",
                ]
            )
    text.append(f"Medians over {reps} repetition(s){' (--quick)' if quick else ''}:\n")
    text.append(
        markdown_table(
            [
                "scenario",
                "N",
                "P",
                "method",
                "makespan s",
                "ms/task over xargs",
                "orchestrator CPU ms/task",
                "ru_maxrss after imports MiB",
                "peak ru_maxrss MiB",
                "peak VmHWM MiB",
                "failed tasks",
                "foreign load CPUs (median / max)",
            ],
            rows,
        )
    )
    text.append(
        "\n(*) xargs: wait4's ru_maxrss = max(RSS inherited from the spawning driver, xargs, its commands); "
        "not xargs' own.\n"
    )

    ratio_rows: list[list[str]] = []
    ratios: dict[str, dict[str, float]] = {}
    for sc in scs:
        ratios[sc.key] = {}
        pairs = [
            ("ours", "xargs"),
            ("ours", "threads_file"),
            ("ours", "threads_capture"),
            ("threads_file", "xargs"),
            ("threads_capture", "xargs"),
        ]
        if "asyncio_min" in methods:
            pairs += [("ours", "asyncio_min"), ("asyncio_min", "threads_file"), ("asyncio_min", "xargs")]
        for num, den in pairs:
            vals = per_rep_ratio(sc.key, num, den)
            ratios[sc.key][f"{num}/{den}"] = round(_med(vals), 4)
            ratio_rows.append([sc.key, f"{num} / {den}", cell(_med(vals)), " ".join(cell(v) for v in vals)])
        if sc.ideal_s:
            for m in methods:
                vals = [r["wall_s"] / sc.ideal_s for r in runs[sc.key][m]]
                waves = math.ceil(sc.n / sc.p)
                per_wave = _med([(r["wall_s"] - sc.ideal_s) * 1000.0 / waves for r in runs[sc.key][m]])
                ratios[sc.key][f"{m}/ideal"] = round(_med(vals), 4)
                ratios[sc.key][f"{m}_ms_per_wave_over_ideal"] = round(per_wave, 2)
                ratio_rows.append(
                    [
                        sc.key,
                        f"{m} / ideal ({sc.ideal_s:g} s; {per_wave:.1f} ms per wave of {sc.p} over ideal)",
                        cell(_med(vals)),
                        " ".join(cell(v) for v in vals),
                    ]
                )
    text.append(
        "\nRatios of makespans (median of the per-repetition ratios; then each repetition's ratio):\n"
    )
    text.append(markdown_table(["scenario", "ratio", "median", "per repetition"], ratio_rows))

    by_key = {sc.key: sc for sc in scs}

    def ratio_of(key: str, name: str) -> float | None:
        return ratios[key][name] if key in ratios else None

    out_rss = max(r["rss_mib"] for r in runs["output"]["ours"]) if "output" in runs else None
    goals = [
        ("ours / xargs, trivial", ratio_of("trivial", "ours/xargs"), GOAL_VS_XARGS_TRIVIAL, "trivial"),
        ("ours / xargs, sleep", ratio_of("sleep", "ours/xargs"), GOAL_VS_XARGS_SLEEP, "sleep"),
        (
            "ours / threads_file, trivial",
            ratio_of("trivial", "ours/threads_file"),
            GOAL_VS_THREADS_TRIVIAL,
            "trivial",
        ),
        ("ours peak RSS MiB, output (max over reps)", out_rss, GOAL_RSS_MIB, "output"),
    ]
    goal_rows = []
    goal_json: dict[str, dict[str, Any]] = {}
    for name, value, limit, key in goals:
        if value is None:
            continue
        met = value <= limit
        goal_rows.append(
            [name, by_key[key].describe(), cell(value), f"<= {limit:g}", "met" if met else "NOT MET"]
        )
        goal_json[name] = {"value": round(value, 4), "limit": limit, "met": met}
    text.append("\nGoals" + (" (--quick: smaller runs, indicative only)" if quick else "") + ":\n")
    text.append(markdown_table(["goal", "scenario", "measured", "goal", "status"], goal_rows))

    output = medians.get("output", {})
    summary = {
        "ratio_vs_xargs_trivial": ratio_of("trivial", "ours/xargs"),
        "ratio_vs_threads_trivial": ratio_of("trivial", "ours/threads_file"),
        "ratio_vs_xargs_sleep": ratio_of("sleep", "ours/xargs"),
        "ratio_vs_ideal_sleep": ratio_of("sleep", "ours/ideal"),
        "peak_rss_mib_output": round(out_rss, 1) if out_rss is not None else None,
        "goals": goal_json,
        "goals_met": all(g["met"] for g in goal_json.values()),
        "ratios": ratios,
        "medians": medians,
        "peak_vm_hwm_mib_output": output["ours"]["vm_hwm_mib"] if output else None,
        "baseline_rss_mib_output": {m: output[m]["rss_mib"] for m in methods if m != "ours"}
        if output
        else None,
        "baseline_vm_hwm_mib_output": (
            {m: output[m]["vm_hwm_mib"] for m in methods if m not in ("ours", "xargs")} if output else None
        ),
    }
    return "\n".join(text), summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, help="repetitions (default 5; 1 with --quick)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small smoke run: 200 trivial, 16 sleeps, 4 x 20 MiB; 1 repetition, no noise retries",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="only run `ours` on the trivial scenario once under cProfile and print the top functions",
    )
    parser.add_argument(
        "--extra",
        action="store_true",
        help="also run the diagnostic method asyncio_min (bare asyncio, same process handling as ours)",
    )
    parser.add_argument(
        "--tmp",
        metavar="DIR",
        help="directory for the per-run work directories and log files (default: the system temp dir)",
    )
    parser.add_argument(
        "--noise-threshold",
        type=float,
        default=0.25,
        help="foreign CPU load (CPUs) above which a repetition's scenario is run again (default 0.25)",
    )
    parser.add_argument(
        "--noise-retries",
        type=int,
        help="how often a noisy scenario group is run again; the least noisy attempt is kept "
        "(default 2; 0 with --quick)",
    )
    parser.add_argument(
        "--only",
        metavar="SCENARIOS",
        help="comma-separated subset of trivial,sleep,output (goals of skipped scenarios are not judged)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        worker_main(args.worker)
        return 0
    if args.reps is None:
        args.reps = 1 if args.quick else 5
    if args.noise_retries is None:
        args.noise_retries = 0 if args.quick else 2
    if args.reps < 1 or args.noise_retries < 0:
        parser.error("--reps must be >= 1 and --noise-retries >= 0")
    scs = scenarios(args.quick)
    if args.only:
        wanted = {w.strip() for w in args.only.split(",") if w.strip()}
        unknown = wanted - {sc.key for sc in scs}
        if unknown:
            parser.error(f"--only: unknown scenario(s) {sorted(unknown)}")
        scs = [sc for sc in scs if sc.key in wanted]

    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "profile.txt")
            res = run_method("ours", scs[0], profile=path, tmp=args.tmp)
            print(f"{scs[0].describe()}: {res['wall_s']:.3f} s under cProfile (slower than unprofiled)")
            print(Path(path).read_text(encoding="utf-8"))
        return 0

    methods = METHODS + EXTRA_METHODS if args.extra else METHODS
    started = time.perf_counter()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {sc.key: {m: [] for m in methods} for sc in scs}
    pidfd: set[bool] = set()
    attempts: list[int] = []
    discarded_failures = 0
    for rep in range(args.reps):
        for si, sc in enumerate(scs):
            order = rotated(methods, rep + si)
            label = f"rep {rep + 1}/{args.reps}"
            group, tries, failed = run_group(
                order, sc, args.tmp, args.noise_threshold, args.noise_retries, label
            )
            attempts.append(tries)
            discarded_failures += failed
            for m, res in group.items():
                runs[sc.key][m].append(res)
                if m == "ours":
                    pidfd.add(bool(res.get("pidfd")))
    elapsed = time.perf_counter() - started

    text, summary = summarise(scs, runs, args.reps, args.quick, methods)
    tmp_dir = args.tmp or tempfile.gettempdir()
    header = (
        f"executor_overhead: Python {platform.python_version()} ({sys.executable}), {os.cpu_count()} CPUs, "
        f"pidfd child watcher used by ours: {sorted(pidfd) == [True]}; logs under {tmp_dir} "
        f"({fs_type(tmp_dir)}); {args.reps} rep(s) in {elapsed:.0f} s"
    )
    print(header)
    for sc in scs:
        print(f"  {sc.key}: {sc.describe()}" + (f", ideal makespan {sc.ideal_s:g} s" if sc.ideal_s else ""))
    print()
    print(text)
    any_failed = discarded_failures > 0 or any(
        r["failures"] for per in runs.values() for rs in per.values() for r in rs
    )
    summary.update(
        {
            "bench": "executor_overhead",
            "quick": args.quick,
            "reps": args.reps,
            "python": platform.python_version(),
            "pidfd_watcher": sorted(pidfd) == [True],
            "cpus": os.cpu_count(),
            "scenarios": {
                sc.key: {"n": sc.n, "p": sc.p, "argv": sc.argv, "ideal_s": sc.ideal_s} for sc in scs
            },
            "tmp_dir": tmp_dir,
            "tmp_fs": fs_type(tmp_dir),
            "noise_threshold_cpus": args.noise_threshold,
            "groups_rerun_for_noise": sum(1 for a in attempts if a > 1),
            "groups_still_noisy": sum(
                1
                for per in runs.values()
                for i in range(args.reps)
                if max((rs[i]["foreign_cores"] or 0.0) for rs in per.values()) > args.noise_threshold
            ),
            "any_task_failed": any_failed,
            "failed_tasks_in_discarded_attempts": discarded_failures,
            "elapsed_s": round(elapsed, 1),
        }
    )
    print(json.dumps(summary, sort_keys=False))
    return 1 if any_failed else 0


if __name__ == "__main__":
    sys.exit(main())
