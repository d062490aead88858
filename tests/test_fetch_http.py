"""Fetching over smart HTTP (protocol v2), as from github.com: `git http-backend` behind a loopback server.

The server demands the header actions/checkout persists (`http.<url>.extraheader: AUTHORIZATION: basic
...`) and logs every request, so the test counts the runner's connections: one `ls-remote` and one
`fetch` for the whole run, whatever the number of missing refs.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runner import RunnerConfig, RunOptions, Status, run_config

from .conftest import git
from .test_fetch_refs import PROBE, SNOOP, origin, ran, shallow_clone, snapshot  # noqa: F401 - fixture

TOKEN = "ghs_httpTOKENfor0123456789abcdefABC"
HEADER = "basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
HTTP_BACKEND = Path(subprocess.run(["git", "--exec-path"], capture_output=True, text=True).stdout.strip()) / (
    "git-http-backend"
)


class GitHTTPServer(ThreadingHTTPServer):
    project_root: Path
    log: list[str]
    require: str | None
    # With stall_posts, the v2 `fetch` command is held until the server shuts down.
    stall_posts: bool = False
    stalled: threading.Event
    release: threading.Event


class _Backend(BaseHTTPRequestHandler):
    server: GitHTTPServer

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        if (
            self.server.require
            and self.headers.get("Authorization", "").lower() != self.server.require.lower()
        ):
            self.server.log.append(f"401 {self.command} {path}")
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.server.log.append(f"{self.command} {path}?{query} [{self.headers.get('Git-Protocol', '')}]")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        compressed = self.headers.get("Content-Encoding", "") == "gzip"
        if self.server.stall_posts and (b"command=fetch" in body or compressed):
            self.server.stalled.set()  # the fetch command itself (ls-refs went through)
            self.server.release.wait(60)
            return
        env = {
            "PATH": os.environ.get("PATH", ""),
            "GIT_PROJECT_ROOT": str(self.server.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        out = subprocess.run(
            [str(HTTP_BACKEND)], input=body, env=env, capture_output=True, check=False
        ).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = 200
        headers: list[tuple[str, str]] = []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _serve
    do_POST = _serve

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_origin(origin: dict[str, str], tmp_path: Path) -> Iterator[GitHTTPServer]:  # noqa: F811
    server = GitHTTPServer(("127.0.0.1", 0), _Backend)
    server.project_root = tmp_path
    server.log = []
    server.require = None
    server.stalled, server.release = threading.Event(), threading.Event()
    git(tmp_path / "origin.git", "config", "http.receivepack", "false")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def url_of(server: GitHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/origin.git"


def connections(log: list[str]) -> int:
    """Each git command that talks to the server starts with one GET of info/refs."""
    return sum(1 for line in log if line.startswith("GET ") and "/info/refs?service=git-upload-pack" in line)


def test_one_ls_remote_and_one_fetch_over_smart_http_with_the_checkouts_credentials(
    origin: dict[str, str],  # noqa: F811
    http_origin: GitHTTPServer,
    tmp_path: Path,
    runner_temp: Path,
) -> None:
    url = url_of(http_origin)
    clone = shallow_clone(url, tmp_path / "clone")
    # What actions/checkout persists, scoped to this server; from now on the server demands it.
    git(clone, "config", "--local", f"http.http://127.0.0.1:{http_origin.server_address[1]}/.extraheader",
        f"AUTHORIZATION: {HEADER}")  # fmt: skip
    http_origin.require = HEADER
    http_origin.log.clear()
    before = snapshot(clone)
    hypotheses = {
        "branch": ("fix/a", origin["fix/a"], "fix a"),
        "remote-branch": ("origin/fix/fail", origin["fix/fail"], "fail"),
        "tag": ("v1", origin["main1"], "main 1"),
        "pull": ("refs/pull/7/head", origin["pr7"], "pull 7"),
        "sha": (origin["main4"], origin["main4"], "main 4"),
    }
    cfg = RunnerConfig.model_validate({
        "command": SNOOP,
        "hypotheses": [{"name": n, "ref": r} for n, (r, _, _) in hypotheses.items()],
    })  # fmt: skip
    report = run_config(cfg, RunOptions(repo=clone, logs_dir=tmp_path / "logs"))
    by = {r.name: r for r in report.results}
    for name, (_, sha, which) in hypotheses.items():
        assert by[name].commit == sha, (name, by[name].error)
        assert ran(by[name].output_tail) == (sha, which), name
        log_text = Path(by[name].log_path or "").read_text()
        assert TOKEN not in log_text and HEADER not in log_text and "EXTRAHEADER-RC 1" in log_text, name
    assert not any(line.startswith("401") for line in http_origin.log), http_origin.log
    assert connections(http_origin.log) == 2, http_origin.log  # ls-remote + one fetch
    assert all("[version=2]" in line for line in http_origin.log), http_origin.log  # as github.com speaks
    assert snapshot(clone) == before


def test_over_http_without_credentials_the_error_says_so(
    origin: dict[str, str],  # noqa: F811
    http_origin: GitHTTPServer,
    tmp_path: Path,
    runner_temp: Path,
) -> None:
    clone = shallow_clone(url_of(http_origin), tmp_path / "clone")
    http_origin.require = HEADER
    cfg = RunnerConfig.model_validate({"command": PROBE, "hypotheses": [{"name": "b", "ref": "fix/a"}]})
    report = run_config(cfg, RunOptions(repo=clone, logs_dir=tmp_path / "logs"))
    assert report.results[0].status is Status.ERROR
    error = report.results[0].error or ""
    assert "needs credentials for origin and none were configured or they were refused" in error, error


def test_sigterm_during_a_slow_fetch_stops_at_once_and_leaves_nothing(
    origin: dict[str, str],  # noqa: F811
    http_origin: GitHTTPServer,
    tmp_path: Path,
    runner_temp: Path,
) -> None:
    """GitHub allows a cancelled step 7.5 s: a fetch stuck on the network must not hold the cleanup."""
    import json
    import signal
    import sys
    import time

    import yaml

    from .test_worktrees_and_cli import SIGNAL_SCRIPT

    clone = shallow_clone(url_of(http_origin), tmp_path / "clone")
    before = snapshot(clone)
    http_origin.stall_posts = True  # the server accepts the fetch and never answers
    cfg = {"command": PROBE, "hypotheses": [{"name": "b", "ref": "fix/a"}, {"name": "h", "ref": "HEAD"}]}
    (tmp_path / "wr.yml").write_text(yaml.safe_dump(cfg))
    results = tmp_path / "results.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGNAL_SCRIPT, "test", "--config", str(tmp_path / "wr.yml"),
         "--repo", str(clone), "--results-json", str(results)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "RUNNER_TEMP": str(runner_temp)},
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not http_origin.stalled.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert http_origin.stalled.is_set(), "the fetch never reached the server"
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    elapsed = time.monotonic() - signalled
    assert proc.returncode == 143, err
    assert elapsed < 7.5, elapsed  # GitHub's window, not a performance figure
    data = json.loads(results.read_text())
    assert {r["name"]: r["status"] for r in data["results"]} == {"b": "cancelled", "h": "cancelled"}
    assert snapshot(clone) == before
    assert git(clone, "for-each-ref", "refs/worktree-runner/") == ""
    assert [p.name for p in runner_temp.iterdir() if "logs" not in p.name] == []
