#!/usr/bin/env python3
"""Non-blocking test generation: submit, run the other workflow steps, collect - next to blocking.

With a generation that takes about G seconds and other workflow steps that take S seconds, one run measures
side by side (order rotated from one repetition to the next):

* ``blocking``: ``OpenHandsTestGenerator.generate_tests_sync(...)`` (submit + wait + verify), then the other
  steps - ideally G + S;
* ``nonblocking``: ``submit_test_generation_task(...)``, the other steps, then
  ``get_test_generation_results(...)`` (wait if still running + fetch + verify) - ideally max(G, S).

Reported: wall times, the ratio nonblocking / blocking (median of the per-repetition ratios), the ideal
ratio max(G, S) / (G + S) with G and S as measured in the same repetition's blocking run, the overhead of
the non-blocking run above max(G, S) in seconds, and the latency of ``submit_test_generation_task``
(p50, p95) over ``--submits`` submits, split into the server-side checkout
(``POST /api/bash/execute_bash_command``), the conversation ``POST /api/conversations`` and the rest (client
side: validation, event loop, HTTP client); plus the wall time of ``python -m runner submit`` as a process
(``--cli-submits``), which is what a workflow step pays.

Everything is real except the model: a real ``openhands-agent-server`` (the venv that
``scripts/agent-server-venv.sh`` makes, started through ``tests/openhands_support/agent_server.py``) runs the
agent, which really checks out the repository, writes the test file with its terminal tool and finishes; the
model is the scripted ``FakeLLM`` (``tests/openhands_support/fake_llm.py``), whose ``delay()`` step makes the
generation last G seconds: warm-up runs without delay measure the fixed cost of a generation (submit, agent
turns, polling, verification with pytest + coverage), and the model then waits G minus that before its first
answer. The other steps are a real subprocess, ``sleep S``, run by this script as a workflow step would run.
Collect verifies the generated tests itself (pytest under coverage in a fresh worktree): that part comes after
the other steps in the non-blocking flow and cannot overlap with them, so it is the main part of the overhead.

The last line printed is one JSON object (also written to ``--json PATH``). Exit status 0, 1 if a generation
failed (the measurements are then not valid), 3 if the agent-server is unavailable. Every process started
(the agent-server with its tmux server and shells, the fake LLM) is stopped at the end and the scratch
directory is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # tests.openhands_support lives in the repository, not in the package

from _common import busy_cpu_s, cell, markdown_table  # noqa: E402

from runner.openhands import OpenHandsTestGenerator  # noqa: E402
from runner.openhands.settings import OpenHandsSettings  # noqa: E402
from tests.openhands_support.agent_server import (  # noqa: E402
    AgentServer,
    AgentServerUnavailable,
    agent_server_python,
    marked_pids,
)
from tests.openhands_support.calc_project import FULL, make_calc_repo  # noqa: E402
from tests.openhands_support.fake_llm import FakeLLM, delay, finish, write_file  # noqa: E402

METHODS = ("blocking", "nonblocking")
MODULE = "calc.py"
SUBMIT_MATCH = "test_submit_latency_"


class TimingTransport(httpx.AsyncBaseTransport):
    """httpx transport that records ``(method, path, seconds to the response headers)`` per request.

    A fresh inner transport per client (the generator makes one client per call, on its own event loop).
    """

    def __init__(self, record: list[tuple[str, str, float]]) -> None:
        self.record = record
        self._inner: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._inner is None:
            self._inner = httpx.AsyncHTTPTransport()
        start = time.perf_counter()
        response = await self._inner.handle_async_request(request)
        self.record.append((request.method, request.url.path, time.perf_counter() - start))
        return response

    async def aclose(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            await inner.aclose()


class Bench:
    """The scratch repository, the fake LLM and the agent-server; the generations run against them."""

    def __init__(self, scratch: Path, python: str, poll_interval: float) -> None:
        self.scratch = scratch
        self.repo = scratch / "repo"
        make_calc_repo(self.repo)
        self.poll_interval = poll_interval
        self.llm = FakeLLM()
        self.server = AgentServer(python, scratch / "server")
        self.llm_delay = 0.0

    def start(self) -> None:
        self.llm.start()
        self.llm.add_scenario(SUBMIT_MATCH, [finish("nothing to do")])  # the submit-latency tasks
        self.server.start()

    def close(self) -> None:
        try:
            self.server.close()
        finally:
            self.llm.close()

    def generator(self, transport: httpx.AsyncBaseTransport | None = None) -> OpenHandsTestGenerator:
        settings = OpenHandsSettings(
            backend="agent-server",
            url=self.server.url,
            api_key=self.server.api_key,
            llm_model="openai/fake",
            llm_base_url=self.llm.base_url,
            llm_api_key="dummy",
            repo_url=str(self.repo),
            server_root=str(self.scratch / "checkouts"),
            max_iterations=8,
            llm_num_retries=1,
            llm_retry_max_wait=0.0,
        )
        return OpenHandsTestGenerator(settings, workspace=self.repo, transport=transport)

    def scripted_output(self, label: str) -> str:
        """A fresh output path with its own scenario: wait ``llm_delay``, write the tests, finish."""
        out = f"tests/test_{label}_{uuid.uuid4().hex[:8]}.py"
        steps = [delay(self.llm_delay), write_file(out, FULL), finish("Wrote the tests.")]
        self.llm.add_scenario(out, steps)
        return out


def other_steps(seconds: float) -> float:
    """The other workflow steps: a real subprocess taking ``seconds``; returns its wall time."""
    start = time.perf_counter()
    subprocess.run(["sleep", f"{seconds:g}"], check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


# -- the two flows ----------------------------------------------------------------------------------


def run_blocking(bench: Bench, other_s: float) -> dict[str, Any]:
    gen = bench.generator()
    out = bench.scripted_output("blocking")
    start = time.perf_counter()
    result = gen.generate_tests_sync(MODULE, out, timeout=600, poll_interval=bench.poll_interval)
    generation = time.perf_counter() - start
    other = other_steps(other_s)
    wall = time.perf_counter() - start
    return {"wall_s": wall, "generation_s": generation, "other_s": other, "result": result}


def run_nonblocking(bench: Bench, other_s: float) -> dict[str, Any]:
    gen = bench.generator()
    out = bench.scripted_output("nonblocking")
    start = time.perf_counter()
    task_id = gen.submit_test_generation_task_sync(MODULE, out)
    submit = time.perf_counter() - start
    other = other_steps(other_s)
    before_collect = time.perf_counter()
    result = gen.get_test_generation_results_sync(task_id, timeout=600, poll_interval=bench.poll_interval)
    end = time.perf_counter()
    return {
        "wall_s": end - start,
        "submit_s": submit,
        "other_s": other,
        "collect_s": end - before_collect,
        "result": result,
    }


RUNNERS: dict[str, Callable[[Bench, float], dict[str, Any]]] = {
    "blocking": run_blocking,
    "nonblocking": run_nonblocking,
}


def timed(method: str, bench: Bench, other_s: float) -> dict[str, Any]:
    """One flow plus the machine's load meanwhile (busy CPUs from /proc/stat, ours included)."""
    busy0, t0 = busy_cpu_s(), time.perf_counter()
    res = RUNNERS[method](bench, other_s)
    busy1, elapsed = busy_cpu_s(), time.perf_counter() - t0
    res["machine_load_cpus"] = (busy1 - busy0) / elapsed if busy0 is not None and busy1 is not None else None
    result = res.pop("result")
    res["ok"] = bool(result.get("success"))
    res["reason"] = result.get("reason")
    return res


def calibrate(bench: Bench, runs: int) -> list[dict[str, float]]:
    """Generations without model delay (the first one also warms the server up), in parts: submit; the
    agent (status looked at every 0.1 s until it ends); collect (fetch + verification)."""
    parts = []
    for i in range(runs):
        gen = bench.generator()
        out = bench.scripted_output("warmup")
        start = time.perf_counter()
        task_id = gen.submit_test_generation_task_sync(MODULE, out)
        submitted = time.perf_counter()
        while gen.get_task_status_sync(task_id)["status"] not in ("COMPLETED", "FAILED"):
            if time.perf_counter() - start > 120:
                raise RuntimeError(f"warm-up generation {i + 1} did not end within 120 s")
            time.sleep(0.1)
        ended = time.perf_counter()
        result = gen.get_test_generation_results_sync(task_id, timeout=60, poll_interval=bench.poll_interval)
        done = time.perf_counter()
        if not result.get("success"):
            raise RuntimeError(f"warm-up generation {i + 1} failed: {result.get('reason')}")
        parts.append(
            {
                "total_s": done - start,
                "submit_s": submitted - start,
                "agent_s": ended - submitted,
                "collect_s": done - ended,
            }
        )
        shown = ", ".join(f"{k} {v:.2f}" for k, v in parts[-1].items())
        log(f"warm-up {i + 1}/{runs} without model delay: {shown}")
    return parts


def submit_latencies(bench: Bench, n: int) -> list[dict[str, float]]:
    """``n`` submits, each on an otherwise idle server (the previous agent is waited for, untimed)."""
    record: list[tuple[str, str, float]] = []
    gen = bench.generator(TimingTransport(record))
    samples = []
    for i in range(n):
        record.clear()
        start = time.perf_counter()
        out = f"tests/{SUBMIT_MATCH}{i}_{uuid.uuid4().hex[:6]}.py"
        task_id = gen.submit_test_generation_task_sync(MODULE, out)
        total = time.perf_counter() - start
        checkout = sum(s for m, p, s in record if p.endswith("/api/bash/execute_bash_command"))
        post = sum(s for m, p, s in record if m == "POST" and p.endswith("/api/conversations"))
        samples.append(
            {"total_s": total, "checkout_s": checkout, "post_s": post, "client_s": total - checkout - post}
        )
        deadline = time.monotonic() + 120
        while gen.get_task_status_sync(task_id)["status"] not in ("COMPLETED", "FAILED"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"submit-latency task {i + 1} did not end within 120 s")
            time.sleep(0.1)
    return samples


def cli_submits(bench: Bench, n: int) -> list[float]:
    """Wall times of ``python -m runner submit`` as a workflow step runs it (interpreter start included)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENHANDS_", "GITHUB_"))}
    env.update(
        {
            "OPENHANDS_BACKEND": "agent-server",
            "OPENHANDS_API_URL": bench.server.url,
            "OPENHANDS_API_KEY": bench.server.api_key,
            "OPENHANDS_LLM_MODEL": "openai/fake",
            "OPENHANDS_LLM_BASE_URL": bench.llm.base_url,
            "OPENHANDS_LLM_API_KEY": "dummy",
            "OPENHANDS_LLM_NUM_RETRIES": "1",
            "OPENHANDS_LLM_RETRY_MAX_WAIT": "0",
            "OPENHANDS_MAX_ITERATIONS": "8",
            "OPENHANDS_REPO_URL": str(bench.repo),
            "OPENHANDS_SERVER_ROOT": str(bench.scratch / "checkouts"),
        }
    )
    gen = bench.generator()
    times = []
    for i in range(n):
        out = f"tests/{SUBMIT_MATCH}cli_{i}_{uuid.uuid4().hex[:6]}.py"
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "runner", "submit", "--module-path", MODULE, "--output-path", out],
            cwd=bench.repo,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise RuntimeError(f"`python -m runner submit` failed ({proc.returncode}): {proc.stderr[-1000:]}")
        task_id = proc.stdout.strip().splitlines()[-1]
        deadline = time.monotonic() + 120
        while gen.get_task_status_sync(task_id)["status"] not in ("COMPLETED", "FAILED"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"CLI submit task {i + 1} did not end within 120 s")
            time.sleep(0.1)
    return times


# -- report -----------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rotated(seq: tuple[str, ...], k: int) -> list[str]:
    k %= len(seq)
    return list(seq[k:] + seq[:k])


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); the value itself for one sample."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)




def summarise(
    runs: dict[str, list[dict[str, Any]]], submits: list[dict[str, float]], cli: list[float], reps: int
) -> tuple[str, dict[str, Any]]:
    blocking, nonblocking = runs["blocking"], runs["nonblocking"]
    g = [r["generation_s"] for r in blocking]
    s = [r["other_s"] for r in blocking]
    ratio = [n["wall_s"] / b["wall_s"] for b, n in zip(blocking, nonblocking, strict=True)]
    ideal = [max(gi, si) / (gi + si) for gi, si in zip(g, s, strict=True)]
    overhead = [n["wall_s"] - max(gi, si) for n, gi, si in zip(nonblocking, g, s, strict=True)]
    saved = [b["wall_s"] - n["wall_s"] for b, n in zip(blocking, nonblocking, strict=True)]

    def col(rs: list[dict[str, Any]], key: str) -> float | None:
        vals = [r[key] for r in rs if r.get(key) is not None]
        return _med(vals) if vals else None

    rows = []
    medians: dict[str, dict[str, float | None]] = {}
    for m in METHODS:
        rs = runs[m]
        loads = [r["machine_load_cpus"] for r in rs if r["machine_load_cpus"] is not None]
        medians[m] = {
            k: (round(v, 3) if v is not None else None)
            for k in ("wall_s", "generation_s", "submit_s", "other_s", "collect_s")
            for v in [col(rs, k)]
        }
        rows.append(
            [
                m,
                cell(col(rs, "wall_s")),
                cell(col(rs, "generation_s")),
                cell(col(rs, "submit_s")),
                cell(col(rs, "other_s")),
                cell(col(rs, "collect_s")),
                str(sum(not r["ok"] for r in rs)),
                f"{cell(_med(loads), 2)} / {cell(max(loads), 2)}" if loads else "-",
            ]
        )
    text = [f"Medians over {reps} repetition(s):\n"]
    text.append(
        markdown_table(
            [
                "method",
                "wall s",
                "generate_tests s",
                "submit s",
                "other steps s",
                "collect s",
                "failed",
                "machine load CPUs (median / max)",
            ],
            rows,
        )
    )
    per_rep = [
        ["nonblocking / blocking", cell(_med(ratio)), " ".join(cell(v) for v in ratio)],
        ["ideal max(G,S) / (G+S)", cell(_med(ideal)), " ".join(cell(v) for v in ideal)],
        ["overhead above max(G,S), s", cell(_med(overhead)), " ".join(cell(v) for v in overhead)],
        ["saved (blocking - nonblocking), s", cell(_med(saved)), " ".join(cell(v) for v in saved)],
    ]
    text.append(
        "\nRatio (median of the per-repetition ratios; G and S as measured in the same repetition's blocking "
        "run):\n"
    )
    text.append(markdown_table(["", "median", "per repetition"], per_rep))

    sub_rows = []
    latency: dict[str, dict[str, float]] = {}
    for key, name in (
        ("total_s", "submit_test_generation_task (total)"),
        ("checkout_s", "  server-side checkout (POST /api/bash/execute_bash_command)"),
        ("post_s", "  POST /api/conversations"),
        ("client_s", "  rest (client: validation, event loop, HTTP client)"),
    ):
        vals = [x[key] for x in submits]
        latency[key] = {
            "p50": round(percentile(vals, 50), 4),
            "p95": round(percentile(vals, 95), 4),
            "min": round(min(vals), 4) if vals else float("nan"),
            "max": round(max(vals), 4) if vals else float("nan"),
        }
        sub_rows.append([name, *(cell(latency[key][k] * 1000.0, 1) for k in ("p50", "p95", "min", "max"))])
    if cli:
        latency["cli_process_s"] = {
            "p50": round(percentile(cli, 50), 4),
            "p95": round(percentile(cli, 95), 4),
            "min": round(min(cli), 4),
            "max": round(max(cli), 4),
            "n": len(cli),
        }
        sub_rows.append(
            [
                f"`python -m runner submit` process ({len(cli)} runs)",
                *(cell(latency["cli_process_s"][k] * 1000.0, 1) for k in ("p50", "p95", "min", "max")),
            ]
        )
    text.append(f"\nSubmit latency over {len(submits)} submits (ms; each on an otherwise idle server):\n")
    text.append(markdown_table(["part", "p50", "p95", "min", "max"], sub_rows))
    summary = {
        "ratio_nonblocking_over_blocking": round(_med(ratio), 4),
        "ideal_ratio": round(_med(ideal), 4),
        "overhead_above_max_s": round(_med(overhead), 3),
        "saved_s": round(_med(saved), 3),
        "generation_s_measured": round(_med(g), 3),
        "other_s_measured": round(_med(s), 3),
        "submit_latency_p50_s": latency["total_s"]["p50"],
        "submit_latency_p95_s": latency["total_s"]["p95"],
        "submit_latency": latency,
        "per_repetition": {
            "ratio": [round(v, 4) for v in ratio],
            "ideal": [round(v, 4) for v in ideal],
            "overhead_s": [round(v, 3) for v in overhead],
        },
        "medians": medians,
        "runs": {
            m: [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rs]
            for m, rs in runs.items()
        },
    }
    return "\n".join(text), summary


# -- the design's component scenario, scaled 1/10 ----------------------------------------------------
#
# The design: one component of five modules, 60 s of generation each, then testing, refactoring and
# staging (30 s each): 390 s blocking against 92 s non-blocking. Scaled 1/10: G = 6 s per module, three
# stages of 3 s. Blocking = ``generate_tests`` per module in turn, then the stages; non-blocking = ONE
# submit of the five modules (one batch task ID), the stages, ONE collect (verifies the five at once).

COMPONENT_STEMS = ("calc", "mod_a", "mod_b", "mod_c", "mod_d")


def _module_source(stem: str) -> str:
    return f"def {stem}_abs(x):\n    if x < 0:\n        return -x\n    return x\n"


def _module_tests(stem: str) -> str:
    if stem == "calc":
        return FULL
    return (
        f"from {stem} import {stem}_abs\n\n\ndef test_negative():\n    assert {stem}_abs(-2) == 2\n\n\n"
        f"def test_positive():\n    assert {stem}_abs(3) == 3\n"
    )


def add_component_modules(repo: Path) -> list[str]:
    for stem in COMPONENT_STEMS[1:]:
        (repo / f"{stem}.py").write_text(_module_source(stem))
    subprocess.run(["git", "add", "."], cwd=repo, check=True, capture_output=True)
    subprocess.run(["git", "commit", "-q", "-m", "component"], cwd=repo, check=True, capture_output=True)
    return [f"{stem}.py" for stem in COMPONENT_STEMS]


def component_template(bench: Bench, label: str, n: int) -> str:
    """A ``{stem}`` output template with one scenario per module: wait, write the tests, finish."""
    template = f"tests/{label}_{uuid.uuid4().hex[:8]}/test_{{stem}}.py"
    for stem in COMPONENT_STEMS[:n]:
        out = template.replace("{stem}", stem)
        steps = [delay(bench.llm_delay), write_file(out, _module_tests(stem)), finish("ok")]
        bench.llm.add_scenario(out, steps)
    return template


def stages(seconds: float, count: int = 3) -> float:
    """Testing, refactoring, staging: ``count`` real subprocesses of ``seconds`` each."""
    return sum(other_steps(seconds) for _ in range(count))


def component_blocking(bench: Bench, modules: list[str], stage_s: float) -> dict[str, Any]:
    gen = bench.generator()
    template = component_template(bench, "blocking", len(modules))
    start = time.perf_counter()
    results = []
    for m in modules:
        out = template.replace("{stem}", m[:-3])
        results.append(gen.generate_tests_sync(m, out, timeout=600, poll_interval=bench.poll_interval))
    generation = time.perf_counter() - start
    other = stages(stage_s)
    return {
        "wall_s": time.perf_counter() - start, "generation_s": generation, "other_s": other,
        "ok": all(r.get("success") for r in results),
        "reason": "; ".join(str(r.get("reason")) for r in results if not r.get("success")) or None,
        "tests_generated": sum(r["funnel"].get("generated", 0) for r in results if r.get("funnel")),
    }  # fmt: skip


def component_nonblocking(bench: Bench, modules: list[str], stage_s: float) -> dict[str, Any]:
    gen = bench.generator()
    template = component_template(bench, "nonblocking", len(modules))
    start = time.perf_counter()
    task_id = gen.submit_test_generation_task_sync(modules, template)
    submit = time.perf_counter() - start
    other = stages(stage_s)
    # How far the agents were when the stages ended (one look; says whether collect waited for them).
    agents = [m["agent_status"] for m in gen.get_task_status_sync(task_id)["modules"]]
    before_collect = time.perf_counter()
    result = gen.get_test_generation_results_sync(task_id, timeout=600, poll_interval=bench.poll_interval)
    end = time.perf_counter()
    return {
        "wall_s": end - start, "submit_s": submit, "other_s": other, "collect_s": end - before_collect,
        "ok": bool(result.get("success")), "reason": result.get("reason"),
        "tests_generated": result["funnel"].get("generated", 0),
        "agent_status_after_stages": agents,
        "module_done_s_since_submit": [m["duration_s"] for m in result["modules"]],
    }  # fmt: skip


def batch_submit_latency(bench: Bench, modules: list[str], n: int) -> list[float]:
    """Wall time of one submit of ``modules`` (a batch when several), each on an otherwise idle server."""
    gen = bench.generator()
    times = []
    for _ in range(n):
        template = f"tests/{SUBMIT_MATCH}{uuid.uuid4().hex[:6]}_{{stem}}.py"
        start = time.perf_counter()
        task_id = gen.submit_test_generation_task_sync(modules if len(modules) > 1 else modules[0], template)
        times.append(time.perf_counter() - start)
        deadline = time.monotonic() + 120
        while gen.get_task_status_sync(task_id)["status"] not in ("COMPLETED", "FAILED"):
            if time.monotonic() > deadline:
                raise RuntimeError("submit-latency batch did not end within 120 s")
            time.sleep(0.1)
    return times


def main_component(args: argparse.Namespace, python: str) -> int:
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="bench-component-"))
    bench = Bench(scratch, python, args.poll_interval)
    modules = add_component_modules(bench.repo)
    marker = bench.server.marker
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
    flows = {"blocking": component_blocking, "nonblocking": component_nonblocking}
    try:
        with sigterm_as_exit():
            bench.start()
            warm = calibrate(bench, 1)[-1]
            # A generation = the agent's part: the model waits G minus what the agent needs anyway.
            bench.llm_delay = max(0.0, args.generation_seconds - warm["agent_s"])
            verify_per_test = warm["collect_s"] / 2  # the warm-up file (FULL) has two tests
            log(f"model delay per module: {bench.llm_delay:.2f} s; verification {warm['collect_s']:.2f} s "
                f"for 2 tests")  # fmt: skip
            for rep in range(args.reps):
                for m in rotated(METHODS, rep):
                    busy0, t0 = busy_cpu_s(), time.perf_counter()
                    res = flows[m](bench, modules, args.other_seconds)
                    busy1, elapsed = busy_cpu_s(), time.perf_counter() - t0
                    res["machine_load_cpus"] = (
                        (busy1 - busy0) / elapsed if busy0 is not None and busy1 is not None else None
                    )
                    runs[m].append(res)
                    log(f"rep {rep + 1}/{args.reps} {m:<12} {res['wall_s']:7.2f} s  ok {res['ok']}"
                        + (f"  ({res['reason']})" if not res["ok"] else ""))  # fmt: skip
            one = batch_submit_latency(bench, modules[:1], args.submits)
            five = batch_submit_latency(bench, modules, args.submits)
    finally:
        bench.close()
        leftover = marked_pids(marker)
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    ratios = [n["wall_s"] / b["wall_s"] for b, n in zip(runs["blocking"], runs["nonblocking"], strict=True)]
    rows = []
    for m in METHODS:
        rs = runs[m]
        rows.append([
            m, cell(_med([r["wall_s"] for r in rs])),
            cell(_med([r["generation_s"] for r in rs])) if m == "blocking" else "-",
            cell(_med([r["submit_s"] for r in rs])) if m == "nonblocking" else "-",
            cell(_med([r["other_s"] for r in rs])),
            cell(_med([r["collect_s"] for r in rs])) if m == "nonblocking" else "-",
            str(sum(not r["ok"] for r in rs)),
            cell(_med([r["machine_load_cpus"] for r in rs if r["machine_load_cpus"] is not None]), 2),
        ])  # fmt: skip
    print(
        f"nonblocking --component: {len(modules)} modules, G {args.generation_seconds:g} s each, 3 stages of "
        f"{args.other_seconds:g} s; Python {platform.python_version()}, {os.cpu_count()} CPUs; real "
        f"openhands-agent-server, scripted FakeLLM; {args.reps} rep(s) "
        f"in {time.perf_counter() - started:.0f} s"
    )
    print()
    print(markdown_table(
        ["method", "wall s", "generate_tests x5 s", "submit s", "stages s", "collect s", "failed",
         "machine load CPUs"], rows,
    ))  # fmt: skip
    print()
    print(markdown_table(
        ["", "value"],
        [["nonblocking / blocking (median)", cell(_med(ratios))],
         ["goal", "<= 0.30"],
         ["submit latency, 1 module, p50 ms", cell(percentile(one, 50) * 1000, 1)],
         ["submit latency, 5 modules (one batch), p50 ms", cell(percentile(five, 50) * 1000, 1)],
         ["verification per generated test, s (warm-up: 2 tests, 3 re-runs)", cell(verify_per_test)]],
    ))  # fmt: skip
    any_failed = any(not r["ok"] for rs in runs.values() for r in rs)
    summary = {
        "bench": "nonblocking-component",
        "modules": len(modules),
        "generation_seconds": args.generation_seconds,
        "stage_seconds": args.other_seconds,
        "reps": args.reps,
        "ratio_nonblocking_over_blocking": round(_med(ratios), 4),
        "per_repetition_ratio": [round(r, 4) for r in ratios],
        "submit_latency_1_module_p50_s": round(percentile(one, 50), 4),
        "submit_latency_5_modules_p50_s": round(percentile(five, 50), 4),
        "verification_s_per_test": round(verify_per_test, 3),
        "warmup": {k: round(v, 3) for k, v in warm.items()},
        "runs": {m: [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rs]
                 for m, rs in runs.items()},
        "any_failed": any_failed,
        "server_marker": marker,
        "leftover_server_processes": len(leftover),
    }  # fmt: skip
    line = json.dumps(summary)
    if args.json:
        Path(args.json).write_text(line + "\n", encoding="utf-8")
    print(line)
    return 1 if any_failed or leftover else 0


# -- main -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit, so the servers are stopped on the way out."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generation-seconds", type=float, help="G: how long a generation takes (default 8)")
    parser.add_argument("--other-seconds", type=float, help="S: how long the other steps take (default 8)")
    parser.add_argument("--reps", type=int, help="repetitions of both flows (default 3; 1 with --quick)")
    parser.add_argument("--submits", type=int, help="submits timed (default 20; 2 with --quick)")
    parser.add_argument(
        "--cli-submits", type=int, help="`python -m runner submit` processes timed (default 5; 1 --quick)"
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.5,
        help="collect's status polling interval, seconds (default 0.5)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: G = S = 2 s, 1 repetition, 2 + 1 submits, 1 warm-up"
    )
    parser.add_argument(
        "--component", action="store_true",
        help="the design's scenario scaled 1/10: 5 modules, G 6 s each, 3 stages of 3 s, one batch submit",
    )  # fmt: skip
    parser.add_argument("--json", metavar="PATH", help="also write the JSON summary to PATH")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (server log etc.)")
    args = parser.parse_args(argv)
    names = ("generation_seconds", "other_seconds", "reps", "submits", "cli_submits")
    defaults = (2.0, 2.0, 1, 2, 1) if args.quick else (8.0, 8.0, 3, 20, 5)
    if args.component:
        defaults = (2.0, 1.0, 1, 1, 0) if args.quick else (6.0, 3.0, 1, 3, 0)
    for name, default in zip(names, defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    seconds = (args.generation_seconds, args.other_seconds)
    if min(*seconds, args.cli_submits) < 0 or min(args.reps, args.submits) < 1:
        parser.error("seconds and --cli-submits must be >= 0, --reps and --submits >= 1")
    try:
        python = agent_server_python()
    except AgentServerUnavailable as exc:
        log(f"nonblocking: openhands-agent-server unavailable: {exc}")
        return 3
    if args.component:
        return main_component(args, python)

    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="bench-nonblocking-"))
    bench = Bench(scratch, python, args.poll_interval)
    marker = bench.server.marker
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
    try:
        with sigterm_as_exit():
            t0 = time.perf_counter()
            bench.start()
            server_start = time.perf_counter() - t0
            log(f"agent-server ready in {server_start:.1f} s at {bench.server.url}")
            warmups = calibrate(bench, 1 if args.quick else 2)
            fixed = warmups[-1]
            bench.llm_delay = max(0.0, args.generation_seconds - fixed["total_s"])
            log(f"model delay per generation: {bench.llm_delay:.2f} s")
            for rep in range(args.reps):
                for m in rotated(METHODS, rep):
                    res = timed(m, bench, args.other_seconds)
                    runs[m].append(res)
                    log(
                        f"rep {rep + 1}/{args.reps} {m:<12} {res['wall_s']:7.2f} s  ok {res['ok']}"
                        + (f"  ({res['reason']})" if not res["ok"] else "")
                    )
            submits = submit_latencies(bench, args.submits)
            cli = cli_submits(bench, args.cli_submits)
            log(f"{len(submits)} + {len(cli)} submits timed")
    finally:
        bench.close()
        leftover = marked_pids(marker)
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.perf_counter() - started

    text, summary = summarise(runs, submits, cli, args.reps)
    print(
        f"nonblocking: Python {platform.python_version()} ({sys.executable}), {os.cpu_count()} CPUs; "
        f"real openhands-agent-server ({python}, start-up {server_start:.1f} s), scripted FakeLLM; "
        f"{args.reps} rep(s) in {elapsed:.0f} s"
    )
    print(
        f"  G (generation) {args.generation_seconds:g} s = model delay {bench.llm_delay:.2f} s + fixed cost "
        f"{fixed['total_s']:.2f} s (last warm-up without delay: submit {fixed['submit_s']:.2f} + agent "
        f"{fixed['agent_s']:.2f} + collect/verify {fixed['collect_s']:.2f} s)"
    )
    print(f"  S (other steps): `sleep {args.other_seconds:g}`; collect polls every {args.poll_interval:g} s")
    print()
    print(text)
    any_failed = any(not r["ok"] for rs in runs.values() for r in rs)
    summary.update(
        {
            "bench": "nonblocking",
            "quick": args.quick,
            "reps": args.reps,
            "submits": args.submits,
            "cli_submits": args.cli_submits,
            "generation_seconds": args.generation_seconds,
            "other_seconds": args.other_seconds,
            "llm_delay_s": round(bench.llm_delay, 3),
            "fixed_generation_cost_s": round(fixed["total_s"], 3),
            "warmups": [{k: round(v, 3) for k, v in w.items()} for w in warmups],
            "poll_interval_s": args.poll_interval,
            "agent_server_start_s": round(server_start, 2),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "any_failed": any_failed,
            "server_marker": marker,
            "leftover_server_processes": len(leftover),
            "elapsed_s": round(elapsed, 1),
        }
    )
    line = json.dumps(summary, sort_keys=False)
    if args.json:
        Path(args.json).write_text(line + "\n", encoding="utf-8")
    print(line)
    return 1 if any_failed or leftover else 0


if __name__ == "__main__":
    sys.exit(main())
