"""Whole runs on real repositories: worktrees, patches, hostile input, the CLI and signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from runner import Hypothesis, RunnerConfig, RunOptions, Status, WorktreeError, WorktreeManager, run_config
from runner.cli import main
from runner.engine.aio import run_sync

from .conftest import PY, git, pid_alive, worktree_list


def config(hypotheses: list[dict[str, object]], **kw: object) -> RunnerConfig:
    return RunnerConfig.model_validate({"command": [PY, "check.py"], "hypotheses": hypotheses, **kw})


def cli(
    tmp_path: Path, repo: Path, cfg: dict[str, object], *extra: str
) -> tuple[int, dict[str, object] | None]:
    cfg_path = tmp_path / "wr.yml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    results = tmp_path / "out" / "results.json"
    code = main(
        ["test", "--config", str(cfg_path), "--repo", str(repo), "--results-json", str(results), *extra]
    )
    return code, (json.loads(results.read_text()) if results.exists() else None)


def test_refs_patches_and_errors_in_one_run(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    before = worktree_list(repo)
    good_patch = tmp_path / "fix.diff"
    good_patch.write_text(
        textwrap.dedent("""\
        --- a/data.txt
        +++ b/data.txt
        @@ -1,3 +1,3 @@
         one
        -two
        +TWO
         three
        """)
    )
    bad_patch = tmp_path / "bad.diff"
    bad_patch.write_text("--- a/data.txt\n+++ b/data.txt\n@@ -1,2 +1,2 @@\n-nothing\n-like\n+this\n+file\n")
    check_two = [PY, "-c", "import sys; sys.exit(0 if 'TWO' in open('data.txt').read() else 1)"]
    cfg = config(
        [
            {"name": "main", "ref": "main"},
            {"name": "broken", "ref": "broken"},
            {"name": "feature", "ref": "feature", "command": ["test", "-f", "feature.txt"]},
            {"name": "patched", "patch": str(good_patch), "command": check_two},
            {"name": "patch-on-broken", "patch": str(good_patch), "base": "broken"},
            {"name": "bad-patch", "patch": str(bad_patch)},
            {"name": "no-such-ref", "ref": "does/not/exist"},
        ]
    )
    report = run_config(cfg, RunOptions(repo=repo))
    by = {r.name: r for r in report.results}
    assert by["main"].status is Status.PASSED
    assert by["main"].commit == git(repo, "rev-parse", "main")
    assert by["broken"].status is Status.FAILED and "broken!" in by["broken"].output_tail
    assert by["feature"].status is Status.PASSED
    assert by["patched"].status is Status.PASSED
    assert by["patch-on-broken"].status is Status.FAILED
    assert by["patch-on-broken"].commit == git(repo, "rev-parse", "broken")
    assert by["bad-patch"].status is Status.ERROR and "does not apply" in (by["bad-patch"].error or "")
    assert by["no-such-ref"].status is Status.ERROR and "does not name a commit" in (
        by["no-such-ref"].error or ""
    )
    assert worktree_list(repo) == before
    assert list(runner_temp.iterdir()) == [report.extra and Path(str(report.extra["logs_dir"]))]
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize("ref", ["--orphan", "-bevil", "--output=/tmp/x"])
def test_option_like_refs_never_reach_git(repo: Path, ref: str) -> None:
    before_branches = git(repo, "branch", "--list")
    manager = WorktreeManager(repo)
    hypothesis = Hypothesis.model_construct(name="evil", ref=ref, patch=None, base=None, command=None,
                                            setup=None, env={}, timeout=None)  # fmt: skip
    with pytest.raises(WorktreeError, match="starts with '-'"):
        run_sync(manager.create(hypothesis, 0))
    run_sync(manager.close())
    assert git(repo, "branch", "--list") == before_branches
    assert "evil" not in git(repo, "branch", "--list")


def test_option_like_ref_in_config_is_bad_input(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    code, results = cli(tmp_path, repo, {"command": "true", "hypotheses": [{"name": "x", "ref": "-bevil"}]})
    assert code == 2 and results is None
    assert list(runner_temp.iterdir()) == []
    assert "evil" not in git(repo, "branch", "--list")


HOSTILE = [
    "../../escape",
    "/abs/path",
    "ünïcødé ✓ 名前",
    "with spaces\tand tab",
    "x" * 300,
    ".",
    "..",
    "-rf",
    "a/../../b",
]


def test_hostile_names_stay_inside_the_root(repo: Path, runner_temp: Path) -> None:
    probe = [PY, "-c", "import os; print(os.getcwd())"]
    cfg = config([{"name": n, "ref": "main", "command": probe} for n in HOSTILE])
    report = run_config(cfg, RunOptions(repo=repo, logs_dir=runner_temp / "logs"))
    assert [r.status for r in report.results] == [Status.PASSED] * len(HOSTILE)
    cwds = set()
    for r in report.results:
        cwd = Path(r.output_tail.splitlines()[-1])
        cwds.add(cwd)
        assert cwd.parent.parent == runner_temp, cwd  # runner_temp/worktree-runner-XXXX/<safe name>
        assert Path(r.log_path or "").parent == runner_temp / "logs"
        assert len(cwd.name) < 80
    assert len(cwds) == len(HOSTILE)
    assert sorted(p.name for p in runner_temp.iterdir()) == ["logs"]  # worktrees gone
    assert not (repo.parent / "escape").exists() and not Path("/abs/path").exists()


def test_32_hypotheses_at_8_way_have_no_worktree_failures(repo: Path, runner_temp: Path) -> None:
    before = worktree_list(repo)
    refs = ["main", "broken", "feature", "HEAD"]
    cfg = config(
        [{"name": f"h{i}", "ref": refs[i % 4], "command": ["test", "-f", "check.py"]} for i in range(32)],
        **{"max-parallel": 8},
    )
    report = run_config(cfg, RunOptions(repo=repo))
    errors = [r.error for r in report.results if r.status is not Status.PASSED]
    assert errors == []
    assert worktree_list(repo) == before


def test_cli_exit_codes_json_and_junit(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    junit = tmp_path / "out" / "junit.xml"
    cfg = {
        "command": [PY, "check.py"],
        "hypotheses": [{"name": "main", "ref": "main"}, {"name": "broken", "ref": "broken"}],
    }
    code, results = cli(tmp_path, repo, cfg, "--junit", str(junit))
    assert code == 1 and results is not None
    assert results["schema"] == 1 and results["conclusion"] == "failure"
    assert (
        results["passed"],
        results["failed"],
        results["timed_out"],
        results["errors"],
        results["cancelled"],
    ) == (1, 1, 0, 0, 0)
    assert results["best"] == "main"
    entry = results["results"][1]  # type: ignore[index]
    assert set(entry) >= {
        "name",
        "status",
        "exit_code",
        "duration_s",
        "ref",
        "commit",
        "log_path",
        "output_tail",
        "error",
    }
    root = ET.parse(junit).getroot()
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == ["main", "broken"]
    assert cases[1].find("failure") is not None and cases[0].find("failure") is None
    assert root.get("tests") == "2" and root.get("failures") == "1"

    code, results = cli(tmp_path, repo, {**cfg, "succeed-if": "any"})
    assert code == 0 and results is not None and results["conclusion"] == "success"
    code, results = cli(tmp_path, repo, cfg, "--succeed-if", "any", "--max-parallel", "1", "--timeout", "30")
    assert code == 0


@pytest.mark.parametrize(
    ("cfg", "args", "message"),
    [
        ({"command": "true", "hypotheses": []}, [], "hypotheses: List should have at least 1 item"),
        (
            {"command": "true", "hypotheses": [{"name": "p", "patch": "nope.diff"}]},
            [],
            "hypotheses[0].patch: patch file 'nope.diff' not found",
        ),
        (
            {"command": "true", "hypotheses": [{"name": "a", "ref": "HEAD"}]},
            ["--max-parallel", "0"],
            "--max-parallel",
        ),
        (
            {"command": "true", "hypotheses": [{"name": "a", "ref": "HEAD"}]},
            ["--durations", "/nonexistent.json"],
            "/nonexistent.json: file not found",
        ),
        (
            {"command": "true", "hypotheses": [{"name": "a", "ref": "HEAD"}]},
            ["--isolation", "sandbox"],
            "--isolation",
        ),
        (
            {"command": "true", "isolation": "sandbox", "hypotheses": [{"name": "a", "ref": "HEAD"}]},
            [],
            "isolation: Input should be 'venv' or 'none'",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line_and_leaves_nothing(
    repo: Path, tmp_path: Path, runner_temp: Path, capsys: pytest.CaptureFixture[str],
    cfg: dict[str, object], args: list[str], message: str,
) -> None:  # fmt: skip
    before = worktree_list(repo)
    code, results = cli(tmp_path, repo, cfg, *args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and results is None
    assert message in err and len(err.splitlines()) == 1, err
    assert list(runner_temp.iterdir()) == []
    assert worktree_list(repo) == before


def test_not_a_repository_is_bad_input(
    tmp_path: Path, runner_temp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    code, _ = cli(tmp_path, plain, {"command": "true", "hypotheses": [{"name": "a", "ref": "HEAD"}]})
    assert code == 2 and "not a git work tree" in capsys.readouterr().err
    assert list(runner_temp.iterdir()) == []


def test_durations_file_from_previous_results(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    cfg = {
        "command": [PY, "check.py"],
        "max-parallel": 1,
        "hypotheses": [{"name": "a", "ref": "main"}, {"name": "b", "ref": "main"}],
    }
    code, first = cli(tmp_path, repo, cfg)
    assert code == 0 and first is not None
    previous = tmp_path / "previous.json"
    first["results"][1]["duration_s"] = 100.0  # type: ignore[index]
    previous.write_text(json.dumps(first))
    order: list[str] = []
    from runner.cli import commands as cli_module

    original = cli_module.progress_printer
    try:
        cli_module.progress_printer = lambda stream=None: lambda r, d, t: order.append(r.name)  # type: ignore[assignment]
        code, _ = cli(tmp_path, repo, cfg, "--durations", str(previous))
    finally:
        cli_module.progress_printer = original  # type: ignore[assignment]
    assert code == 0 and order == ["b", "a"]


SIGNAL_SCRIPT = """
import sys
from runner.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_run_cleans_up_and_writes_partial_results(
    repo: Path, tmp_path: Path, runner_temp: Path, sig: signal.Signals
) -> None:
    before = worktree_list(repo)
    pids = tmp_path / "pids"
    pids.mkdir()
    sleeper = [
        PY,
        "-c",
        f"import os, time; open(os.path.join({str(pids)!r}, str(os.getpid())), 'w'); time.sleep(60)",
    ]
    cfg = {"command": sleeper, "max-parallel": 2, "kill-grace": 1,
           "hypotheses": [{"name": "quick", "ref": "main", "command": "true"}]
           + [{"name": f"s{i}", "ref": "main"} for i in range(4)]}  # fmt: skip
    cfg_path = tmp_path / "wr.yml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    results = tmp_path / "results.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGNAL_SCRIPT, "test", "--config", str(cfg_path), "--repo", str(repo),
         "--results-json", str(results)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "RUNNER_TEMP": str(runner_temp)},
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(list(pids.iterdir())) == 2, "hypotheses did not start"
    signalled = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=15)
    assert time.monotonic() - signalled < 5, "cleanup must fit in GitHub's cancellation window"
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), err
    data = json.loads(results.read_text())
    statuses = {r["name"]: r["status"] for r in data["results"]}
    assert statuses["quick"] == "passed"
    assert sorted(statuses[f"s{i}"] for i in range(4)) == ["cancelled"] * 4
    assert data["stopped"] == f"cancelled by {sig.name}" and data["signal"] == sig.name
    assert worktree_list(repo) == before
    assert [
        p.name
        for p in runner_temp.iterdir()
        if p.name.startswith("worktree-runner-") and "logs" not in p.name
    ] == []
    for p in pids.iterdir():
        assert not pid_alive(int(p.name))
