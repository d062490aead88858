#!/usr/bin/env python3
"""Creating and removing one git worktree per hypothesis: ours next to two plain-git baselines.

Methods, all on the same repository, the same refs (``HEAD~k``) and the same parent directory:

* ``sequential``: ``git worktree add --detach <dir> HEAD~k`` one after another, then
  ``git worktree remove --force <dir>`` one after another;
* ``ours``: ``WorktreeManager.open()`` + ``create()`` for every hypothesis at once (``asyncio.gather``), then
  ``remove()`` for every worktree at once + ``close()`` (which also runs ``git worktree prune``);
* ``naive_parallel``: every ``git worktree add --detach`` started at once, then every
  ``git worktree remove --force`` at once - the race that ``WorktreeManager`` avoids.

Creation and removal are timed separately; between them each worktree is checked (untimed): ``HEAD`` is the
expected commit and ``git status --porcelain`` is empty (a complete checkout). A failure is a git command
that failed, a worktree that is missing, at the wrong commit or incomplete, or an entry left in
``git worktree list`` after removal. Methods run back to back in an order rotated per repetition; reported
are medians and medians of the per-repetition ratios. The last line printed is one JSON object.

Without ``--repo`` a repository is built once (and cached) from a real PyPI sdist: it is unpacked, committed,
and ``--count - 1`` further commits each modify, add or delete a few files, so every hypothesis has its own
commit ``HEAD~k``. With ``--repo`` the refs are ``HEAD~(k mod depth)``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from _common import busy_cpu_s, fs_type, markdown_table  # sibling module of this script

from runner import Hypothesis, Worktree, WorktreeManager
from runner.engine.aio import run_sync
from runner.engine.gitutil import git_env

METHODS = ("sequential", "ours", "naive_parallel")
DEFAULT_SDIST = "requests==2.32.3"
_ID_RE = re.compile(r"(\.git/worktrees/)[^/\s:]+")
_TMP_RE = re.compile(r"/\S*/(wt|seq|naive)-\S*")


def _env() -> dict[str, str]:
    env = git_env()
    env["LC_ALL"] = "C"
    return env


ENV = _env()


def git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def normalise(message: str) -> str:
    """One git error line with worktree ids and temporary paths replaced, for counting."""
    lines = [ln for ln in message.strip().splitlines() if ln.strip()]
    line = next((ln for ln in lines if ln.startswith(("fatal:", "error:"))), lines[-1] if lines else "?")
    return _TMP_RE.sub("<dir>", _ID_RE.sub(r"\1<id>", line))


# --------------------------------------------------------------------------------------------------
# The repository.
# --------------------------------------------------------------------------------------------------


def _own_cpu_s() -> float:
    """CPU seconds of this process and its reaped children (every git command here is one)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    return total


def measured(run: Callable[[], Outcome]) -> Outcome:
    """``run()`` with ``foreign_cores`` set: CPUs other processes kept busy meanwhile (noise indicator)."""
    busy0, own0, t0 = busy_cpu_s(), _own_cpu_s(), time.perf_counter()
    out = run()
    busy1, own1, t1 = busy_cpu_s(), _own_cpu_s(), time.perf_counter()
    if busy0 is not None and busy1 is not None and t1 > t0:
        out.foreign_cores = max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)
    return out


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "worktree-runner-bench"


def _commit_env(k: int) -> dict[str, str]:
    env = dict(ENV)
    stamp = f"2024-01-01T00:{k // 60:02d}:{k % 60:02d}+00:00"  # fixed dates: the same SHAs on every machine
    env.update(
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@example.invalid",
        GIT_AUTHOR_DATE=stamp,
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@example.invalid",
        GIT_COMMITTER_DATE=stamp,
    )
    return env


def _commit(repo: Path, k: int, message: str) -> None:
    for args in (["add", "-A"], ["commit", "-q", "--no-gpg-sign", "--no-verify", "-m", message]):
        proc = subprocess.run(
            ["git", *args], cwd=repo, env=_commit_env(k), capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"git {args[0]} failed: {proc.stderr.strip()}")


def _unpack(archive: Path, dest: Path) -> Path:
    """Unpack an sdist; returns its top directory."""
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
    else:
        with tarfile.open(archive) as tf:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                tf.extractall(dest)
    entries = [p for p in dest.iterdir() if p.is_dir()]
    return entries[0] if len(entries) == 1 else dest


def _fetch_source(sdist: str, work: Path) -> tuple[Path, str]:
    """A directory of real source code: the unpacked sdist, or (offline) a stdlib package."""
    dl = work / "dl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--quiet",
            "--disable-pip-version-check",
            sdist,
            "-d",
            str(dl),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    archives = sorted(dl.glob("*")) if dl.is_dir() else []
    if proc.returncode == 0 and archives:
        return _unpack(archives[0], work / "src"), f"PyPI sdist {sdist}"
    print(
        f"pip download {sdist} failed ({proc.stderr.strip()[-200:]}); using the stdlib email package",
        file=sys.stderr,
    )
    src = work / "src"
    shutil.copytree(Path(asyncio.__file__).parent.parent / "email", src / "email")
    return src, "CPython stdlib package email (offline fallback)"


def build_repo(sdist: str, commits: int) -> tuple[Path, str]:
    """The cached benchmark repository for ``sdist`` with ``commits`` commits on top of the import."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", sdist)
    repo = _cache_dir() / f"{slug}-{commits}"
    marker = repo / ".git" / "bench-source"
    if marker.is_file():
        return repo, marker.read_text(encoding="utf-8").strip()
    shutil.rmtree(repo, ignore_errors=True)
    repo.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src, source = _fetch_source(sdist, Path(tmp))
        shutil.copytree(src, repo)
    git("init", "-q", cwd=repo)
    git("config", "commit.gpgsign", "false", cwd=repo)
    _commit(repo, 0, f"import {source}")
    files = sorted(p for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts and p.suffix == ".py")
    if not files:
        files = sorted(p for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts)
    for k in range(1, commits + 1):
        for target in {files[k % len(files)], files[(k * 7 + 3) % len(files)]}:
            if target.exists():
                with open(target, "a", encoding="utf-8") as fh:
                    fh.write(f"\n# bench change {k}\n")
        (repo / "bench_changes").mkdir(exist_ok=True)
        (repo / "bench_changes" / f"change_{k:03d}.txt").write_text(f"change {k}\n" * k, encoding="utf-8")
        if k % 5 == 0:  # now and then a deleted file too
            victim = repo / "bench_changes" / f"change_{k - 4:03d}.txt"
            victim.unlink(missing_ok=True)
        _commit(repo, k, f"bench change {k}")
    marker.write_text(source + "\n", encoding="utf-8")
    return repo, source


def repo_stats(repo: Path) -> tuple[int, float]:
    """(files, MiB) of the checkout at HEAD."""
    out = git("ls-tree", "-r", "-l", "HEAD", cwd=repo).stdout.splitlines()
    size = sum(int(line.split()[3]) for line in out if line.split()[3].isdigit())
    return len(out), size / (1024 * 1024)


# --------------------------------------------------------------------------------------------------
# The methods. Each returns create/remove seconds and counted failures.
# --------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    create_s: float = 0.0
    remove_s: float = 0.0
    failed_adds: int = 0
    bad_checkouts: int = 0
    failed_removes: int = 0
    leftovers: int = 0
    foreign_cores: float | None = None
    messages: Counter[str] = field(default_factory=Counter)

    @property
    def total_s(self) -> float:
        return self.create_s + self.remove_s

    @property
    def failures(self) -> int:
        return self.failed_adds + self.bad_checkouts + self.failed_removes + self.leftovers


def verify(paths: Sequence[Path], shas: Sequence[str]) -> int:
    """How many of ``paths`` are not a complete, clean checkout of the matching sha."""
    bad = 0
    for path, sha in zip(paths, shas, strict=True):
        head = git("rev-parse", "HEAD", cwd=path, check=False) if path.is_dir() else None
        status = git("status", "--porcelain", cwd=path, check=False) if path.is_dir() else None
        if head is None or status is None or head.stdout.strip() != sha or status.stdout.strip():
            bad += 1
    return bad


def worktree_list(repo: Path) -> list[str]:
    return git("worktree", "list", "--porcelain", cwd=repo).stdout.splitlines()


def cleanup(repo: Path, base: Path, before: list[str]) -> int:
    """Remove whatever a method left behind; returns how many worktree entries were left."""
    lines = worktree_list(repo)
    listed = [ln.split(" ", 1)[1] for ln in lines if ln.startswith("worktree ")]
    initial = {ln.split(" ", 1)[1] for ln in before if ln.startswith("worktree ")}
    left = [p for p in listed if p not in initial]
    for path in left:
        git("worktree", "remove", "--force", "--force", path, cwd=repo, check=False)
    shutil.rmtree(base, ignore_errors=True)
    git("worktree", "prune", cwd=repo, check=False)
    return len(left)


def run_sequential(repo: Path, base: Path, refs: Sequence[str], shas: Sequence[str]) -> Outcome:
    out = Outcome()
    paths = [base / f"seq-{k:03d}" for k in range(len(refs))]
    t0 = time.perf_counter()
    for path, ref in zip(paths, refs, strict=True):
        proc = git("worktree", "add", "--detach", str(path), ref, cwd=repo, check=False)
        if proc.returncode != 0:
            out.failed_adds += 1
            out.messages[normalise(proc.stderr)] += 1
    out.create_s = time.perf_counter() - t0
    out.bad_checkouts = max(0, verify(paths, shas) - out.failed_adds)
    t0 = time.perf_counter()
    for path in paths:
        proc = git("worktree", "remove", "--force", str(path), cwd=repo, check=False)
        if proc.returncode != 0 and path.exists():
            out.failed_removes += 1
            out.messages["remove: " + normalise(proc.stderr)] += 1
    out.remove_s = time.perf_counter() - t0
    return out


def _start(args: Sequence[str], repo: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["git", *args],
        cwd=repo,
        env=ENV,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_naive(repo: Path, base: Path, refs: Sequence[str], shas: Sequence[str]) -> Outcome:
    out = Outcome()
    paths = [base / f"naive-{k:03d}" for k in range(len(refs))]
    t0 = time.perf_counter()
    procs = [
        _start(["worktree", "add", "--detach", str(p), ref], repo) for p, ref in zip(paths, refs, strict=True)
    ]
    added: list[Path] = []
    for path, proc in zip(paths, procs, strict=True):
        _, err = proc.communicate()
        if proc.returncode != 0:
            out.failed_adds += 1
            out.messages[normalise(err)] += 1
        else:
            added.append(path)
    out.create_s = time.perf_counter() - t0
    out.bad_checkouts = max(0, verify(paths, shas) - out.failed_adds)
    t0 = time.perf_counter()
    procs = [_start(["worktree", "remove", "--force", str(p)], repo) for p in added]
    for path, proc in zip(added, procs, strict=True):
        _, err = proc.communicate()
        if proc.returncode != 0 and path.exists():
            out.failed_removes += 1
            out.messages["remove: " + normalise(err)] += 1
    out.remove_s = time.perf_counter() - t0
    return out


def run_ours(repo: Path, base: Path, refs: Sequence[str], shas: Sequence[str]) -> Outcome:
    hypotheses = [Hypothesis(name=f"wt-{k}", ref=ref) for k, ref in enumerate(refs)]

    async def main() -> Outcome:
        out = Outcome()
        manager = WorktreeManager(repo, base=base)
        t0 = time.perf_counter()
        await manager.open()
        made = await asyncio.gather(
            *(manager.create(h, k) for k, h in enumerate(hypotheses)), return_exceptions=True
        )
        out.create_s = time.perf_counter() - t0
        worktrees: list[Worktree] = []
        for item in made:
            if isinstance(item, BaseException):
                out.failed_adds += 1
                out.messages[normalise(str(item))] += 1
            else:
                worktrees.append(item)
        expected = [sha for item, sha in zip(made, shas, strict=True) if not isinstance(item, BaseException)]
        out.bad_checkouts = verify([w.path for w in worktrees], expected)
        t0 = time.perf_counter()
        removed = await asyncio.gather(*(manager.remove(w) for w in worktrees), return_exceptions=True)
        await manager.close()
        out.remove_s = time.perf_counter() - t0
        for w, res in zip(worktrees, removed, strict=True):
            if isinstance(res, BaseException) or w.path.exists():
                out.failed_removes += 1
                out.messages["remove: " + normalise(str(res))] += 1
        return out

    return run_sync(main())


RUNNERS: dict[str, Callable[[Path, Path, Sequence[str], Sequence[str]], Outcome]] = {
    "sequential": run_sequential,
    "ours": run_ours,
    "naive_parallel": run_naive,
}


# --------------------------------------------------------------------------------------------------
# Driver.
# --------------------------------------------------------------------------------------------------


def _noise(group: dict[str, Outcome]) -> float:
    return max((o.foreign_cores or 0.0) for o in group.values())


def _med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, help="use this git repository instead of building one")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument(
        "--count", type=int, default=16, help="worktrees per method and repetition (default 16)"
    )
    parser.add_argument(
        "--sdist", default=DEFAULT_SDIST, help=f"PyPI sdist to build the repo from ({DEFAULT_SDIST})"
    )
    parser.add_argument(
        "--tmp", type=Path, help="parent directory of the worktrees (default: system temp dir)"
    )
    parser.add_argument(
        "--noise-threshold",
        type=float,
        default=0.25,
        help="foreign CPU load (CPUs) above which a repetition is run again (default 0.25)",
    )
    parser.add_argument(
        "--noise-retries",
        type=int,
        default=2,
        help="how often a noisy repetition is run again; the least noisy attempt is kept (default 2)",
    )
    parser.add_argument(
        "--stress",
        type=int,
        default=10,
        help="untimed extra trials of naive_parallel and ours, to count race failures (default 10)",
    )
    args = parser.parse_args(argv)
    if args.reps < 1 or args.count < 1:
        parser.error("--reps and --count must be >= 1")

    if args.repo is not None:
        repo = args.repo.resolve()
        source = f"--repo {repo}"
    else:
        repo, source = build_repo(args.sdist, max(args.count - 1, 15))
    depth = int(git("rev-list", "--count", "--first-parent", "HEAD", cwd=repo).stdout.strip())
    refs = [f"HEAD~{k % depth}" for k in range(args.count)]
    shas = [git("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=repo).stdout.strip() for ref in refs]
    files, mib = repo_stats(repo)
    git_version = git("--version").stdout.strip()
    before = worktree_list(repo)
    tmp_root = Path(tempfile.mkdtemp(prefix="bench-wt-", dir=args.tmp))

    # Warm the page cache (objects, index) once so the first method of the first rep is not penalised.
    warm = tmp_root / "warm"
    git("worktree", "add", "--detach", str(warm), "HEAD", cwd=repo)
    git("worktree", "remove", "--force", str(warm), cwd=repo)

    results: dict[str, list[Outcome]] = {m: [] for m in METHODS}
    stress: dict[str, list[Outcome]] = {"naive_parallel": [], "ours": []}
    every: dict[str, list[Outcome]] = {m: [] for m in METHODS}  # timed attempts, kept or not
    retried = 0
    started = time.perf_counter()
    try:
        for rep in range(args.reps):
            k = rep % len(METHODS)
            best: dict[str, Outcome] | None = None
            for attempt in range(args.noise_retries + 1):
                group: dict[str, Outcome] = {}
                for method in METHODS[k:] + METHODS[:k]:
                    base = tmp_root / f"{method}-{rep}-{attempt}"
                    base.mkdir()
                    out = measured(functools.partial(RUNNERS[method], repo, base, refs, shas))
                    out.leftovers = cleanup(repo, base, before)
                    group[method] = out
                    print(
                        f"rep {rep + 1}/{args.reps} {method:<15} create {out.create_s:7.3f} s  remove "
                        f"{out.remove_s:6.3f} s  failures {out.failures}  foreign load "
                        f"{out.foreign_cores if out.foreign_cores is not None else float('nan'):.2f} CPUs"
                        + (f"  (attempt {attempt + 1})" if attempt else ""),
                        file=sys.stderr,
                        flush=True,
                    )
                for method, out in group.items():
                    every[method].append(out)
                if best is None or _noise(group) < _noise(best):
                    best = group
                if _noise(group) <= args.noise_threshold:
                    break
                retried += 1
            assert best is not None
            for method, out in best.items():
                results[method].append(out)
        # Untimed extra trials of the two concurrent methods: more attempts to show the race.
        for trial in range(args.stress):
            pair = ("naive_parallel", "ours") if trial % 2 == 0 else ("ours", "naive_parallel")
            for method in pair:
                base = tmp_root / f"stress-{method}-{trial}"
                base.mkdir()
                out = RUNNERS[method](repo, base, refs, shas)
                out.leftovers = cleanup(repo, base, before)
                stress[method].append(out)
        if args.stress:
            print(
                f"stress: {args.stress} trial(s) x {args.count}: naive_parallel failures "
                f"{sum(o.failures for o in stress['naive_parallel'])}, ours failures "
                f"{sum(o.failures for o in stress['ours'])}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
        git("worktree", "prune", cwd=repo, check=False)
    elapsed = time.perf_counter() - started
    after = worktree_list(repo)
    unchanged = after == before

    n = args.count
    rows = []
    med: dict[str, dict[str, float | int]] = {}
    for m in METHODS:
        rs = results[m]
        noise = [r.foreign_cores or 0.0 for r in rs]
        med[m] = {
            "create_s": round(_med([r.create_s for r in rs]), 4),
            "remove_s": round(_med([r.remove_s for r in rs]), 4),
            "total_s": round(_med([r.total_s for r in rs]), 4),
            "failures": sum(r.failures for r in rs),
            "failed_adds": sum(r.failed_adds for r in rs),
            "bad_checkouts": sum(r.bad_checkouts for r in rs),
            "failed_removes": sum(r.failed_removes for r in rs),
            "leftovers": sum(r.leftovers for r in rs),
            "foreign_cpus_max": round(max((r.foreign_cores or 0.0) for r in rs), 3),
        }
        rows.append(
            [
                m,
                f"{med[m]['create_s']:.3f}",
                f"{float(med[m]['create_s']) * 1000 / n:.0f}",
                f"{med[m]['remove_s']:.3f}",
                f"{float(med[m]['remove_s']) * 1000 / n:.0f}",
                f"{med[m]['total_s']:.3f}",
                f"{med[m]['failed_adds']}/{n * args.reps}",
                str(med[m]["bad_checkouts"]),
                str(med[m]["failed_removes"]),
                str(med[m]["leftovers"]),
                f"{_med(noise):.2f} / {max(noise):.2f}",
            ]
        )

    def ratio(num: str, den: str, attr: str) -> tuple[float, list[float]]:
        vals = [
            getattr(b, attr) / getattr(a, attr)
            for a, b in zip(results[num], results[den], strict=True)
            if getattr(a, attr) > 0
        ]
        return _med(vals), vals

    ratio_rows = []
    ratios: dict[str, float] = {}
    for label, num, den, attr in (
        ("speed-up of ours over sequential, create + remove", "ours", "sequential", "total_s"),
        ("speed-up of ours over sequential, create", "ours", "sequential", "create_s"),
        ("speed-up of ours over sequential, remove", "ours", "sequential", "remove_s"),
        (
            "speed-up of naive_parallel over sequential, create + remove",
            "naive_parallel",
            "sequential",
            "total_s",
        ),
        ("ours / naive_parallel time, create + remove", "naive_parallel", "ours", "total_s"),
    ):
        value, vals = ratio(num, den, attr)
        ratios[label] = round(value, 3)
        ratio_rows.append([label, f"{value:.2f}", " ".join(f"{v:.2f}" for v in vals)])

    # Failures count over every attempt: a timed run discarded for noise still hit (or missed) the race.
    messages: Counter[str] = Counter()
    for m in METHODS:
        for r in every[m] + stress.get(m, []):
            for msg, c in r.messages.items():
                messages[f"{m}: {msg}"] += c
    timed_fail = {m: sum(r.failures for r in every[m]) for m in METHODS}
    stress_fail = {m: sum(r.failures for r in rs) for m, rs in stress.items()}
    stress_adds = {m: sum(r.failed_adds for r in rs) for m, rs in stress.items()}
    timed_runs = {m: len(every[m]) for m in METHODS}
    attempts = {m: n * (timed_runs[m] + len(stress.get(m, []))) for m in METHODS}
    all_fail = {m: timed_fail[m] + stress_fail.get(m, 0) for m in METHODS}

    print(
        f"worktrees: {n} worktrees per method, {args.reps} rep(s) in {elapsed:.0f} s; Python "
        f"{platform.python_version()}, {git_version}, {os.cpu_count()} CPUs"
    )
    print(
        f"  repository: {source} ({repo}); {files} files, {mib:.1f} MiB at HEAD; "
        f"refs HEAD~0..HEAD~{min(n, depth) - 1}"
    )
    print(f"  worktrees under {tmp_root.parent} ({fs_type(tmp_root.parent)})")
    print()
    print(
        f"Medians over {args.reps} repetition(s) (the least noisy attempt of each); failure columns summed "
        "over these runs (every attempt is counted in the failure table below):\n"
    )
    print(
        markdown_table(
            [
                "method",
                "create s",
                "ms/worktree",
                "remove s",
                "ms/worktree",
                "total s",
                "failed adds",
                "bad checkouts",
                "failed removes",
                "left in worktree list",
                "foreign load CPUs (median / max)",
            ],
            rows,
        )
    )
    print("\nRatios (median of the per-repetition ratios; then each repetition's):\n")
    print(markdown_table(["ratio", "median", "per repetition"], ratio_rows))
    print(
        f"\nFailures over all attempts (every timed run, including those run again for noise, + "
        f"{args.stress} untimed stress trial(s) of the concurrent methods; {n} worktrees each):\n"
    )
    print(
        markdown_table(
            [
                "method",
                "runs",
                "worktrees attempted",
                "failures (timed)",
                "failures (stress)",
                "failures (all)",
                "rate",
            ],
            [
                [
                    m,
                    f"{timed_runs[m]} timed + {len(stress.get(m, []))} stress",
                    str(attempts[m]),
                    str(timed_fail[m]),
                    str(stress_fail[m]) if m in stress else "-",
                    str(all_fail[m]),
                    f"{100.0 * all_fail[m] / attempts[m]:.1f}%",
                ]
                for m in METHODS
            ],
        )
    )
    if messages:
        print("\nError messages (worktree ids and paths normalised):\n")
        print(markdown_table(["method: message", "count"], [[k, str(v)] for k, v in messages.most_common()]))
    print(f"\n`git worktree list` unchanged at the end: {'yes' if unchanged else 'NO'}")
    summary = {
        "bench": "worktrees",
        "sequential_s": med["sequential"]["total_s"],
        "ours_s": med["ours"]["total_s"],
        "naive_parallel_s": med["naive_parallel"]["total_s"],
        "ours_failures": all_fail["ours"],
        "naive_failures": all_fail["naive_parallel"],
        "sequential_failures": all_fail["sequential"],
        "attempts": attempts,
        "failures_timed": timed_fail,
        "failures_stress": stress_fail,
        "failed_adds_stress": stress_adds,
        "stress_trials": args.stress,
        "reps_rerun_for_noise": retried,
        "speedup_vs_sequential": ratios["speed-up of ours over sequential, create + remove"],
        "speedup_create_vs_sequential": ratios["speed-up of ours over sequential, create"],
        "speedup_remove_vs_sequential": ratios["speed-up of ours over sequential, remove"],
        "ours_vs_naive_parallel": ratios["ours / naive_parallel time, create + remove"],
        "medians": med,
        "messages": dict(messages),
        "worktree_list_unchanged": unchanged,
        "count": n,
        "reps": args.reps,
        "repo": str(repo),
        "repo_source": source,
        "repo_files": files,
        "repo_mib": round(mib, 2),
        "worktree_dir": str(tmp_root.parent),
        "worktree_fs": fs_type(tmp_root.parent),
        "git": git_version,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "elapsed_s": round(elapsed, 1),
    }
    print(json.dumps(summary))
    return 0 if unchanged and all_fail["ours"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
