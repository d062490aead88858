"""Start-up cost of the host variant: host/install.sh making the runner's private virtualenv.

Per repetition, back to back, each in a fresh RUNNER_TEMP:
* ``cold, empty pip cache``: a hosted runner's first use in a job (fresh VM, nothing cached);
* ``cold, warm pip cache``: the same with pip's cache filled by the run before (a self-hosted runner, or
  a workflow that caches ~/.cache/pip);
* ``reused``: a second use of the action in the same job (same RUNNER_TEMP).
Baseline, with ``--docker``: ``docker build --no-cache`` of the Docker variant's image, what GitHub does
in "Set up job" for every job that uses the Docker variant (hosted runners have no layer cache).

The package index is the network one: cold figures depend on it and on the machine's load. Prints a
Markdown table and, last, one JSON object.

    python bench/host_install.py [--reps 3] [--python /path/to/python3.12] [--docker]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cell, markdown_table

REPO_ROOT = Path(__file__).resolve().parents[1]
INSTALL_SH = REPO_ROOT / "host" / "install.sh"


def timed_install(runner_temp: Path, pip_cache: Path, python: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PYTHON"))}
    env.update(RUNNER_TEMP=str(runner_temp), PIP_CACHE_DIR=str(pip_cache))
    env.pop("PIP_NO_CACHE_DIR", None)
    if python:
        env["WORKTREE_RUNNER_PYTHON"] = python
    started = time.monotonic()
    proc = subprocess.run(["bash", str(INSTALL_SH)], env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"install.sh failed ({proc.returncode}):\n{proc.stdout}{proc.stderr[-3000:]}")
    return seconds


def timed_docker_build(scratch: Path) -> float:
    tag = f"worktree-runner-bench:{os.getpid()}"
    started = time.monotonic()
    proc = subprocess.run(
        ["docker", "build", "--no-cache", "-q", "-t", tag, str(REPO_ROOT)], capture_output=True, text=True
    )
    seconds = time.monotonic() - started
    subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"docker build failed:\n{proc.stderr[-3000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--python", help="WORKTREE_RUNNER_PYTHON for install.sh (default: its own choice)")
    parser.add_argument("--docker", action="store_true", help="also time docker build --no-cache")
    args = parser.parse_args()

    methods = ["cold, empty pip cache", "cold, warm pip cache", "reused"]
    if args.docker:
        methods.append("docker build --no-cache (baseline)")
    times: dict[str, list[float]] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory(prefix="wr-bench-host-") as scratch_name:
        scratch = Path(scratch_name)
        for rep in range(args.reps):
            print(f"repetition {rep + 1}/{args.reps}", file=sys.stderr)
            cache = scratch / f"pip-cache-{rep}"
            first, second = scratch / f"rt-{rep}-a", scratch / f"rt-{rep}-b"
            first.mkdir()
            second.mkdir()
            times["cold, empty pip cache"].append(timed_install(first, cache, args.python))
            times["cold, warm pip cache"].append(timed_install(second, cache, args.python))
            times["reused"].append(timed_install(second, cache, args.python))
            if args.docker:
                times["docker build --no-cache (baseline)"].append(timed_docker_build(scratch))
            shutil.rmtree(first)
            shutil.rmtree(second)
            shutil.rmtree(cache, ignore_errors=True)

    rows = [[m, cell(statistics.median(v)), cell(min(v)), cell(max(v))] for m, v in times.items()]
    print(f"host/install.sh, {args.reps} repetition(s), seconds (median, min, max)\n")
    print(markdown_table(["method", "median s", "min s", "max s"], rows))
    summary = {
        "reps": args.reps,
        **{
            m.split(" (")[0].replace(", ", "_").replace(" ", "_") + "_s": statistics.median(v)
            for m, v in times.items()
        },
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
