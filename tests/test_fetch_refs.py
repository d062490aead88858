"""Refs a shallow checkout lacks are fetched, once, into a private namespace that is gone afterwards.

The checkout is made like actions/checkout and the README's `git clone` advice make it: ``git clone
--depth 1 --single-branch --no-tags file://<bare origin>``. Every hypothesis prints the commit it ran
and a file of that commit, and the test checks both against the origin: each ran its own code.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runner import RunnerConfig, RunOptions, Status, run_config
from runner.engine import gitutil

from .conftest import PY, git

# Prints the commit and the content of which.txt; passes unless which.txt says "fail".
PROBE = [
    PY,
    "-c",
    "import subprocess, sys; head = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True,"
    " text=True).stdout.strip(); which = open('which.txt').read().strip();"
    " print('RAN', head, which); sys.exit(1 if which == 'fail' else 0)",
]


def commit(repo: Path, which: str, message: str) -> str:
    (repo / "which.txt").write_text(which + "\n")
    git(repo, "add", "which.txt")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def origin(tmp_path: Path) -> dict[str, str]:
    """A bare origin: main (8 commits), fix/a, fix/fail, an annotated tag v1 on main~6, refs/pull/7/head.

    Returns the SHAs by name, plus "url".
    """
    seed = tmp_path / "seed"
    seed.mkdir()
    git(seed, "init", "-q", "-b", "main")
    shas: dict[str, str] = {}
    for i in range(8):
        shas[f"main{i}"] = commit(seed, f"main {i}", f"main {i}")
        if i == 1:
            git(seed, "tag", "-a", "v1", "-m", "tag v1")
    git(seed, "checkout", "-q", "-b", "fix/a", "main")
    shas["fix/a"] = commit(seed, "fix a", "fix a")
    git(seed, "checkout", "-q", "-b", "fix/fail", "main")
    shas["fix/fail"] = commit(seed, "fail", "this one fails")
    git(seed, "checkout", "-q", "-b", "pr7", "main~2")
    shas["pr7"] = commit(seed, "pull 7", "pull request 7")
    git(seed, "checkout", "-q", "main")
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(seed, "push", "-q", str(bare), "main", "fix/a", "fix/fail", "v1", "pr7:refs/pull/7/head")
    shas["url"] = f"file://{bare}"
    return shas


def shallow_clone(url: str, dest: Path) -> Path:
    git(dest.parent, "clone", "-q", "--depth", "1", "--single-branch", "--no-tags", url, str(dest))
    return dest


def snapshot(repo: Path) -> tuple[str, str, bool]:
    refs = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    config = (repo / ".git" / "config").read_text()
    return refs, config, (repo / ".git" / "FETCH_HEAD").exists()


@pytest.fixture
def fetch_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """GIT_TRACE2_EVENT for the runner's own git commands: each top-level `git fetch` is one cmd_name line."""
    trace = tmp_path / "trace2.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    monkeypatch.setattr(gitutil, "_ENV_CACHE", None)  # the env is computed once per process
    yield trace
    monkeypatch.setattr(gitutil, "_ENV_CACHE", None)


def commands(trace: Path, name: str) -> int:
    if not trace.exists():
        return 0
    count = 0
    for line in trace.read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "cmd_name" and event.get("name") == name:
            count += 1
    return count


def ran(result_tail: str) -> tuple[str, str]:
    line = next(line for line in result_tail.splitlines() if line.startswith("RAN "))
    _, head, which = line.split(" ", 2)
    return head, which


def config(hypotheses: list[dict[str, object]], **kw: object) -> RunnerConfig:
    return RunnerConfig.model_validate({"command": PROBE, "hypotheses": hypotheses, **kw})


def test_missing_refs_are_fetched_in_one_fetch_and_leave_no_trace(
    origin: dict[str, str], tmp_path: Path, runner_temp: Path, fetch_trace: Path
) -> None:
    clone = shallow_clone(origin["url"], tmp_path / "clone")
    before = snapshot(clone)
    assert git(clone, "rev-parse", "--is-shallow-repository") == "true"
    cases = {
        # name: (ref, expected commit, expected which.txt)
        "branch": ("fix/a", origin["fix/a"], "fix a"),
        "remote-branch": ("origin/fix/fail", origin["fix/fail"], "fail"),
        "sha": (origin["main5"], origin["main5"], "main 5"),
        "older-sha": (origin["main2"], origin["main2"], "main 2"),
        "tag": ("v1", origin["main1"], "main 1"),
        "pull": ("refs/pull/7/head", origin["pr7"], "pull 7"),
        "pull-short": ("pull/7/head", origin["pr7"], "pull 7"),
        "head": ("HEAD", origin["main7"], "main 7"),
    }
    cfg = config([{"name": n, "ref": ref} for n, (ref, _, _) in cases.items()] + [
        {"name": "nowhere", "ref": "fix/b"}
    ])  # fmt: skip
    report = run_config(cfg, RunOptions(repo=clone))
    by = {r.name: r for r in report.results}
    for name, (_, sha, which) in cases.items():
        result = by[name]
        assert result.commit == sha, (name, result.error)
        assert ran(result.output_tail) == (sha, which), name
        assert result.status is (Status.FAILED if which == "fail" else Status.PASSED), name
    assert by["nowhere"].status is Status.ERROR
    assert by["nowhere"].error == (
        "ref 'fix/b' is not in this checkout (shallow, depth 1) and 'git fetch origin fix/b' found no such "
        "ref on origin (tried refs/heads/fix/b, refs/tags/fix/b)"
    )
    # One ls-remote to look the names up, one fetch for everything at depth 1.
    assert commands(fetch_trace, "fetch") == 1
    assert commands(fetch_trace, "ls-remote") == 1
    assert report.extra["fetched"] == {
        "remote": "origin",
        "refs": ["fix/a", "origin/fix/fail", origin["main5"], origin["main2"], "v1", "refs/pull/7/head",
                 "pull/7/head"],
    }  # fmt: skip
    assert snapshot(clone) == before  # branches, tags, remote-tracking refs, config, FETCH_HEAD
    assert git(clone, "for-each-ref", "refs/worktree-runner/") == ""
    assert git(clone, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert [p.name for p in runner_temp.iterdir() if not p.name.startswith("worktree-runner-logs-")] == []


def test_ancestors_are_deepened_just_enough(
    origin: dict[str, str], tmp_path: Path, runner_temp: Path, fetch_trace: Path
) -> None:
    clone = shallow_clone(origin["url"], tmp_path / "clone")
    before = snapshot(clone)
    cfg = config([
        {"name": "parent", "ref": "HEAD~1"},
        {"name": "caret", "ref": "main^"},
        {"name": "five", "ref": "HEAD~5"},
        {"name": "branch-parent", "ref": "fix/a~1"},
    ])  # fmt: skip
    report = run_config(cfg, RunOptions(repo=clone))
    by = {r.name: r for r in report.results}
    expected = {"parent": "main6", "caret": "main6", "five": "main2", "branch-parent": "main7"}
    for name, key in expected.items():
        assert by[name].status is Status.PASSED, (name, by[name].error)
        assert ran(by[name].output_tail) == (origin[key], key.replace("main", "main ")), name
    # Depth 2 (HEAD~1, main^, fix/a~1) and depth 6 (HEAD~5): --depth is one value per fetch.
    assert commands(fetch_trace, "fetch") == 2
    # HEAD's history is as deep as asked for, not deeper: main0 and main1 were never fetched.
    assert git(clone, "rev-list", "--count", "HEAD") == "6"
    assert snapshot(clone) == before


def test_full_clone_fetches_without_depth_and_keeps_history(
    origin: dict[str, str], tmp_path: Path, runner_temp: Path, fetch_trace: Path
) -> None:
    clone = tmp_path / "full"
    git(tmp_path, "clone", "-q", "--single-branch", "--no-tags", origin["url"], str(clone))
    before = snapshot(clone)
    cfg = config([
        {"name": "branch", "ref": "fix/a"},
        {"name": "pull", "ref": "refs/pull/7/head"},
        {"name": "tag-here", "ref": "v1"},  # its commit is here already: found by ls-remote, not fetched
        {"name": "too-deep", "ref": "HEAD~20"},
    ])  # fmt: skip
    report = run_config(cfg, RunOptions(repo=clone))
    by = {r.name: r for r in report.results}
    assert by["branch"].status is Status.PASSED and by["branch"].commit == origin["fix/a"]
    assert by["pull"].status is Status.PASSED and by["pull"].commit == origin["pr7"]
    assert by["tag-here"].status is Status.PASSED and by["tag-here"].commit == origin["main1"]
    assert by["too-deep"].status is Status.ERROR
    assert "history is complete" in (by["too-deep"].error or "")
    assert commands(fetch_trace, "fetch") == 1
    assert report.extra["fetched"]["refs"] == ["fix/a", "refs/pull/7/head"]
    assert git(clone, "rev-parse", "--is-shallow-repository") == "false"
    assert git(clone, "rev-list", "--count", "main") == "8"
    assert snapshot(clone) == before


def test_fetch_false_and_no_remote_behave_as_before(
    origin: dict[str, str], tmp_path: Path, runner_temp: Path, fetch_trace: Path
) -> None:
    clone = shallow_clone(origin["url"], tmp_path / "clone")
    report = run_config(config([{"name": "b", "ref": "fix/a"}], fetch=False), RunOptions(repo=clone))
    assert report.results[0].status is Status.ERROR
    assert "does not name a commit" in (report.results[0].error or "")
    assert commands(fetch_trace, "fetch") == 0 and commands(fetch_trace, "ls-remote") == 0

    git(clone, "remote", "remove", "origin")
    report = run_config(config([{"name": "b", "ref": "fix/a"}, {"name": "h", "ref": "HEAD"}]),
                        RunOptions(repo=clone))  # fmt: skip
    by = {r.name: r for r in report.results}
    assert by["h"].status is Status.PASSED
    assert by["b"].status is Status.ERROR
    assert "there is no remote 'origin'" in (by["b"].error or "")
    assert commands(fetch_trace, "fetch") == 0


def test_other_remote_and_unreachable_remote(
    origin: dict[str, str], tmp_path: Path, runner_temp: Path, fetch_trace: Path
) -> None:
    clone = shallow_clone(origin["url"], tmp_path / "clone")
    git(clone, "remote", "add", "upstream", origin["url"])
    git(clone, "remote", "set-url", "origin", f"file://{tmp_path}/gone.git")
    before = snapshot(clone)
    report = run_config(config([{"name": "b", "ref": "fix/a"}], remote="upstream"), RunOptions(repo=clone))
    assert report.results[0].status is Status.PASSED
    assert ran(report.results[0].output_tail) == (origin["fix/a"], "fix a")
    report = run_config(config([{"name": "b", "ref": "fix/a"}, {"name": "h", "ref": "HEAD"}]),
                        RunOptions(repo=clone))  # fmt: skip
    by = {r.name: r for r in report.results}
    assert by["h"].status is Status.PASSED
    assert by["b"].status is Status.ERROR
    assert "'git ls-remote origin' failed" in (by["b"].error or "")
    assert snapshot(clone) == before


def test_sha_the_server_lacks_is_one_error_the_others_run(
    origin: dict[str, str], tmp_path: Path, runner_temp: Path
) -> None:
    clone = shallow_clone(origin["url"], tmp_path / "clone")
    absent = "0123456789abcdef0123456789abcdef01234567"
    report = run_config(
        config(
            [
                {"name": "gone", "ref": absent},
                {"name": "b", "ref": "fix/a"},
                {"name": "t", "ref": "v1"},
                {"name": "short", "ref": origin["main3"][:10]},
            ]
        ),
        RunOptions(repo=clone),
    )
    by = {r.name: r for r in report.results}
    assert by["b"].status is Status.PASSED and by["t"].status is Status.PASSED
    assert by["gone"].status is Status.ERROR
    assert "an abbreviated SHA can only be resolved locally" in (by["short"].error or "")
    assert (by["gone"].error or "").startswith(
        f"ref '{absent}' is not in this checkout (shallow, depth 1) and 'git fetch origin {absent}' failed: "
    )
    assert git(clone, "for-each-ref", "refs/worktree-runner/") == ""


def test_reachable_only_server_over_protocol_v0(
    origin: dict[str, str], tmp_path: Path, runner_temp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """github.com serves only reachable SHAs; v0 upload-pack + allowReachableSHA1InWant emulates that."""
    bare = Path(origin["url"].removeprefix("file://"))
    git(bare, "config", "uploadpack.allowReachableSHA1InWant", "true")
    clone = shallow_clone(origin["url"], tmp_path / "clone")
    git(clone, "config", "protocol.version", "0")
    before = snapshot(clone)
    report = run_config(
        config([{"name": "older", "ref": origin["main3"]}, {"name": "b", "ref": "fix/a"}]),
        RunOptions(repo=clone),
    )
    assert [r.status for r in report.results] == [Status.PASSED, Status.PASSED], [
        r.error for r in report.results
    ]
    assert ran(report.results[0].output_tail) == (origin["main3"], "main 3")
    assert snapshot(clone) == before


def test_refs_never_reach_git_as_options(origin: dict[str, str], tmp_path: Path, runner_temp: Path) -> None:
    clone = shallow_clone(origin["url"], tmp_path / "clone")
    before = snapshot(clone)
    evil = tmp_path / "evil"
    # Validation refuses a leading '-'; these reach the fetch code and must stay names.
    refs = ["origin/--upload-pack=touch evil", "x~1--depth=1", f"--upload-pack=touch {evil}"]
    hypotheses = [{"name": f"h{i}", "ref": r} for i, r in enumerate(refs[:2])]
    with pytest.raises(Exception, match=r"whitespace|starts with"):
        config([{"name": "x", "ref": refs[2]}])
    with pytest.raises(Exception, match="whitespace"):
        config(hypotheses[:1])
    report = run_config(config(hypotheses[1:]), RunOptions(repo=clone))
    assert report.results[0].status is Status.ERROR
    assert not evil.exists() and not (clone / "evil").exists()
    assert snapshot(clone) == before
    assert [n for n in os.listdir(runner_temp) if not n.startswith("worktree-runner-logs-")] == []


# --- The job's token stays out of the hypotheses' reach -------------------------------------------------

TOKEN = "ghs_FAKEjobTOKEN0123456789abcdefXYZ"
# Prints what a hostile hypothesis would look at: git's whole config, the extraheader lookup, the env.
SNOOP = [
    PY,
    "-c",
    "import os, subprocess;"
    " run = lambda *a: subprocess.run(['git', *a], capture_output=True, text=True);"
    " print(run('config', '--list', '--show-origin').stdout);"
    " r = run('config', '--get-regexp', 'extraheader'); print('EXTRAHEADER-RC', r.returncode, r.stdout);"
    " print('\\n'.join(f'{k}={v}' for k, v in os.environ.items()));"
    " print('RAN', run('rev-parse', 'HEAD').stdout.strip(), open('which.txt').read().strip())",
]


def persist_credentials(clone: Path, creds_dir: Path) -> str:
    """What actions/checkout leaves: v4/v5 write the header into .git/config, v6 an includeIf to a file."""
    import base64

    header = "AUTHORIZATION: basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    git(clone, "config", "--local", "http.https://github.com/.extraheader", header)
    creds_dir.mkdir()
    creds = creds_dir / "git-credentials-0000.config"
    creds.write_text(f'[http "https://github.com/"]\n\textraheader = {header}\n')
    git(clone, "config", "--local", f"includeIf.gitdir:{clone}/.git.path", str(creds))
    git(clone, "config", "--local", f"includeIf.gitdir:{clone}/.git/worktrees/*.path", str(creds))
    return header


def test_hypotheses_cannot_read_the_checkout_token(
    origin: dict[str, str], tmp_path: Path, runner_temp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone = shallow_clone(origin["url"], tmp_path / "clone")
    header = persist_credentials(clone, tmp_path / "creds")
    git(clone, "config", "--local", "user.name", "Config Copied")  # harmless settings still reach worktrees
    monkeypatch.setenv("INPUT_GITHUB-TOKEN", TOKEN)
    before = snapshot(clone)
    patch = tmp_path / "p.diff"
    patch.write_text("--- a/which.txt\n+++ b/which.txt\n@@ -1 +1 @@\n-main 7\n+patched\n")
    cfg = RunnerConfig.model_validate({
        "command": SNOOP,
        "hypotheses": [
            {"name": "head", "ref": "HEAD"},
            {"name": "fetched", "ref": "fix/a"},
            {"name": "older", "ref": "HEAD~3"},
            {"name": "patched", "patch": str(patch)},
        ],
    })  # fmt: skip
    report = run_config(cfg, RunOptions(repo=clone, logs_dir=tmp_path / "logs"))
    by = {r.name: r for r in report.results}
    expected = {
        "head": (origin["main7"], "main 7"),
        "fetched": (origin["fix/a"], "fix a"),
        "older": (origin["main4"], "main 4"),
        "patched": (origin["main7"], "patched"),
    }
    for name, want in expected.items():
        result = by[name]
        assert result.status is Status.PASSED, (name, result.error, result.output_tail[-500:])
        assert ran(result.output_tail) == want, name
        log = Path(result.log_path or "").read_text()
        assert "EXTRAHEADER-RC 1" in log, name
        for secret in (TOKEN, header, header.split()[-1], "git-credentials-0000"):
            assert secret not in log, (name, secret)
        assert "user.name=Config Copied" in log
    assert snapshot(clone) == before  # the credentials are still there for the job's later steps
    assert git(clone, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert not (clone / ".git" / "worktrees").exists()


class _NeedsAuth(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="git"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_fetch_that_needs_credentials_says_so(
    origin: dict[str, str], tmp_path: Path, runner_temp: Path
) -> None:
    clone = shallow_clone(origin["url"], tmp_path / "clone")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NeedsAuth)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        git(clone, "remote", "set-url", "origin", f"http://127.0.0.1:{server.server_address[1]}/repo.git")
        report = run_config(
            config([{"name": "b", "ref": "fix/a"}, {"name": "h", "ref": "HEAD"}]),
            RunOptions(repo=clone, logs_dir=tmp_path / "logs"),
        )
    finally:
        server.shutdown()
        server.server_close()
    by = {r.name: r for r in report.results}
    assert by["h"].status is Status.PASSED
    assert by["b"].status is Status.ERROR
    assert "'git ls-remote origin' needs credentials for origin and none were configured" in (
        by["b"].error or ""
    )


def test_action_summary_names_fetched_refs_and_warns_about_persisted_credentials(
    origin: dict[str, str], tmp_path: Path, runner_temp: Path
) -> None:
    from .test_action import run_step

    workspace = shallow_clone(origin["url"], tmp_path / "workspace")
    persist_credentials(workspace, tmp_path / "creds")
    hypotheses = "- {name: fix, ref: fix/a}\n- {name: pr, ref: refs/pull/7/head}\n- {name: here, ref: HEAD}\n"
    result = run_step(
        workspace,
        tmp_path,
        {"hypotheses": hypotheses, "test-command": " ".join(PROBE[:1]) + " -V"},
        runner_temp,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Fetched from origin (not in the checkout): fix/a, refs/pull/7/head" in result.summary.replace(
        "\\", ""
    )
    warnings = [c for c in result.commands if c.command == "warning"]
    assert any("http.https://github.com/.extraheader" in c.data for c in warnings), warnings
    assert any("persist-credentials: false" in c.data for c in warnings)
    assert "persist-credentials: false" in result.summary
    assert TOKEN not in result.stdout + result.summary


def test_partial_clone_worktrees_fetch_missing_blobs_without_the_token(
    origin: dict[str, str], tmp_path: Path, runner_temp: Path
) -> None:
    """actions/checkout `filter: blob:none` (or `sparse-checkout:`): blobs come from the promisor remote."""
    bare = Path(origin["url"].removeprefix("file://"))
    git(bare, "config", "uploadpack.allowFilter", "true")
    clone = tmp_path / "partial"
    git(tmp_path, "clone", "-q", "--filter=blob:none", "--depth", "1", "--no-tags", origin["url"], str(clone))
    persist_credentials(clone, tmp_path / "creds")
    before = snapshot(clone)
    report = run_config(
        RunnerConfig.model_validate({
            "command": SNOOP, "hypotheses": [{"name": "b", "ref": "fix/a"}, {"name": "h", "ref": "HEAD"}]
        }),
        RunOptions(repo=clone, logs_dir=tmp_path / "logs"),
    )  # fmt: skip
    by = {r.name: r for r in report.results}
    assert by["b"].status is Status.PASSED, by["b"].error
    assert ran(by["b"].output_tail) == (origin["fix/a"], "fix a")
    assert ran(by["h"].output_tail) == (origin["main7"], "main 7")
    for result in report.results:
        assert TOKEN not in Path(result.log_path or "").read_text()
        assert "EXTRAHEADER-RC 1" in result.output_tail
    assert snapshot(clone) == before


def test_cli_on_a_shallow_clone_says_what_it_fetched(
    origin: dict[str, str], tmp_path: Path, runner_temp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from runner.cli import main

    clone = shallow_clone(origin["url"], tmp_path / "clone")
    cfg = tmp_path / "wr.yml"
    cfg.write_text(yaml.safe_dump({"command": PROBE, "hypotheses": [{"name": "b", "ref": "origin/fix/a"}]}))
    assert (
        main(["test", "--config", str(cfg), "--repo", str(clone), "--logs-dir", str(tmp_path / "logs")]) == 0
    )
    assert "fetched from origin: origin/fix/a" in capsys.readouterr().err
