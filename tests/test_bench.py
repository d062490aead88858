"""The benchmarks run and report what they claim (figures are not asserted: no timed assertions)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from .conftest import PY, REPO_ROOT, worktree_list
from .openhands_support.agent_server import marked_pids


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
        "ratio_vs_xargs_sleep",
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


@pytest.mark.openhands
def test_nonblocking_quick(agent_server_interpreter: str, tmp_path: Path) -> None:
    """Real agent-server + scripted LLM; skips without the agent-server venv unless
    WORKTREE_RUNNER_REQUIRE_AGENT_SERVER is set (the ``agent_server_interpreter`` fixture)."""
    out = tmp_path / "nonblocking.json"
    proc = subprocess.Popen(
        [PY, str(REPO_ROOT / "bench" / "nonblocking.py"), "--quick", "--json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the bench stops its servers on SIGTERM
        proc.communicate(timeout=60)
        raise
    assert proc.returncode == 0, stderr[-3000:]
    data = _last_json(stdout)
    assert json.loads(out.read_text()) == data
    for key in (
        "ratio_nonblocking_over_blocking",
        "ideal_ratio",
        "generation_s_measured",
        "other_s_measured",
        "submit_latency_p50_s",
        "submit_latency_p95_s",
    ):
        assert isinstance(data[key], float) and data[key] > 0, key  # type: ignore[operator]
    assert isinstance(data["overhead_above_max_s"], float)
    assert data["any_failed"] is False and data["leftover_server_processes"] == 0
    assert marked_pids(str(data["server_marker"])) == []
    for table in ("| nonblocking / blocking |", "| ideal max(G,S) / (G+S) |", "| blocking |", "p95"):
        assert table in stdout, table


def test_isolation_bench_quick(tmp_path: Path) -> None:
    """Both modes run and every isolated hypothesis imports its own code (the shared mode may not)."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.run([PY, str(REPO_ROOT / "bench" / "isolation.py"), "--quick"],
                          capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = _last_json(proc.stdout)
    assert data["isolated_wrong"] == 0
    for key in ("ratio_isolated_over_shared_pip", "create_ms_median", "remove_ms_median", "template_s"):
        assert isinstance(data[key], float) and data[key] > 0, key  # type: ignore[operator]
    assert "| isolated, pip |" in proc.stdout and "| shared, pip |" in proc.stdout
    assert [p.name for p in tmp_path.iterdir()] == []  # its repository, job env and layers are gone


def test_per_test_overhead_quick() -> None:
    proc = subprocess.run([PY, str(REPO_ROOT / "bench" / "per_test_overhead.py"), "--quick"],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = _last_json(proc.stdout)
    assert set(data["ratio_vs_exit_code"]) == {"exit-code", "report", "reruns", "cache-hit"}  # type: ignore[arg-type]
    assert data["best"] == dict.fromkeys(("exit-code", "report", "reruns", "cache-hit"), "right fix")


def test_end_to_end_bench_quick(tmp_path: Path) -> None:
    proc = subprocess.run([PY, str(REPO_ROOT / "bench" / "end_to_end.py"), "--quick", "--tmp", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = _last_json(proc.stdout)
    assert set(data["wall_s"]) == {"ours", "ours_bare", "diy"}  # type: ignore[arg-type]
    assert set(data["phases_ms_per_hypothesis"]) == {"worktree", "environment", "spawn", "report"}  # type: ignore[arg-type]
    assert all(v > 0 for v in data["ms_per_hypothesis"].values())  # type: ignore[union-attr]
    assert list(tmp_path.iterdir()) == []  # its repository, worktrees and logs are gone
