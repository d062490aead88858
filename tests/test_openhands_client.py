"""The OpenHands client's own parts: task IDs, settings, the HTTP retry policy, verification.

The HTTP tests talk to a real HTTP server on 127.0.0.1 (a scripted stdlib server); verification runs
real pytest + coverage.py in real git worktrees.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.openhands import (
    InvalidTaskIdError,
    OpenHandsAuthError,
    OpenHandsError,
    OpenHandsSettings,
    OpenHandsUnavailableError,
    TaskRef,
    verify_generated_tests,
)
from runner.openhands.http import ApiClient, parse_retry_after

from .conftest import git, worktree_list
from .openhands_support.calc_project import FAILING, FULL, PARTIAL

UUID = "05966680-27ee-4eb8-a5af-d9f88f2d015c"
HEX = "49c4eeec4d1d4e118f5eb1ce921063b3"


def _ref(**kw: object) -> TaskRef:
    base: dict[str, object] = dict(
        backend="agent-server", id=UUID, module_path="src/calc.py", output_path="tests/test_calc.py",
        threshold=80.0, repo_dir=f"/tmp/wr/{UUID}", submitted_at=1700000000.5, base_commit="a" * 40,
    )  # fmt: skip
    base.update(kw)
    return TaskRef(**base)  # type: ignore[arg-type]


# -- task IDs ---------------------------------------------------------------------------------


def test_task_id_round_trips_and_names_backend_and_id() -> None:
    ref = _ref()
    text = ref.encode()
    assert text.startswith(f"oh1.agent-server.{UUID}.")
    assert TaskRef.parse(text) == ref
    cloud = _ref(
        backend="cloud", id=HEX, conversation_id="b" * 32, base_commit=None, repo_dir="/workspace/project"
    )
    assert TaskRef.parse(cloud.encode()) == cloud


safe_path = st.from_regex(r"[a-z][a-z0-9_]{0,8}(/[a-z][a-z0-9_]{0,8}){0,3}\.py", fullmatch=True)


@given(module=safe_path, output=safe_path, threshold=st.floats(0, 100), when=st.floats(0, 2e9))
def test_task_id_round_trip_property(module: str, output: str, threshold: float, when: float) -> None:
    ref = _ref(module_path=module, output_path=output, threshold=threshold, submitted_at=when)
    assert TaskRef.parse(ref.encode()) == ref


def _forge(payload: dict[str, object], backend: str = "agent-server", ident: str = UUID) -> str:
    raw = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    return f"oh1.{backend}.{ident}.{raw}"


GOOD = {"module_path": "m.py", "output_path": "t/test_m.py", "threshold": 80, "repo_dir": "/tmp/x",
        "submitted_at": 1.0}  # fmt: skip


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "not a worktree-runner task ID"),
        ("12345", "not a worktree-runner task ID"),
        (f"oh1.agent-server.{UUID}", "not a worktree-runner task ID"),
        (f"oh1.other.{UUID}.e30", "not a worktree-runner task ID"),
        ("oh1.agent-server.../../etc.e30", "not a worktree-runner task ID"),
        (f"oh1.agent-server.{UUID}.!!!", "not a worktree-runner task ID"),
        (f"oh1.agent-server.{UUID}.bm90IGpzb24", "damaged"),
        (_forge({**GOOD, "module_path": "../../etc/passwd"}), "module path"),
        (_forge({**GOOD, "output_path": "/etc/cron.d/x"}), "output path"),
        (_forge({**GOOD, "repo_dir": "/tmp/$(reboot)"}), "server directory"),
        (_forge({**GOOD, "repo_dir": "/tmp/../etc"}), "server directory"),
        (_forge({**GOOD, "threshold": 101}), "threshold"),
        (_forge({**GOOD, "threshold": True}), "wrong type"),
        (_forge({**GOOD, "url": "http://evil.example"}), "unknown fields: url"),
        (_forge({**GOOD, "base_commit": "HEAD; rm -rf /"}), "base commit"),
        (_forge(GOOD, ident=HEX), "malformed agent-server id"),
        (_forge(GOOD, backend="cloud", ident=UUID), "malformed cloud id"),
        (_forge({k: v for k, v in GOOD.items() if k != "repo_dir"}), "no repo_dir"),
        ("oh1.agent-server." + UUID + "." + "A" * 5000, "longer than"),
    ],
)
def test_task_id_rejects_anything_it_did_not_make(text: str, problem: str) -> None:
    with pytest.raises(InvalidTaskIdError, match=problem.replace("(", r"\(").replace("$", r"\$")):
        TaskRef.parse(text)


# -- settings ---------------------------------------------------------------------------------


def test_settings_from_env_with_github_defaults() -> None:
    env = {
        "OPENHANDS_API_URL": "http://127.0.0.1:9/", "OPENHANDS_API_KEY": "sekrit-key",
        "OPENHANDS_BACKEND": "agent-server", "OPENHANDS_LLM_MODEL": "openai/fake",
        "GITHUB_SERVER_URL": "https://github.example", "GITHUB_REPOSITORY": "acme/widgets",
        "GITHUB_SHA": "c" * 40, "GITHUB_HEAD_REF": "feature-x",
    }  # fmt: skip
    s = OpenHandsSettings.from_env(env)
    assert (s.backend, s.base_url, s.api_key, s.llm_model) == (
        "agent-server",
        "http://127.0.0.1:9",
        "sekrit-key",
        "openai/fake",
    )
    assert (s.repo_url, s.repo_ref, s.repository, s.branch) == (
        "https://github.example/acme/widgets.git", "c" * 40, "acme/widgets", "feature-x")  # fmt: skip
    assert "sekrit-key" not in repr(s)
    explicit = OpenHandsSettings.from_env(env, url="http://other:1", backend="cloud")
    assert (explicit.base_url, explicit.backend) == ("http://other:1", "cloud")
    assert OpenHandsSettings.from_env({}).url == "https://app.all-hands.dev"


@pytest.mark.parametrize(
    "env, problem",
    [
        ({"OPENHANDS_BACKEND": "lambda"}, "backend must be one of"),
        ({"OPENHANDS_BACKEND": "agent-server"}, "needs a URL"),
        ({"OPENHANDS_API_URL": "ftp://x"}, "http"),
        ({"OPENHANDS_API_URL": "http://user:pw@x"}, "credentials"),
        ({"OPENHANDS_REPO_REF": "--upload-pack=evil"}, "starts with '-'"),
    ],
)
def test_settings_reject_bad_values(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        OpenHandsSettings.from_env(env)


# -- HTTP retry policy, against a real server --------------------------------------------------


class _Scripted(BaseHTTPRequestHandler):
    script: ClassVar[list[tuple[int, dict[str, str], bytes]]] = []
    seen: ClassVar[list[tuple[str, str, dict[str, str]]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        self.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        status, headers, body = self.script.pop(0) if self.script else (200, {}, b'{"ok": true}')
        if status == 0:  # drop the connection without an answer
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[_Scripted]]]:
    handler = type("H", (_Scripted,), {"script": [], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _client(url: str, sleeps: list[float], **kw: object) -> ApiClient:
    settings = OpenHandsSettings(url=url, api_key="the-secret-key", **kw)  # type: ignore[arg-type]

    async def fake_sleep(seconds: float) -> None:  # records the policy's waits instead of waiting
        sleeps.append(seconds)

    return ApiClient(settings, {"Authorization": "Bearer the-secret-key"}, sleep=fake_sleep)


def _request(client: ApiClient, method: str = "GET", path: str = "/x") -> int:
    async def go() -> int:
        try:
            return (await client.request(method, path)).status_code
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_retries_5xx_and_429_honouring_retry_after(scripted: tuple[str, type[_Scripted]]) -> None:
    url, handler = scripted
    handler.script += [(503, {}, b"busy"), (429, {"Retry-After": "7"}, b""), (502, {}, b""), (200, {}, b"{}")]
    sleeps: list[float] = []
    assert _request(_client(url, sleeps, backoff=0.5, max_backoff=8.0)) == 200
    assert len(handler.seen) == 4
    assert sleeps[1] == 7.0  # Retry-After wins over backoff
    assert 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[2] <= 2.0  # full jitter under the exponential cap
    assert all(h.get("authorization") == "Bearer the-secret-key" for _, _, h in handler.seen)


def test_gives_up_after_the_retry_budget_without_leaking_the_key(
    scripted: tuple[str, type[_Scripted]],
) -> None:
    url, handler = scripted
    handler.script += [(500, {}, b"oops the-secret-key leaked in a body")] * 10
    sleeps: list[float] = []
    with pytest.raises(OpenHandsUnavailableError) as info:
        _request(_client(url, sleeps, retries=2))
    assert len(handler.seen) == 3 and len(sleeps) == 2
    assert (
        "HTTP 500" in str(info.value) and "the-secret-key" not in str(info.value) and "***" in str(info.value)
    )


def test_auth_errors_and_other_4xx_are_not_retried(scripted: tuple[str, type[_Scripted]]) -> None:
    url, handler = scripted
    handler.script += [(401, {}, b"")]
    with pytest.raises(OpenHandsAuthError, match="rejected the API key"):
        _request(_client(url, []))
    handler.script += [(422, {}, b'{"detail": "bad field"}')]
    with pytest.raises(OpenHandsError, match=r"HTTP 422.*bad field"):
        _request(_client(url, []))
    assert len(handler.seen) == 2


def test_retry_after_beyond_the_cap_fails_at_once(scripted: tuple[str, type[_Scripted]]) -> None:
    url, handler = scripted
    handler.script += [(429, {"Retry-After": "3600"}, b"")]
    with pytest.raises(OpenHandsUnavailableError, match="retry after 3600s"):
        _request(_client(url, [], max_retry_after=60))
    assert len(handler.seen) == 1


def test_connection_errors_are_retried_then_reported() -> None:
    sleeps: list[float] = []
    # A port nobody listens on: every attempt is refused.
    with pytest.raises(OpenHandsUnavailableError, match=r"ConnectError.*gave up after 3 attempt"):
        _request(_client("http://127.0.0.1:9", sleeps, retries=2))
    assert len(sleeps) == 2


def test_dropped_connection_is_retried(scripted: tuple[str, type[_Scripted]]) -> None:
    url, handler = scripted
    handler.script += [(0, {}, b""), (200, {}, b"{}")]
    assert _request(_client(url, [])) == 200
    assert len(handler.seen) == 2


def test_parse_retry_after() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = time.time()
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 30))
    assert 28 <= (parse_retry_after(date, now=now) or 0) <= 31


# -- verification: run the generated tests ourselves -------------------------------------------

def _verify(repo: Path, content: str, threshold: float = 80.0, module: str = "calc.py"):  # type: ignore[no-untyped-def]
    return asyncio.run(
        verify_generated_tests(
            repo,
            content=content.encode(),
            module_path=module,
            output_path="tests/test_calc.py",
            threshold=threshold,
        )
    )


def test_verification_passes_good_tests_with_measured_coverage(calc_repo: Path, runner_temp: Path) -> None:
    before = worktree_list(calc_repo)
    v = _verify(calc_repo, FULL)
    assert (v.tests_passed, v.coverage, v.reason) == (True, 100.0, None)
    assert "2 passed" in v.output_tail
    # Ran in a worktree that is gone again; the checkout itself was not touched.
    assert worktree_list(calc_repo) == before and list(runner_temp.iterdir()) == []
    assert not (calc_repo / "tests").exists()


def test_verification_reports_low_coverage_failing_and_empty_tests(
    calc_repo: Path, runner_temp: Path
) -> None:
    low = _verify(calc_repo, PARTIAL)
    assert low.tests_passed and low.coverage is not None and low.coverage < 80
    assert low.reason == f"coverage {low.coverage:.1f}% < 80% of calc.py"
    failing = _verify(calc_repo, FAILING)
    assert not failing.tests_passed and failing.reason == "the generated tests fail (pytest exit code 1)"
    assert "assert 3 == 4" in failing.output_tail
    empty = _verify(calc_repo, "# nothing here\n")
    assert empty.reason == "the generated file contains no tests (pytest collected nothing)"
    unrelated = _verify(calc_repo, "def test_x():\n    assert True\n")
    assert unrelated.coverage == 0.0 and "never imported calc.py" in (unrelated.reason or "")


def test_verification_of_a_package_measures_the_whole_package(calc_repo: Path, runner_temp: Path) -> None:
    pkg = calc_repo / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .a import one\n")
    (pkg / "a.py").write_text("def one():\n    return 1\n")
    (pkg / "b.py").write_text("def two():\n    return 2\n\n\ndef three():\n    return 3\n")
    git(calc_repo, "add", ".")
    git(calc_repo, "commit", "-q", "-m", "pkg")
    v = _verify(calc_repo, "from pkg import one\n\ndef test_one():\n    assert one() == 1\n", module="pkg")
    # b.py is never imported, yet it counts (as uncovered): 3 of 7 statements run.
    assert v.tests_passed and v.coverage == 42.86
    assert v.reason == "coverage 42.9% < 80% of pkg"


def test_generated_tests_run_without_our_secrets(
    calc_repo: Path, runner_temp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENHANDS_API_KEY", "oh-key")
    monkeypatch.setenv("INPUT_OPENHANDS-API-KEY", "oh-key")
    snoop = (
        "import os\nfrom calc import add, div\n\ndef test_no_keys():\n"
        "    assert add(1, 1) == 2 and div(2, 1) == 2\n"
        "    assert 'OPENHANDS_API_KEY' not in os.environ\n"
        "    assert not [k for k in os.environ if k.startswith('INPUT_')]\n"
    )
    v = _verify(calc_repo, snoop, threshold=0)
    assert v.tests_passed and v.reason is None, v.output_tail
