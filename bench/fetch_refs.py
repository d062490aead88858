#!/usr/bin/env python3
"""Worktrees of 16 hypotheses on 16 different branches: a shallow checkout that fetches vs a full clone.

The repository is the one ``worktrees.py`` builds (a real PyPI sdist, committed, plus generated commits;
cached), with ``--count`` branches ``hyp/NN`` added, each one commit on top of ``HEAD~NN``, pushed to a
bare "origin". Per repetition, both methods in rotated order:

* ``shallow``: ``git clone --depth 1 --single-branch --no-tags file://origin`` (what actions/checkout's
  default and the README's clone advice give), then the run's engine: ``WorktreeManager.open()``,
  ``fetch_missing`` (one ``ls-remote`` and one ``fetch`` for the 16 branches), ``create()`` for every
  hypothesis at once, then removal and ``close()``;
* ``full``: ``git clone --no-tags file://origin`` (every branch as ``origin/*``, full history, i.e.
  ``fetch-depth: 0``), then the same engine steps, where nothing needs fetching.

Timed separately: clone, fetch (the ``fetch_missing`` call), create (all worktrees), remove; each worktree is
checked (untimed) to be at its branch's commit and clean. Reported: medians and the median per-repetition
ratio of shallow/full totals. Over ``file://`` the transfer costs no network, so this measures git's own
work; on github.com the shallow clone also saves transfer of the whole history. The last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import markdown_table  # sibling module of this script
from worktrees import DEFAULT_SDIST, _commit_env, build_repo, git, repo_stats  # sibling script

from runner import Hypothesis, WorktreeManager
from runner.engine.aio import run_sync
from runner.engine.fetch import FetchSettings

METHODS = ("shallow", "full")


def make_origin(source: Path, count: int, work: Path) -> tuple[Path, dict[str, str]]:
    """A bare origin with ``main`` and ``count`` branches ``hyp/NN`` (one commit each on ``HEAD~NN``)."""
    seed = work / "seed"
    git("clone", "-q", "--no-hardlinks", str(source), str(seed))
    head = git("rev-parse", "HEAD", cwd=seed).stdout.strip()
    depth = int(git("rev-list", "--count", "HEAD", cwd=seed).stdout.strip())
    shas: dict[str, str] = {}
    for k in range(count):
        branch = f"hyp/{k:02d}"
        git("checkout", "-q", "-B", branch, f"{head}~{k % depth}", cwd=seed)
        (seed / "HYPOTHESIS.txt").write_text(f"{branch}\n", encoding="utf-8")
        for args in (["add", "HYPOTHESIS.txt"], ["commit", "-q", "--no-gpg-sign", "-m", branch]):
            subprocess.run(
                ["git", *args], cwd=seed, env=_commit_env(1000 + k), check=True, capture_output=True
            )
        shas[branch] = git("rev-parse", "HEAD", cwd=seed).stdout.strip()
    git("branch", "-q", "-f", "main", head, cwd=seed)
    origin = work / "origin.git"
    git("init", "-q", "--bare", str(origin))
    git("push", "-q", str(origin), "main", *shas, cwd=seed)
    git("symbolic-ref", "HEAD", "refs/heads/main", cwd=origin)
    shutil.rmtree(seed)
    return origin, shas


def run_method(method: str, origin: Path, shas: dict[str, str], work: Path) -> dict[str, float]:
    clone = work / f"clone-{method}"
    shutil.rmtree(clone, ignore_errors=True)
    depth = ["--depth", "1", "--single-branch"] if method == "shallow" else []
    t0 = time.perf_counter()
    git("clone", "-q", *depth, "--no-tags", f"file://{origin}", str(clone))
    clone_s = time.perf_counter() - t0
    refs = list(shas) if method == "shallow" else [f"origin/{b}" for b in shas]
    hypotheses = [Hypothesis(name=b, ref=r) for b, r in zip(shas, refs, strict=True)]

    async def engine() -> dict[str, float]:
        manager = WorktreeManager(clone, base=work)
        t1 = time.perf_counter()
        await manager.open()
        outcome = await manager.fetch_missing(refs, FetchSettings())
        t2 = time.perf_counter()
        trees = await asyncio.gather(*(manager.create(h, k) for k, h in enumerate(hypotheses)))
        t3 = time.perf_counter()
        for tree, branch in zip(trees, shas, strict=True):
            head = git("rev-parse", "HEAD", cwd=tree.path).stdout.strip()
            dirty = git("status", "--porcelain", cwd=tree.path).stdout.strip()
            if head != shas[branch] or dirty or outcome.errors:
                raise RuntimeError(
                    f"{method}: {branch} at {head}, dirty={bool(dirty)}, errors={outcome.errors}"
                )
        t4 = time.perf_counter()
        await asyncio.gather(*(manager.remove(t) for t in trees))
        await manager.close()
        t5 = time.perf_counter()
        return {
            "fetch_s": t2 - t1,
            "create_s": t3 - t2,
            "remove_s": t5 - t4,
            "fetches": outcome.fetch_commands,
        }

    timings = run_sync(engine())
    shutil.rmtree(clone, ignore_errors=True)
    timings["clone_s"] = clone_s
    timings["total_s"] = clone_s + timings["fetch_s"] + timings["create_s"] + timings["remove_s"]
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--count", type=int, default=16, help="branches / hypotheses (default 16)")
    parser.add_argument("--sdist", default=DEFAULT_SDIST, help=f"PyPI sdist to build from ({DEFAULT_SDIST})")
    parser.add_argument("--repo", type=Path, help="use this git repository instead of building one")
    args = parser.parse_args(argv)
    if args.repo is not None:
        source, described = args.repo.resolve(), str(args.repo)
    else:
        source, described = build_repo(args.sdist, max(args.count, 16))
    files, mib = repo_stats(source)
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
    ratios: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-fetch-") as tmp:
        work = Path(tmp)
        origin, shas = make_origin(source, args.count, work)
        for rep in range(args.reps):
            order = METHODS if rep % 2 == 0 else METHODS[::-1]
            got = {}
            for method in order:
                print(f"rep {rep + 1}/{args.reps}: {method}", file=sys.stderr)
                got[method] = run_method(method, origin, shas, work)
                runs[method].append(got[method])
            ratios.append(got["shallow"]["total_s"] / got["full"]["total_s"])
    keys = ("clone_s", "fetch_s", "create_s", "remove_s", "total_s")
    med = {m: {k: statistics.median(r[k] for r in runs[m]) for k in keys} for m in METHODS}
    print(f"\nRepository: {described}, {files} files, {mib:.1f} MiB at HEAD; {args.count} branches, "
          f"{args.reps} repetitions (medians, seconds)\n")  # fmt: skip
    rows = [[m, *(f"{med[m][k]:.3f}" for k in keys), str(int(runs[m][0]["fetches"]))] for m in METHODS]
    headers = ["checkout", "clone", "open + fetch", "create", "remove + close", "total", "git fetches"]
    print(markdown_table(headers, rows))
    ratio = statistics.median(ratios)
    print(f"\nshallow/full total (median of per-repetition ratios): {ratio:.2f}")
    result = {
        "repository": described,
        "branches": args.count,
        "reps": args.reps,
        "median": med,
        "fetch_commands": {m: int(runs[m][0]["fetches"]) for m in METHODS},
        "ratio_shallow_vs_full_total": round(ratio, 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
