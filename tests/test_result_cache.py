"""The opt-in result cache on a real project's suite: a second identical run is all cached; touching one
hypothesis' tree (or its settings) re-runs that one alone; failures are cached, errors never."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner import RunOptions, parse_config, run_config
from runner.config import Status
from runner.github.summary import render_summary

from .conftest import REPO_ROOT, git
from .per_test_support import make_six_repo

PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]


def _config(repo: Path, **extra: object) -> object:
    return parse_config({
        "command": PYTEST, "max-parallel": 2, "reruns": 1, **extra,
        "hypotheses": [
            {"name": "base", "ref": "HEAD"},
            {"name": "right", "ref": "fix/right"},
            {"name": "patched", "patch": str(repo.parent / "flaky-only.diff")},
            {"name": "bad ref", "ref": "no/such/branch"},
        ],
    })  # fmt: skip


@pytest.fixture
def six_repo(tmp_path: Path) -> Path:
    return make_six_repo(tmp_path / "repo")


def test_second_run_is_cached_and_a_touched_tree_runs_again(six_repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    options = RunOptions(repo=six_repo, worktree_base=tmp_path, cache_dir=cache)
    first = run_config(_config(six_repo), options)  # type: ignore[arg-type]
    assert not any(r.cached for r in first.results)
    assert [r.status for r in first.results] == [Status.FAILED, Status.PASSED, Status.FAILED, Status.ERROR]
    second = run_config(_config(six_repo), options)  # type: ignore[arg-type]
    cached = {r.name: r.cached for r in second.results}
    assert cached == {"base": True, "right": True, "patched": True, "bad ref": None}
    for before, after in zip(first.results, second.results, strict=True):
        assert (after.status, after.exit_code, after.tests) == (before.status, before.exit_code, before.tests)
    assert second.best == first.best == "right"
    doc = second.to_dict()
    assert all(r.get("cached") is True for r in doc["results"][:3]) and "cached" not in doc["results"][3]
    assert "right ⭐ (cached)" in render_summary(doc)

    # Touch one hypothesis' tree: only that one runs again (and its new result is graded as such).
    git(six_repo, "checkout", "-q", "fix/right")
    text = (six_repo / "six.py").read_text()
    (six_repo / "six.py").write_text(text.replace("    unichr = chr\n", "    unichr = str\n"))
    git(six_repo, "commit", "-q", "-am", "the right fix now breaks unichr")
    git(six_repo, "checkout", "-q", "main")
    third = run_config(_config(six_repo), options)  # type: ignore[arg-type]
    cached = {r.name: r.cached for r in third.results}
    assert cached == {"base": True, "right": None, "patched": True, "bad ref": None}
    right = next(r for r in third.results if r.name == "right")
    assert right.status is Status.FAILED and right.tests
    assert right.tests["pass_to_fail"] == ["test_six.py::test_unichr"]

    # Other settings are another key.
    base_only = [{"name": "base", "ref": "HEAD"}]
    other = parse_config({"command": PYTEST, "env": {"X": "1"}, "hypotheses": base_only})
    assert run_config(other, options).results[0].cached is None


def test_cache_dir_on_the_command_line_and_no_cache(six_repo: Path, tmp_path: Path) -> None:
    hypotheses = [{"name": "base", "ref": "HEAD"}, {"name": "right", "ref": "fix/right"}]
    config = {"command": PYTEST, "reruns": 0, "hypotheses": hypotheses}
    (tmp_path / "wr.yml").write_text(json.dumps(config), encoding="utf-8")

    def run(*flags: str) -> dict[str, object]:
        out = tmp_path / "r.json"
        subprocess.run(
            [sys.executable, "-m", "runner", "test", "--config", str(tmp_path / "wr.yml"),
             "--repo", str(six_repo), "--results-json", str(out), "-q", *flags],
            cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, timeout=300,
        )  # fmt: skip
        return json.loads(out.read_text())

    cache = str(tmp_path / "cache")
    assert [r.get("cached") for r in run("--cache-dir", cache)["results"]] == [None, None]
    assert [r.get("cached") for r in run("--cache-dir", cache, "--no-cache")["results"]] == [None, None]
    assert [r.get("cached") for r in run("--cache-dir", cache)["results"]] == [True, True]


def test_timeouts_are_never_cached(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "slow.py").write_text("import time\ntime.sleep(30)\n", encoding="utf-8")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "slow")
    config = parse_config({
        "command": [sys.executable, "slow.py"], "timeout": 0.5, "kill-grace": 0,
        "hypotheses": [{"name": "slow", "ref": "HEAD"}],
    })  # fmt: skip
    options = RunOptions(repo=repo, worktree_base=tmp_path, cache_dir=tmp_path / "cache")
    for _ in range(2):
        result = run_config(config, options).results[0]
        assert result.status is Status.TIMEOUT and result.cached is None
    assert not list((tmp_path / "cache").rglob("*.json"))


def test_action_cache_dir_input_annotations_and_summary(tmp_path: Path, runner_temp: Path) -> None:
    import yaml

    from .test_action import errors, run_step

    repo = make_six_repo(tmp_path / "repo")
    hypotheses = [{"name": "base", "ref": "HEAD"}, {"name": "right", "ref": "fix/right"},
                  {"name": "breaks", "ref": "fix/breaks-other"}]  # fmt: skip
    inputs = {
        "hypotheses": yaml.safe_dump(hypotheses), "test-command": " ".join(PYTEST), "max-parallel": "2",
        "cache-dir": ".wr-cache",
    }  # fmt: skip
    first = run_step(repo, tmp_path, inputs, runner_temp)
    assert first.returncode == 1, first.stderr
    assert first.outputs["best"] == "right"
    compact = {r["name"]: r for r in json.loads(first.outputs["results"])["results"]}
    assert compact["breaks"]["tests"]["pass_to_fail"] == 1 and compact["right"]["tests"]["fail_to_pass"] == 3
    broken = [c for c in errors(first) if "test broken by hypothesis breaks" in c.properties.get("title", "")]
    assert len(broken) == 1 and broken[0].properties["file"] == "test_six.py"
    assert "| Fixed | Broken | Flaky |" in first.summary
    second = run_step(repo, tmp_path, inputs, runner_temp)
    assert second.returncode == 1 and second.outputs["best"] == "right"
    doc = json.loads((repo / ".worktree-runner" / "results.json").read_text())
    assert [r.get("cached") for r in doc["results"]] == [True, True, True]
    assert "(cached)" in second.summary

    bad = run_step(repo, tmp_path, {**inputs, "cache-dir": "../elsewhere"}, runner_temp)
    assert bad.returncode == 2
    assert len(errors(bad)) == 1 and "cache-dir" in errors(bad)[0].data
