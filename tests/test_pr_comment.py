"""The pull-request comment, against a stand-in GitHub REST API on 127.0.0.1 (real HTTP, real
PyGithub): found again by its marker and edited in place, never duplicated, within 65,536
characters, skipped for forks and read-only tokens, rate limits waited out only when short.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.engine import signals
from runner.github import ActionsLog, post_summary_comment, render_summary
from runner.github.pr_comment import COMMENT_MAX_CHARS, ClientSettings, comment_marker, render_comment

from .conftest import PY, REPO_ROOT
from .github_api_server import BOT_LOGIN, FakeGitHub
from .github_parsers import ActionCommand, CommandProcessor

WRITE_TOKEN = "ghs_writeTOKEN0123456789abcdefghijklmnop"
READ_TOKEN = "ghs_readTOKEN0123456789abcdefghijklmnopq"
HEAD_SHA = "c0ffee" + "0" * 34
COMMENTS = r"/repos/[^/]+/[^/]+/issues/\d+/comments"
# No throttling and no back-off between attempts; rate-limit waits stay as the server asks.
FAST = ClientSettings(seconds_between_requests=None, seconds_between_writes=None, backoff_factor=0)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", errors="surrogatepass")) // 2


def results_doc(*statuses: str, tail: str = "", name_prefix: str = "h") -> dict[str, Any]:
    entries = [
        {"name": f"{name_prefix}{i}", "status": status, "exit_code": 0 if status == "passed" else 1,
         "duration_s": 1.5, "ref": "main", "commit": HEAD_SHA, "log_path": None,
         "output_tail": tail or f"output of {name_prefix}{i}\n", "error": None}
        for i, status in enumerate(statuses)
    ]  # fmt: skip
    failing = sum(1 for s in statuses if s != "passed")
    return {
        "schema": 1, "conclusion": "failure" if failing else "success",
        "passed": len(statuses) - failing, "failed": failing, "timed_out": 0, "errors": 0, "cancelled": 0,
        "best": None, "duration_s": 3.0, "results": entries,
    }  # fmt: skip


def pull_request_payload(api: FakeGitHub, number: int, *, head_repo: str | None = None) -> dict[str, Any]:
    head_full = api.full_name if head_repo is None else head_repo
    return {
        "action": "synchronize",
        "number": number,
        "pull_request": {
            "number": number,
            "head": {
                "sha": HEAD_SHA,
                "ref": "feature",
                "repo": {"full_name": head_full} if head_full else None,
            },
            "base": {"sha": "b" * 40, "ref": "main", "repo": {"full_name": api.full_name}},
        },
        "repository": {"full_name": api.full_name},
    }


class Setup:
    def __init__(self, api: FakeGitHub, tmp_path: Path) -> None:
        self.api = api
        self.tmp_path = tmp_path

    def env(self, event: str, payload: dict[str, Any] | None, **extra: str) -> dict[str, str]:
        env = {
            "GITHUB_EVENT_NAME": event,
            "GITHUB_REPOSITORY": self.api.full_name,
            "GITHUB_API_URL": self.api.api_url,
            "GITHUB_SERVER_URL": self.api.web_url,
            "GITHUB_WORKFLOW": "CI",
            "GITHUB_JOB": "hypotheses",
            "GITHUB_RUN_ID": "4242",
        }
        if payload is not None:
            path = self.tmp_path / f"event-{len(list(self.tmp_path.glob('event-*')))}.json"
            path.write_text(json.dumps(payload))
            env["GITHUB_EVENT_PATH"] = str(path)
        env.update(extra)
        return env

    def pr_env(self, number: int = 7, **extra: str) -> dict[str, str]:
        return self.env("pull_request", pull_request_payload(self.api, number), **extra)

    def post(
        self,
        results: dict[str, Any],
        env: dict[str, str],
        *,
        token: str | None = WRITE_TOKEN,
        settings: ClientSettings = FAST,
    ) -> tuple[str, list[ActionCommand], str]:
        out = io.StringIO()
        outcome = post_summary_comment(results, ActionsLog(out), token=token, env=env, settings=settings)
        processor = CommandProcessor()
        processor.feed(out.getvalue())
        return outcome, processor.executed, out.getvalue()


@pytest.fixture(params=["", "/api/v3"], ids=["github.com", "ghes"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    api = FakeGitHub(prefix=request.param)
    api.add_token(WRITE_TOKEN, access="write")
    api.add_token(READ_TOKEN, access="read")
    api.add_pull(7, head_sha=HEAD_SHA)
    with api.serve():
        yield Setup(api, tmp_path)


@pytest.fixture
def gh(tmp_path: Path) -> Iterator[Setup]:
    """github.com layout only, for tests where the prefix does not matter."""
    api = FakeGitHub()
    api.add_token(WRITE_TOKEN, access="write")
    api.add_token(READ_TOKEN, access="read")
    api.add_pull(7, head_sha=HEAD_SHA)
    with api.serve():
        yield Setup(api, tmp_path)


def marked(api: FakeGitHub, number: int = 7) -> list[dict[str, Any]]:
    marker = comment_marker("CI", "hypotheses")
    return [c for c in api.comments(number) if c["body"].startswith(marker)]


def kinds(commands: list[ActionCommand]) -> list[str]:
    return [c.command for c in commands]


# ---- rendering ------------------------------------------------------------------------------


def test_marker_is_a_hash_of_workflow_and_job_only() -> None:
    a = comment_marker("CI", "test")
    assert a == comment_marker("CI", "test")
    assert a != comment_marker("CI", "lint") and a != comment_marker("CI2", "test")
    hostile = comment_marker("--> <script>", "job\n-->")
    assert hostile.count("-->") == 1 and "script" not in hostile
    assert hostile.startswith("<!-- worktree-runner:v1 id=") and len(hostile) == len(a)


def test_render_summary_max_chars_keeps_byte_mode_and_fits_characters() -> None:
    doc = results_doc(*(["failed"] * 40), tail="💥 boom ✅\n" * 3000)
    assert render_summary(doc) == render_summary(doc, max_bytes=1_000_000)  # the default is unchanged
    for limit in (65_536, 20_000, 3_000, 400):
        text = render_summary(doc, max_chars=limit)
        assert utf16_len(text) <= limit and len(text) <= limit
    # Characters, not bytes: non-ASCII text that fits in characters is not cut to a byte count.
    small = results_doc("failed", tail="é" * 5000)
    assert "é" * 5000 in render_summary(small, max_chars=65_536)
    assert "é" * 5000 not in render_summary(small, max_bytes=8_000)


def test_comment_body_degrades_in_stages_to_the_limit() -> None:
    marker = comment_marker("CI", "hypotheses")
    small = render_comment(results_doc("passed", "failed"), marker=marker, footer="\nfooter\n")
    assert small.startswith(marker + "\n## worktree-runner") and small.endswith("\nfooter\n")
    assert "output of h1" in small  # full tails while they fit

    tails = render_comment(results_doc(*(["failed"] * 30), tail="🚫 line\n" * 4000), marker=marker)
    assert utf16_len(tails) <= COMMENT_MAX_CHARS
    assert "not shown" in tails and "| ❌ failed | h29 |" in tails  # whole table, some tails

    huge = render_comment(results_doc(*(["failed"] * 3000), tail="x" * 65_536), marker=marker, footer="\nf\n")
    assert utf16_len(huge) <= COMMENT_MAX_CHARS and huge.startswith(marker) and huge.endswith("\nf\n")
    assert "Summary truncated:" in huge and "of 3000 hypotheses shown" in huge


# ---- create, update, find ---------------------------------------------------------------------


def test_created_then_edited_in_place_never_duplicated(setup: Setup) -> None:
    api = setup.api
    env = setup.pr_env()
    outcome, commands, out = setup.post(results_doc("passed", "failed"), env)
    assert outcome == "created", out
    assert kinds(commands) == []  # success is a plain log line, not an annotation
    (first,) = marked(api)
    assert "| ❌ failed | h1 |" in first["body"] and "commit `c0ffee0`" in first["body"]
    assert f"{api.web_url}/{api.full_name}/actions/runs/4242" in first["body"]

    outcome, _, out = setup.post(results_doc("passed", "passed"), env)
    assert outcome == "updated", out
    (second,) = marked(api)
    assert second["id"] == first["id"] and "❌" not in second["body"].split("<sub>")[0]
    assert len(api.made("POST", COMMENTS)) == 1
    (patch,) = api.made("PATCH", r"/repos/octo-org/demo/issues/comments/\d+")
    assert patch.route.endswith(f"/{first['id']}") and patch.body == {"body": second["body"]}
    # Token in the Authorization header of every request, never in the log; GHES prefix kept.
    assert all(r.authorization in (f"token {WRITE_TOKEN}", f"Bearer {WRITE_TOKEN}") for r in api.requests)
    assert all(r.path.startswith(api.prefix + "/repos/") for r in api.requests)
    assert WRITE_TOKEN not in out


def test_marker_found_on_a_later_page_and_a_bot_comment_preferred(gh: Setup) -> None:
    api = gh.api
    marker = comment_marker("CI", "hypotheses")
    for i in range(150):
        api.add_comment(7, f"comment {i}")
    impostor = api.add_comment(7, marker + "\ncopied by a user", login="mallory")  # page 2, older than ours
    api.add_comment(7, comment_marker("CI", "other-job") + "\nanother job's comment", login=BOT_LOGIN,
                    user_type="Bot")  # fmt: skip
    for i in range(60):
        api.add_comment(7, f"more {i}")
    ours = api.add_comment(7, marker + "\nold results", login=BOT_LOGIN, user_type="Bot")  # page 3

    outcome, _, _ = gh.post(results_doc("passed"), gh.pr_env())
    assert outcome == "updated"
    pages = sorted(r.query.get("page", "1") for r in api.made("GET", COMMENTS))
    assert pages == ["1", "2", "3"] and all(r.query["per_page"] == "100" for r in api.made("GET", COMMENTS))
    assert not api.made("POST", COMMENTS)
    bodies = {c["id"]: c["body"] for c in api.comments(7)}
    assert "| ✅ passed | h0 |" in bodies[ours] and bodies[impostor] == marker + "\ncopied by a user"
    assert sum(1 for b in bodies.values() if "| ✅ passed | h0 |" in b) == 1


def test_a_quote_of_the_marker_is_not_our_comment(gh: Setup) -> None:
    marker = comment_marker("CI", "hypotheses")
    quote = gh.api.add_comment(7, f"> {marker}\n> ## worktree-runner\n\nwhy did h1 fail?")
    assert gh.post(results_doc("passed"), gh.pr_env())[0] == "created"
    assert gh.api.comments(7)[0]["id"] == quote and gh.api.comments(7)[0]["body"].startswith("> ")
    assert len(marked(gh.api)) == 1


def test_each_job_has_its_own_comment(gh: Setup) -> None:
    payload = pull_request_payload(gh.api, 7)
    assert gh.post(results_doc("passed"), gh.env("pull_request", payload))[0] == "created"
    assert gh.post(results_doc("passed"), gh.env("pull_request", payload, GITHUB_JOB="lint"))[0] == "created"
    assert gh.post(results_doc("failed"), gh.env("pull_request", payload))[0] == "updated"
    assert len(gh.api.comments(7)) == 2


def test_oversized_results_are_posted_within_the_limit(gh: Setup) -> None:
    doc = results_doc(*(["failed"] * 500), tail="💥 " + "y" * 70_000)
    outcome, _, _ = gh.post(doc, gh.pr_env())
    assert outcome == "created"  # the stand-in answers 422 above 65,536 characters
    (post,) = gh.api.made("POST", COMMENTS)
    assert utf16_len(post.body["body"]) <= COMMENT_MAX_CHARS
    assert "hypotheses shown" in post.body["body"] or "not shown" in post.body["body"]


def test_known_secrets_are_redacted_from_the_body(gh: Setup) -> None:
    doc = results_doc("failed", tail=f"Authorization: token {WRITE_TOKEN}\nkey=sk-openhands-secret\n")
    env = gh.pr_env(**{"INPUT_OPENHANDS-API-KEY": "sk-openhands-secret"})
    assert gh.post(doc, env)[0] == "created"
    body = gh.api.comments(7)[0]["body"]
    assert WRITE_TOKEN not in body and "sk-openhands-secret" not in body and "token ***" in body


# ---- which pull request -----------------------------------------------------------------------


@pytest.mark.parametrize("head_repo", ["someone/demo-fork", ""], ids=["fork", "deleted-fork"])
def test_pull_request_from_a_fork_is_skipped_without_a_request(gh: Setup, head_repo: str) -> None:
    env = gh.env("pull_request", pull_request_payload(gh.api, 7, head_repo=head_repo))
    outcome, commands, _ = gh.post(results_doc("passed"), env)
    assert outcome.startswith("skipped: pull request #7 comes from a fork")
    assert kinds(commands) == ["notice"] and "fork" in commands[0].data
    assert gh.api.requests == []


def test_pull_request_target_from_a_fork_comments(gh: Setup) -> None:
    # pull_request_target runs with the base repository's (writable) token.
    env = gh.env("pull_request_target", pull_request_payload(gh.api, 7, head_repo="someone/demo-fork"))
    assert gh.post(results_doc("passed"), env)[0] == "created"


@pytest.mark.parametrize(
    ("event", "payload", "reason"),
    [
        ("push", {"ref": "refs/heads/main", "after": HEAD_SHA}, "no pull request in a push event"),
        ("issue_comment", {"issue": {"number": 3}}, "issue #3 is not a pull request"),
        ("workflow_run", {"workflow_run": {"event": "push", "pull_requests": []}}, "triggered by 'push'"),
        ("pull_request", None, "GITHUB_EVENT_PATH is not set"),
    ],
)
def test_no_pull_request_context_is_a_notice(
    gh: Setup, event: str, payload: dict[str, Any] | None, reason: str
) -> None:
    outcome, commands, _ = gh.post(results_doc("passed"), gh.env(event, payload))
    assert outcome.startswith("skipped: ") and reason in outcome
    assert kinds(commands) == ["notice"] and gh.api.requests == []


def test_empty_token_is_skipped(gh: Setup) -> None:
    outcome, commands, _ = gh.post(results_doc("passed"), gh.pr_env(), token="")
    assert outcome == "skipped: the github-token input is empty" and kinds(commands) == ["notice"]


def test_issue_comment_on_a_pull_request(gh: Setup) -> None:
    payload = {"issue": {"number": 7, "pull_request": {"url": "x"}}, "comment": {"body": "/test"}}
    assert gh.post(results_doc("passed"), gh.env("issue_comment", payload))[0] == "created"
    assert len(marked(gh.api)) == 1


def test_workflow_run_uses_its_pull_request_entry(gh: Setup) -> None:
    payload = {"workflow_run": {"id": 99, "event": "pull_request", "head_sha": HEAD_SHA,
                                "pull_requests": [{"number": 7, "head": {"sha": HEAD_SHA}}]}}  # fmt: skip
    assert gh.post(results_doc("passed"), gh.env("workflow_run", payload))[0] == "created"
    (comment,) = marked(gh.api)
    assert "/actions/runs/99)" in comment["body"]  # links the run that produced the results


def test_workflow_run_for_a_fork_finds_the_pull_request_by_head(gh: Setup) -> None:
    gh.api.add_pull(8, head_sha="d" * 40, head_ref="patch-1", head_repo="forker/demo")
    gh.api.add_pull(9, head_sha="e" * 40, head_ref="patch-1", head_repo="other/demo")
    run = {"id": 100, "event": "pull_request", "head_sha": "d" * 40, "head_branch": "patch-1",
           "pull_requests": [], "head_repository": {"owner": {"login": "forker"}}}  # fmt: skip
    assert gh.post(results_doc("passed"), gh.env("workflow_run", {"workflow_run": run}))[0] == "created"
    (lookup,) = gh.api.made("GET", r"/repos/octo-org/demo/pulls")
    assert lookup.query["head"] == "forker:patch-1" and lookup.query["state"] == "open"
    assert len(marked(gh.api, 8)) == 1 and gh.api.comments(9) == []

    run["head_sha"] = "f" * 40  # the branch moved on: that pull request no longer matches
    outcome, commands, _ = gh.post(results_doc("passed"), gh.env("workflow_run", {"workflow_run": run}))
    assert outcome.startswith("skipped: no open pull request has head forker:patch-1")
    assert kinds(commands) == ["notice"]


# ---- refusals and failures --------------------------------------------------------------------


def test_read_only_token_is_a_notice_and_not_retried(gh: Setup) -> None:
    env = gh.pr_env()
    outcome, commands, out = gh.post(results_doc("passed"), env, token=READ_TOKEN)
    assert outcome.startswith("skipped: the token may not write pull-request comments (403 Resource not")
    assert kinds(commands) == ["notice"] and "pull-requests: write" in commands[0].data
    assert len(gh.api.made("POST", COMMENTS)) == 1 and gh.api.comments(7) == []
    assert READ_TOKEN not in out


def test_bad_token_is_a_warning_and_never_shown(gh: Setup) -> None:
    outcome, commands, out = gh.post(results_doc("passed"), gh.pr_env(), token="ghp_notAValidTokenAtAll0000")
    assert outcome == "failed: the github-token was refused (401 Bad credentials)"
    assert kinds(commands) == ["warning"] and "ghp_notAValidTokenAtAll0000" not in out


def test_missing_pull_request_is_a_warning(gh: Setup) -> None:
    outcome, commands, _ = gh.post(results_doc("passed"), gh.pr_env(31))
    assert outcome.startswith("failed: not found (404)") and kinds(commands) == ["warning"]


def test_unreachable_api_is_a_warning(gh: Setup) -> None:
    env = gh.env("pull_request", pull_request_payload(gh.api, 7), GITHUB_API_URL="http://127.0.0.1:9/api/v3")
    outcome, commands, _ = gh.post(results_doc("passed"), env, settings=ClientSettings(
        retries=1, seconds_between_requests=None, seconds_between_writes=None, backoff_factor=0))  # fmt: skip
    assert outcome.startswith("failed: ") and kinds(commands) == ["warning"]


def test_cancellation_signal_skips_the_comment(gh: Setup) -> None:
    signals._handler(signal.SIGTERM, None)  # what the installed handler records (cleared by conftest)
    outcome, _, _ = gh.post(results_doc("passed"), gh.pr_env())
    assert outcome == "skipped: the step is being cancelled" and gh.api.requests == []


# ---- rate limits --------------------------------------------------------------------------------


def test_secondary_rate_limit_with_retry_after_is_waited_out(setup: Setup) -> None:
    api = setup.api
    api.secondary_rate_limit("GET", COMMENTS, retry_after=1)
    api.secondary_rate_limit("POST", COMMENTS, retry_after=1)
    outcome, commands, _ = setup.post(results_doc("passed"), setup.pr_env())
    assert outcome == "created" and kinds(commands) == []
    assert len(api.made("GET", COMMENTS)) == 2 and len(api.made("POST", COMMENTS)) == 2
    assert len(marked(api)) == 1  # the refused POST created nothing; the retry created one


def test_429_and_primary_limit_with_imminent_reset_are_retried(gh: Setup) -> None:
    gh.api.fail("GET", COMMENTS, 429, message="Too Many Requests", headers={"retry-after": "1"})
    gh.api.primary_rate_limit("POST", COMMENTS, reset_in=0)
    outcome, _, _ = gh.post(results_doc("passed"), gh.pr_env())
    assert outcome == "created"
    assert len(gh.api.made("GET", COMMENTS)) == 2 and len(gh.api.made("POST", COMMENTS)) == 2


def test_secondary_rate_limit_without_retry_after_waits_the_configured_time(gh: Setup) -> None:
    gh.api.secondary_rate_limit("POST", COMMENTS, retry_after=None)
    settings = ClientSettings(
        secondary_rate_wait=0.2, seconds_between_requests=None, seconds_between_writes=0
    )
    outcome, _, _ = gh.post(results_doc("passed"), gh.pr_env(), settings=settings)
    assert outcome == "created" and len(gh.api.made("POST", COMMENTS)) == 2


@pytest.mark.parametrize("kind", ["retry-after", "primary-reset"])
def test_rate_limit_longer_than_the_bound_gives_up_at_once(gh: Setup, kind: str) -> None:
    if kind == "retry-after":
        gh.api.secondary_rate_limit("POST", COMMENTS, retry_after=3600, times=10)
    else:
        gh.api.primary_rate_limit("POST", COMMENTS, reset_in=3600, times=10)
    outcome, commands, _ = gh.post(results_doc("passed"), gh.pr_env())
    assert outcome.startswith("failed: rate limited: GitHub asks to wait")
    assert "at most 60 s" in outcome and kinds(commands) == ["warning"]
    assert len(gh.api.made("POST", COMMENTS)) == 1 and gh.api.comments(7) == []


def test_rate_limit_retries_are_bounded_in_number(gh: Setup) -> None:
    gh.api.secondary_rate_limit("POST", COMMENTS, retry_after=0, times=10)
    settings = ClientSettings(retries=2, seconds_between_requests=None, seconds_between_writes=None)
    outcome, commands, _ = gh.post(results_doc("passed"), gh.pr_env(), settings=settings)
    assert outcome.startswith("failed: GitHub answered 403: You have exceeded a secondary rate limit")
    assert len(gh.api.made("POST", COMMENTS)) == 3 and kinds(commands) == ["warning"]


def test_server_error_retries_reads_but_never_repeats_a_post(gh: Setup) -> None:
    gh.api.fail("GET", COMMENTS, 502, message="Server Error")
    gh.api.fail("POST", COMMENTS, 502, message="Server Error")
    outcome, commands, _ = gh.post(results_doc("passed"), gh.pr_env())
    assert len(gh.api.made("GET", COMMENTS)) == 2  # the read was retried
    assert len(gh.api.made("POST", COMMENTS)) == 1  # the write was not: it might have succeeded
    assert outcome == "failed: GitHub answered 502: Server Error" and kinds(commands) == ["warning"]


# ---- through the action's entrypoint ------------------------------------------------------------


def _step_env(workspace: Path, files: Path, runner_temp: Path, api: FakeGitHub, event_path: Path,
              token: str) -> dict[str, str]:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_"))}
    action = yaml.safe_load((REPO_ROOT / "action.yml").read_text())
    for name, spec in action["inputs"].items():
        default = str(spec.get("default", ""))
        env["INPUT_" + name.upper()] = "" if "${{" in default else default
    env.update({
        "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(workspace), "RUNNER_TEMP": str(runner_temp),
        "GITHUB_OUTPUT": str(files / "set_output"), "GITHUB_STEP_SUMMARY": str(files / "step_summary"),
        "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_REPOSITORY": api.full_name, "GITHUB_API_URL": api.api_url, "GITHUB_SERVER_URL": api.web_url,
        "GITHUB_WORKFLOW": "CI", "GITHUB_JOB": "hypotheses", "GITHUB_RUN_ID": "4242",
        "INPUT_COMMENT-ON-PR": "true", "INPUT_GITHUB-TOKEN": token, "INPUT_TEST-COMMAND": f"{PY} check.py",
        "INPUT_HYPOTHESES": "- {name: main, ref: main}\n- {name: broken, ref: broken}\n",
        "INPUT_SUCCEED-IF": "any",
    })  # fmt: skip
    return env


def test_action_entrypoint_creates_then_updates_the_comment(
    repo: Path, tmp_path: Path, runner_temp: Path
) -> None:
    api = FakeGitHub(prefix="/api/v3")
    api.add_token(WRITE_TOKEN, access="write")
    api.add_token(READ_TOKEN, access="read")
    api.add_pull(7, head_sha=HEAD_SHA)
    event = tmp_path / "event.json"
    event.write_text(json.dumps(pull_request_payload(api, 7)))
    files = tmp_path / "file_commands"
    files.mkdir()

    def step(token: str) -> tuple[subprocess.CompletedProcess[str], list[ActionCommand]]:
        for name in ("set_output", "step_summary"):
            (files / name).write_text("")
        proc = subprocess.run(
            [PY, str(REPO_ROOT / "entrypoint.py")], cwd=repo, capture_output=True, text=True, timeout=120,
            env=_step_env(repo, files, runner_temp, api, event, token),
        )  # fmt: skip
        processor = CommandProcessor()
        processor.feed(proc.stdout)
        visible = proc.stdout.replace(f"::add-mask::{token}", "") + proc.stderr
        assert token not in visible
        return proc, processor.executed

    with api.serve():
        first, commands = step(WRITE_TOKEN)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "pull-request comment created on #7" in first.stdout
        assert not [c for c in commands if c.command in ("warning", "notice")]
        (created,) = marked(api)
        assert "| ✅ passed | main ⭐ |" in created["body"] and "| ❌ failed | broken |" in created["body"]
        assert "broken!" in created["body"]  # the failing hypothesis' output, as in the job summary
        assert "| ✅ passed | main" in (files / "step_summary").read_text()  # the job summary is written too

        second, _ = step(WRITE_TOKEN)
        assert second.returncode == 0 and "pull-request comment updated on #7" in second.stdout
        (updated,) = marked(api)
        assert updated["id"] == created["id"] and len(api.comments(7)) == 1
        assert len(api.made("POST", COMMENTS)) == 1 and len(api.made("PATCH", r".*/issues/comments/\d+")) == 1

        # A token without pull-requests: write: a notice, the step's result is untouched.
        third, commands = step(READ_TOKEN)
        assert third.returncode == 0
        notices = [c for c in commands if c.command == "notice"]
        assert len(notices) == 1 and "Resource not accessible by integration" in notices[0].data
        assert "| ✅ passed | main" in (files / "step_summary").read_text()
        assert marked(api)[0]["body"] == updated["body"]
