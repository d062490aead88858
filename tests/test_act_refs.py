"""The README's pull-request check (tests/fixtures/workflows/pr-check-act.yml) run for real with act.

The repository act runs in is a depth-1, single-branch clone (what actions/checkout leaves; act skips
the checkout step and copies this tree, ``.git`` included) of a bare origin that ``git http-backend``
serves over smart HTTP on the docker0 address, so the action's container fetches from it as it would from
github.com. The event is a pull_request whose base is the checked-out commit and whose head is only on
the origin (as ``refs/pull/7/head``). Hypotheses name the head SHA, the pull-request ref, another branch
and ``origin/<branch>``; the server's log shows one ``ls-remote`` and one ``fetch``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .conftest import git
from .docker_support import REPO_ROOT
from .test_act import JOB_IMAGE, require_act, snapshot_repository, step_lines
from .test_docker_openhands import docker_bridge_ip
from .test_fetch_http import GitHTTPServer, _Backend, connections

pytestmark = pytest.mark.docker

WORKFLOW = "tests/fixtures/workflows/pr-check-act.yml"
CHECK = "import sys\nverdict = open('VERDICT').read().strip()\nprint(verdict)\nsys.exit(verdict != 'pass')\n"


def commit_verdict(repo: Path, verdict: str, message: str) -> str:
    (repo / "VERDICT").write_text(verdict + "\n")
    (repo / "BRANCH.txt").write_text(message + "\n")  # every commit differs
    git(repo, "add", "VERDICT", "BRANCH.txt", "pr_check.py")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def test_readme_pr_check_with_a_shallow_checkout(tmp_path: Path) -> None:
    act = require_act()
    seed = tmp_path / "seed"
    snapshot_repository(REPO_ROOT, seed)
    (seed / "pr_check.py").write_text(CHECK)
    base = commit_verdict(seed, "pass", "base passes")
    git(seed, "checkout", "-q", "-b", "fix/fail")
    commit_verdict(seed, "fail", "a branch that fails")
    git(seed, "checkout", "-q", "-b", "fix/pass", "main")
    pass_sha = commit_verdict(seed, "pass", "a branch that passes")
    git(seed, "checkout", "-q", "-b", "pr7", "main")
    head = commit_verdict(seed, "pass", "the pull request")
    served = tmp_path / "served"
    served.mkdir()
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(served / "origin.git"))
    git(
        seed, "push", "-q", str(served / "origin.git"), "main", "fix/fail", "fix/pass", "pr7:refs/pull/7/head"
    )

    server = GitHTTPServer((docker_bridge_ip(), 0), _Backend)
    server.project_root, server.log, server.require = served, [], None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://{docker_bridge_ip()}:{server.server_address[1]}/origin.git"
        work = tmp_path / "work"
        git(tmp_path, "clone", "-q", "--depth", "1", "--single-branch", "--no-tags", url, str(work))
        assert git(work, "rev-parse", "HEAD") == base
        server.log.clear()
        event = tmp_path / "event.json"
        event.write_text(json.dumps({
            "number": 7,
            "pull_request": {
                "number": 7, "base": {"sha": base, "ref": "main"}, "head": {"sha": head, "ref": "pr7"}
            },
        }))  # fmt: skip
        argv = [act, "pull_request", "-W", WORKFLOW, "-e", str(event), "-P", f"ubuntu-latest={JOB_IMAGE}",
                "--pull=false"]  # fmt: skip
        started = time.monotonic()
        proc = subprocess.Popen(argv, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            out, _ = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)
            out, _ = proc.communicate(timeout=60)
            pytest.fail(f"act did not finish:\n{out.decode(errors='replace')[-5000:]}")
        log = list(server.log)
    finally:
        server.shutdown()
        server.server_close()
    output = out.decode("utf-8", errors="replace")
    print(f"\n[act] pr-check workflow: exit {proc.returncode} in {time.monotonic() - started:.1f} s")
    assert proc.returncode == 0, output[-8000:]
    lines = step_lines(output)
    assert "pr-check-outputs conclusion=success passed=4 failed=1" in lines, output[-8000:]
    statuses = next(line for line in lines if line.startswith("pr-check-statuses "))
    assert statuses == "pr-check-statuses " + ",".join(
        [
            f"baseline=passed@{base[:12]}",
            f"this-pr=passed@{head[:12]}",
            f"pull-ref=passed@{head[:12]}",
            f"other-branch=failed@{git(seed, 'rev-parse', 'fix/fail')[:12]}",
            f"remote-branch=passed@{pass_sha[:12]}",
        ]
    ), output[-8000:]
    assert connections(log) == 2, log  # the action's ls-remote and its one fetch
