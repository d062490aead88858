"""The Docker action, run as the runner runs it, on a depth-1 checkout with persisted credentials.

The origin is served over smart HTTP (git http-backend) on the docker0 address and demands the header
the checkout persisted, as github.com demands the job token. The workspace belongs to uid 1001, the
container is root. Checked: missing refs are fetched (with the checkout's credentials) and each
hypothesis ran its own commit; no hypothesis can read the token through git or its environment; the
summary names the fetched refs and warns about the credentials on disk; the workspace's refs, config
and ownership are as before (fetched objects given back to uid 1001).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import git
from .docker_support import RUNNER_UID, BuildInfo, files_not_owned_by, make_github_dirs, remove_containers
from .test_docker_action import (  # noqa: F401 - the session-scoped image fixture
    Step,
    action_inputs,
    commands,
    host_git,
    image,
    leftover_worktree_dirs,
    run_step,
)
from .test_docker_openhands import docker_bridge_ip
from .test_fetch_http import GitHTTPServer, _Backend, connections
from .test_fetch_refs import SNOOP, origin  # noqa: F401 - fixture

pytestmark = pytest.mark.docker

TOKEN = "ghs_dockerJOBtoken0123456789abcdefXY"
HEADER = "basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
# SNOOP with the image's interpreter.
SNOOP_IN_IMAGE = ["python", *SNOOP[1:]]


@pytest.fixture
def served(origin: dict[str, str], tmp_path: Path) -> Iterator[GitHTTPServer]:  # noqa: F811
    server = GitHTTPServer((docker_bridge_ip(), 0), _Backend)
    server.project_root, server.log, server.require = tmp_path, [], None
    server.stalled, server.release = threading.Event(), threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def refs_and_config(workspace: Path) -> tuple[str, str]:
    return host_git(workspace, "for-each-ref"), (workspace / ".git" / "config").read_text()


def test_shallow_checkout_with_persisted_token_in_the_docker_action(
    image: BuildInfo,  # noqa: F811
    origin: dict[str, str],  # noqa: F811
    served: GitHTTPServer,
    tmp_path: Path,
) -> None:
    dirs = make_github_dirs(tmp_path / "gh")
    url = f"http://{docker_bridge_ip()}:{served.server_address[1]}/origin.git"
    git(
        dirs.workspace.parent,
        "clone",
        "-q",
        "--depth",
        "1",
        "--single-branch",
        "--no-tags",
        url,
        str(dirs.workspace),
    )
    git(dirs.workspace, "config", "--local", f"http.http://{docker_bridge_ip()}:{served.server_address[1]}/.extraheader",
        f"AUTHORIZATION: {HEADER}")  # fmt: skip
    served.require = HEADER
    step = Step(dirs, f"wr-refs-test-{secrets.token_hex(4)}")
    before = refs_and_config(dirs.workspace)
    served.log.clear()
    hypotheses = [
        {"name": "branch", "ref": "fix/a"},
        {"name": "pull", "ref": "refs/pull/7/head"},
        {"name": "older", "ref": "HEAD~2"},
        {"name": "here", "ref": "HEAD"},
    ]
    try:
        result = run_step(image, step, action_inputs(
            hypotheses=json.dumps([{**h, "command": SNOOP_IN_IMAGE} for h in hypotheses]),
        ))  # fmt: skip
    finally:
        remove_containers(step.label)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    doc = json.loads((dirs.workspace / ".worktree-runner" / "results.json").read_text())
    expected = {
        "branch": (origin["fix/a"], "fix a"),
        "pull": (origin["pr7"], "pull 7"),
        "older": (origin["main5"], "main 5"),
        "here": (origin["main7"], "main 7"),
    }
    for entry in doc["results"]:
        sha, which = expected[entry["name"]]
        assert entry["status"] == "passed" and entry["commit"] == sha, entry
        log = (dirs.workspace / entry["log_path"]).read_text()
        assert f"RAN {sha} {which}" in log
        assert "EXTRAHEADER-RC 1" in log
        assert TOKEN not in log and HEADER not in log, entry["name"]
    assert doc["fetched"] == {"remote": "origin", "refs": ["fix/a", "refs/pull/7/head", "HEAD~2"]}
    assert connections(served.log) == 3, served.log  # ls-remote, one fetch at depth 1, one at depth 3
    summary = result.summary
    warnings = [c for c in commands(result.stdout) if c.command == "warning"]
    assert any("persist-credentials: false" in c.data for c in warnings), warnings
    assert "Fetched from origin" in summary.replace("\\", ""), summary[-2000:]
    assert TOKEN not in result.stdout + result.stderr + summary
    assert refs_and_config(dirs.workspace) == before
    assert host_git(dirs.workspace, "for-each-ref", "refs/worktree-runner/") == ""
    assert files_not_owned_by(dirs.workspace, RUNNER_UID) == []
    assert leftover_worktree_dirs(dirs.runner_temp) == []
