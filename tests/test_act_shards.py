"""Two shard jobs and a merge job (tests/fixtures/workflows/shards-act.yml) run for real with act.

The workflow has the shape of .github/workflows/sharded.yml, except that the results travel between
jobs through a host folder bind-mounted at /handoff in every job container (offline act cannot fetch
actions/upload-artifact): ``--container-options "-v HOST:/handoff"``, given to act through an
``.actrc`` in the snapshot repository because tests/test_act.py's ``run_act`` (reused here) has a fixed
argument list. The merge job copies its merged results.json back to /handoff, so this test reads the
real files every job wrote.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from . import test_act
from .docker_support import REPO_ROOT
from .test_act import require_act, run_act, snapshot_repository, step_lines

pytestmark = pytest.mark.docker

WORKFLOW = "tests/fixtures/workflows/shards-act.yml"
NAMES = ["alpha", "beta", "fails-gamma", "delta", "patched"]


def test_two_shards_and_merge_with_act(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    act = require_act()
    repo = tmp_path / "repo"
    snapshot_repository(REPO_ROOT, repo)
    handoff = tmp_path / "handoff"
    handoff.mkdir()
    # act reads extra arguments from ./.actrc: "--flag value" per line, split at the first space.
    (repo / ".actrc").write_text(f"--container-options -v {handoff}:/handoff\n")
    monkeypatch.setattr(test_act, "WORKFLOW", WORKFLOW)

    returncode, output, seconds = run_act(act, repo, timeout=300)
    print(f"\n[act] shards workflow: exit {returncode} in {seconds:.1f} s")
    assert returncode == 0, output[-8000:]
    assert output.count("Job succeeded") == 3, output[-8000:]  # two shard jobs and the merge job

    lines = step_lines(output)
    shard_lines = sorted(line for line in lines if line.startswith("shard-outputs "))
    assert shard_lines == [
        "shard-outputs shard=1 passed=2 failed=1",  # round-robin: alpha, fails-gamma, patched
        "shard-outputs shard=2 passed=2 failed=0",  # beta, delta
    ], output[-8000:]
    merged_lines = [line for line in lines if line.startswith("merged-outputs ")]
    assert merged_lines == [
        "merged-outputs conclusion=success passed=4 failed=1 results-file=.worktree-runner/results.json"
    ], output[-8000:]

    shards = {}
    for k in (1, 2):
        doc = json.loads((handoff / f"shard-{k}" / "results.json").read_text())
        assert doc["shard"]["index"] == k and doc["shard"]["total"] == 2
        assert doc["shard"]["strategy"] == "round-robin" and doc["shard"]["hypotheses_total"] == 5
        shards[k] = [r["name"] for r in doc["results"]]
    assert shards == {1: ["alpha", "fails-gamma", "patched"], 2: ["beta", "delta"]}

    merged = json.loads((handoff / "merged" / "results.json").read_text())
    assert [r["name"] for r in merged["results"]] == NAMES  # each exactly once, configuration order
    statuses = {r["name"]: r["status"] for r in merged["results"]}
    assert statuses == {n: "failed" if n.startswith("fails") else "passed" for n in NAMES}
    assert (merged["conclusion"], merged["passed"], merged["failed"]) == ("success", 4, 1)
    assert [s["index"] for s in merged["merged"]["shards"]] == [1, 2]
    assert [s["file"] for s in merged["merged"]["shards"]] == [
        "shards/shard-1/results.json",
        "shards/shard-2/results.json",
    ]
    assert "shard" not in merged
    # The merge step lists the shards it read.
    assert any(
        re.fullmatch(r"shard 2/2: shards/shard-2/results\.json: 2 results, success in .*", x) for x in lines
    )
