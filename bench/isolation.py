"""What an environment per hypothesis costs: isolated (``isolation: venv``) vs shared (``isolation: none``).

16 hypotheses (16 branches of a small src-layout package whose test checks that it imported its own
worktree's code) at max-parallel 4, each ``pip install -e .`` then ``pytest -q``, in both modes in one
run (order rotated per repetition), plus ``uv pip install -e .`` in layers when ``uv`` is on PATH.
Reports the makespan ratio isolated / shared, how many hypotheses got a wrong verdict in each mode, the
cost of creating and removing one layer (measured directly on runner.engine.environments), and what a
non-Python project pays (16 × ``true``, isolated vs shared).

Run: ``python bench/isolation.py [--reps N] [--count 16] [--max-parallel 4] [--quick]``. Markdown tables,
then one JSON object as the last line. Timings on a shared machine are noisy: compare ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cell, markdown_table

from runner import RunnerConfig, RunOptions, run_config
from runner.config import Status
from runner.engine.environments import EnvironmentPool

PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "demo"
version = "0.1"
"""

TEST = """\
import os, pathlib, demo


def test_own_code():
    here = os.path.realpath(demo.__file__)
    root = os.path.realpath(os.environ["WORKTREE_RUNNER_WORKTREE"])
    assert here.startswith(root + os.sep), here
    assert demo.VALUE == pathlib.Path(root, "expected.txt").read_text().strip()
"""


def git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.invalid",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.invalid"}  # fmt: skip
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def make_repo(root: Path, count: int) -> Path:
    repo = root / "repo"
    (repo / "src" / "demo").mkdir(parents=True)
    (repo / "tests").mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "pyproject.toml").write_text(PYPROJECT)
    (repo / "tests" / "test_demo.py").write_text(TEST)
    (repo / "src" / "demo" / "__init__.py").write_text('VALUE = "main"\n')
    (repo / "expected.txt").write_text("main\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    for i in range(count):
        git(repo, "checkout", "-q", "-b", f"h{i:02d}", "main")
        (repo / "src" / "demo" / "__init__.py").write_text(f'VALUE = "h{i:02d}"\n')
        (repo / "expected.txt").write_text(f"h{i:02d}\n")
        git(repo, "commit", "-q", "-am", f"h{i:02d}")
    git(repo, "checkout", "-q", "main")
    return repo


def make_job_env(root: Path) -> Path:
    """The job's environment both modes start from: a virtualenv over this interpreter (so it sees its
    pytest, pip and setuptools) with its own ``pip`` and ``pytest`` scripts, first on PATH. The shared
    mode installs into it, never into the machine's interpreter."""
    env = root / "job-env"
    venv = [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(env)]
    subprocess.run(venv, check=True)
    entries = {"pip": "pip._internal.cli.main import main", "pytest": "pytest import console_main as main"}
    for name, entry in entries.items():
        script = env / "bin" / name
        script.write_text(f"#!{env / 'bin' / 'python'}\nimport sys\nfrom {entry}\nsys.exit(main())\n")
        script.chmod(0o755)
    os.environ["PATH"] = f"{env / 'bin'}{os.pathsep}{os.environ['PATH']}"
    os.environ.pop("VIRTUAL_ENV", None)
    return env


def run_mode(repo: Path, logs: Path, count: int, parallel: int, isolation: str, setup: str | None,
             command: str) -> dict[str, float | int]:  # fmt: skip
    hypotheses = [{"name": f"h{i:02d}", "ref": f"h{i:02d}"} for i in range(count)]
    config = RunnerConfig.model_validate({
        "setup": setup, "command": command, "max-parallel": parallel, "timeout": 900,
        "isolation": isolation, "hypotheses": hypotheses,
    })  # fmt: skip
    shutil.rmtree(logs, ignore_errors=True)
    started = time.monotonic()
    report = run_config(config, RunOptions(repo=repo, logs_dir=logs))
    wall = time.monotonic() - started
    passed = sum(r.status is Status.PASSED for r in report.results)
    errors = sum(r.status is Status.ERROR for r in report.results)
    for r in report.results:
        if r.status is not Status.PASSED:
            tail = r.output_tail[-300:]
            print(f"bench: {isolation} {r.name}: {r.status} {r.error}: {tail!r}", file=sys.stderr)
    wrong = count - passed - errors
    return {"makespan_s": wall, "passed": passed, "wrong_or_failed": wrong, "errors": errors}


async def layer_costs(count: int) -> dict[str, float]:
    """Template once, then ``count`` layers created and removed one after another (wall, seconds)."""
    pool = EnvironmentPool("venv")
    env = dict(os.environ)
    try:
        started = time.perf_counter()
        async with pool.environment(0, env):
            pass
        first = time.perf_counter() - started  # probe + template + one layer
        create: list[float] = []
        remove: list[float] = []
        for i in range(1, count + 1):
            t0 = time.perf_counter()
            context = pool.environment(i, env)
            await context.__aenter__()
            t1 = time.perf_counter()
            await context.__aexit__(None, None, None)
            create.append(t1 - t0)
            remove.append(time.perf_counter() - t1)
    finally:
        await pool.close()
    return {
        "template_s": first,
        "create_ms_median": statistics.median(create) * 1000,
        "remove_ms_median": statistics.median(remove) * 1000,
        "create_remove_ms_max": max(c + r for c, r in zip(create, remove, strict=True)) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--max-parallel", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="2 hypotheses at 2-way, no uv (a smoke run)")
    args = parser.parse_args()
    count, parallel, reps = args.count, args.max_parallel, args.reps
    pip_setup = "pip install -q -e ."
    if args.quick:
        count, parallel, reps = 2, 2, 1
    uv = shutil.which("uv") if not args.quick else None
    modes: dict[str, tuple[str, str | None, str]] = {
        "shared, pip": ("none", pip_setup, "pytest -q -p no:cacheprovider"),
        "isolated, pip": ("venv", pip_setup, "pytest -q -p no:cacheprovider"),
    }
    if uv:
        modes["isolated, uv pip"] = ("venv", "uv pip install -q -e .", "pytest -q -p no:cacheprovider")
    trivial = {"shared, true": ("none", None, "true"), "isolated, true": ("venv", None, "true")}
    results: dict[str, list[dict[str, float | int]]] = {name: [] for name in [*modes, *trivial]}
    with tempfile.TemporaryDirectory(prefix="wr-bench-isolation-") as scratch:
        root = Path(scratch)
        repo = make_repo(root, count)
        make_job_env(root)
        logs = root / "logs"
        print(f"bench: {count} hypotheses at {parallel}-way, {reps} repetition(s)", file=sys.stderr)
        for rep in range(reps):
            for group in (modes, trivial):
                names = list(group)
                names = names[rep % len(names):] + names[: rep % len(names)]  # rotate the order
                for name in names:
                    isolation, setup, command = group[name]
                    outcome = run_mode(repo, logs, count, parallel, isolation, setup, command)
                    print(f"bench: rep {rep + 1} {name}: {outcome}", file=sys.stderr)
                    results[name].append(outcome)
        layers = asyncio.run(layer_costs(count))

    def med(name: str, key: str) -> float:
        return float(statistics.median(float(r[key]) for r in results[name]))

    def ratio(a: str, b: str) -> float:
        pairs = zip(results[a], results[b], strict=True)
        return float(statistics.median(float(x["makespan_s"]) / float(y["makespan_s"]) for x, y in pairs))

    rows = [
        [name, cell(med(name, "makespan_s"), 2), str(int(med(name, "passed"))),
         str(int(med(name, "wrong_or_failed"))), str(int(med(name, "errors")))]
        for name in results
    ]  # fmt: skip
    print(f"## {count} hypotheses at max-parallel {parallel} (median of {reps})\n")
    print(markdown_table(["mode", "makespan s", "passed", "wrong/failed", "error"], rows))
    trivial_gap_s = med("isolated, true", "makespan_s") - med("shared, true", "makespan_s")
    trivial_ms = trivial_gap_s * 1000 * parallel / count
    after_template_ms = (trivial_gap_s - layers["template_s"]) * 1000 * parallel / count
    data: dict[str, object] = {
        "count": count,
        "max_parallel": parallel,
        "reps": reps,
        "ratio_isolated_over_shared_pip": ratio("isolated, pip", "shared, pip"),
        "ratio_isolated_over_shared_trivial": ratio("isolated, true", "shared, true"),
        # Makespan difference spread over the hypotheses (each slot runs count / parallel of them);
        # includes the once-per-run probe and template.
        "trivial_overhead_ms_per_hypothesis": trivial_ms,
        # The same without the once-per-run probe and template (measured separately, below).
        "trivial_overhead_ms_per_hypothesis_after_template": after_template_ms,
        "isolated_wrong": int(med("isolated, pip", "wrong_or_failed")) + int(med("isolated, pip", "errors")),
        "shared_wrong": int(med("shared, pip", "wrong_or_failed")) + int(med("shared, pip", "errors")),
        "uv": uv,
        "ratio_isolated_uv_over_shared_pip": ratio("isolated, uv pip", "shared, pip") if uv else None,
        **layers,
    }
    print("\n## Ratios and layer costs\n")
    uv_ratio = data["ratio_isolated_uv_over_shared_pip"]
    print(markdown_table(["figure", "value"], [
        ["isolated / shared makespan, pip", cell(ratio("isolated, pip", "shared, pip"))],
        ["isolated uv / shared pip makespan", cell(uv_ratio if isinstance(uv_ratio, float) else None)],
        ["isolated / shared makespan, `true` (non-Python)", cell(ratio("isolated, true", "shared, true"))],
        ["non-Python overhead per hypothesis, ms (incl. the template)", cell(trivial_ms, 1)],
        ["the same without the once-per-run template, ms", cell(after_template_ms, 1)],
        ["layer create, ms (median)", cell(layers["create_ms_median"], 1)],
        ["layer remove, ms (median)", cell(layers["remove_ms_median"], 1)],
        ["layer create + remove, ms (max)", cell(layers["create_remove_ms_max"], 1)],
        ["probe + template + first layer, s (once per run)", cell(layers["template_s"], 3)],
    ]))  # fmt: skip
    print(json.dumps(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
