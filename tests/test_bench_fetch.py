"""bench/fetch_refs.py runs and reports what it claims (figures are not asserted: no timed assertions)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .conftest import PY, REPO_ROOT, worktree_list


def test_fetch_refs_bench_on_a_real_repo(repo: Path) -> None:
    before = worktree_list(repo)
    proc = subprocess.run(
        [PY, str(REPO_ROOT / "bench" / "fetch_refs.py"), "--repo", str(repo), "--reps", "1", "--count", "4"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    assert data["fetch_commands"] == {"shallow": 1, "full": 0}
    assert data["median"]["shallow"]["total_s"] > 0 and data["median"]["full"]["total_s"] > 0
    assert worktree_list(repo) == before
