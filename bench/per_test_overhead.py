"""What per-test verdicts cost on a real suite, next to the same run without them; and the result cache.

The scenario is the test suite's (``tests/per_test_support.py``): six 1.17.0's own 200 tests, a baseline
with a regression, a right fix, a partial fix, a fix that breaks another test, a flaky hypothesis and a
flaky patch. Each repetition runs the whole configuration (6 hypotheses, ``max-parallel: 2``) with:

* ``exit-code``  - ``per-test: false``: today's behaviour, the baseline of the comparison;
* ``report``     - the pytest result plugin, ``reruns: 0`` (the cost of collecting outcomes);
* ``reruns``     - the plugin and ``reruns: 2`` (the default: failing ids re-run in fresh processes);
* ``cache-hit``  - ``reruns`` again with a warm ``--cache-dir`` (every hypothesis cached).

in an order rotated per repetition; medians and per-repetition ratios against ``exit-code``. The machine
is shared: read the figures as rough. Last line of stdout: one JSON object.

    python bench/per_test_overhead.py [--reps 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner import RunOptions, parse_config, run_config  # noqa: E402
from tests.per_test_support import make_six_repo  # noqa: E402

METHODS = ("exit-code", "report", "reruns", "cache-hit")


def _config(repo: Path, *, per_test: bool, reruns: int, quick: bool) -> object:
    config = parse_config({
        "command": [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        "max-parallel": 2, "per-test": per_test, "reruns": reruns,
        "hypotheses": [
            {"name": "regressed", "ref": "HEAD"},
            {"name": "right fix", "ref": "fix/right"},
            {"name": "partial fix", "ref": "fix/partial"},
            {"name": "breaks another", "ref": "fix/breaks-other"},
            {"name": "right fix, flaky test", "ref": "fix/flaky"},
            {"name": "flaky only", "patch": str(repo.parent / "flaky-only.diff")},
        ],
    })  # fmt: skip
    if quick:  # the baseline, the right fix and the flaky one
        config = config.model_copy(update={"hypotheses": [config.hypotheses[i] for i in (0, 1, 4)]})
    return config


def _run(repo: Path, work: Path, method: str, quick: bool) -> tuple[float, str | None, int]:
    per_test, reruns = {"exit-code": (False, 0), "report": (True, 0)}.get(method, (True, 2))
    cache = work / "cache" if method == "cache-hit" else None
    options = RunOptions(repo=repo, worktree_base=work, logs_dir=work / f"logs-{method}", cache_dir=cache)
    config = _config(repo, per_test=per_test, reruns=reruns, quick=quick)
    started = time.monotonic()
    report = run_config(config, options)  # type: ignore[arg-type]
    elapsed = time.monotonic() - started
    if method == "cache-hit":
        assert all(r.cached for r in report.results), "the cache was not warm"
    return elapsed, report.best, sum(1 for r in report.results if r.cached)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repetition of 3 hypotheses")
    args = parser.parse_args()
    reps = 1 if args.quick else max(1, args.reps)
    with tempfile.TemporaryDirectory(prefix="bench-per-test-") as tmp:
        work = Path(tmp)
        repo = make_six_repo(work / "repo")
        # Warm the cache once (a run with the same settings as "reruns").
        cache = work / "cache"
        warm = RunOptions(repo=repo, worktree_base=work, logs_dir=work / "logs-warm", cache_dir=cache)
        run_config(_config(repo, per_test=True, reruns=2, quick=args.quick), warm)  # type: ignore[arg-type]
        times: dict[str, list[float]] = {m: [] for m in METHODS}
        best: dict[str, str | None] = {}
        ratios: dict[str, list[float]] = {m: [] for m in METHODS}
        for rep in range(reps):
            order = METHODS[rep % len(METHODS) :] + METHODS[: rep % len(METHODS)]
            this: dict[str, float] = {}
            for method in order:
                elapsed, best[method], _ = _run(repo, work, method, args.quick)
                this[method] = elapsed
                times[method].append(elapsed)
                print(f"rep {rep + 1}/{reps} {method}: {elapsed:.2f}s", file=sys.stderr)
            for method in METHODS:
                ratios[method].append(this[method] / this["exit-code"])
    print("| method | median wall s | ratio vs exit-code (median of per-rep ratios) | best |")
    print("|---|---:|---:|---|")
    for method in METHODS:
        print(
            f"| {method} | {statistics.median(times[method]):.2f} | {statistics.median(ratios[method]):.2f} "
            f"| {best[method]} |"
        )
    print(json.dumps({
        "reps": reps,
        "median_s": {m: round(statistics.median(times[m]), 3) for m in METHODS},
        "ratio_vs_exit_code": {m: round(statistics.median(ratios[m]), 3) for m in METHODS},
        "best": best,
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
