"""The benchmarks run and report what they claim (figures are not asserted: no timed assertions)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .conftest import PY, REPO_ROOT, worktree_list


def _last_json(stdout: str) -> dict[str, object]:
    return json.loads(stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_executor_overhead_quick() -> None:
    proc = subprocess.run([PY, str(REPO_ROOT / "bench" / "executor_overhead.py"), "--quick"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = _last_json(proc.stdout)
    for key in (
        "ratio_vs_xargs_trivial",
        "ratio_vs_threads_trivial",
        "ratio_vs_ideal_sleep",
        "peak_rss_mib_output",
    ):
        assert isinstance(data[key], float) and data[key] > 0, key  # type: ignore[operator]
    assert data["any_task_failed"] is False


def test_worktrees_bench_on_a_real_repo(repo: Path) -> None:
    before = worktree_list(repo)
    proc = subprocess.run(
        [PY, str(REPO_ROOT / "bench" / "worktrees.py"), "--repo", str(repo), "--reps", "1", "--count", "8",
         "--stress", "1", "--noise-retries", "0"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = _last_json(proc.stdout)
    assert data["ours_failures"] == 0
    assert data["worktree_list_unchanged"] is True
    assert worktree_list(repo) == before
