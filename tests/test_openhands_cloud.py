"""The Cloud V1 backend end to end against the stand-in app server (tests/openhands_support/cloud_v1.py).

A real HTTP server on 127.0.0.1 speaks the documented V1 shapes (start task -> conversation -> events,
``/file``, ``git/diff``, sandboxes); nothing in it depends on time, so every scenario moves one step per
poll. The client is the real one (``OpenHandsTestGenerator.from_env``) with a real git repository as
the workspace; collect really runs the generated tests with pytest + coverage.py in a worktree. The
failure paths are the cloud's: a start task that ends in ERROR, an agent that errors or gets stuck, a
file that is not there, a sandbox that is gone or paused, rate limits and 503s on submit (and an answer
that is lost after the server acted on it), a wrong key.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.openhands import OpenHandsAuthError, OpenHandsTestGenerator, TaskRef
from runner.openhands.generation import collect

from .openhands_support.calc_project import FULL
from .openhands_support.cloud_v1 import CloudV1Server

REPOSITORY = "acme/calc"
REPO_DIR = "/workspace/project/calc"  # where the cloud sandbox checks REPOSITORY out
SUBMIT = "/api/v1/app-conversations"




def _unique(name: str) -> str:
    return f"tests/test_{name}_{uuid.uuid4().hex[:8]}.py"


def _generator(cloud: CloudV1Server, repo: Path, **env: str) -> OpenHandsTestGenerator:
    settings = {
        "OPENHANDS_BACKEND": "cloud",
        "OPENHANDS_API_URL": cloud.url,
        "OPENHANDS_API_KEY": cloud.api_key,
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_REF_NAME": "main",
        **env,
    }
    return OpenHandsTestGenerator.from_env(settings, workspace=repo, backoff=0.01)


def _collect(gen: OpenHandsTestGenerator, task_id: str) -> dict[str, Any]:
    return gen.get_test_generation_results_sync(task_id, timeout=10, poll_interval=0.05)


def _start_tasks(cloud: CloudV1Server) -> list[dict[str, Any]]:
    """Every start task the server holds, as its own search endpoint lists them."""
    answer = httpx.get(
        f"{cloud.url}/api/v1/app-conversations/start-tasks/search",
        headers={"Authorization": f"Bearer {cloud.api_key}"}, timeout=10,
    )  # fmt: skip
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def test_submit_look_and_collect_a_verified_file(cloud_server: CloudV1Server, calc_repo: Path) -> None:
    out = _unique("ok")
    cloud_server.add_scenario(
        out,
        start_statuses=("WORKING", "WAITING_FOR_SANDBOX", "PREPARING_REPOSITORY", "READY"),
        execution_statuses=("idle", "running", "finished"),
        files={out: FULL},
        finish_message="Wrote the tests; coverage 100%.",
    )
    gen = _generator(cloud_server, calc_repo)
    task_id = gen.submit_test_generation_task_sync("calc.py", out, coverage_threshold=90)
    ref = TaskRef.parse(task_id)
    assert (ref.backend, ref.repo_dir, ref.output_path, ref.threshold) == ("cloud", REPO_DIR, out, 90.0)
    assert cloud_server.start_task(ref.id).request["conversation_id"] == str(uuid.UUID(ref.conversation_id))

    # get_task_status makes one look and never waits: the start task moves one step per look.
    looks = []
    for _ in range(4):
        before = len(cloud_server.requests)
        state = gen.get_task_status_sync(task_id)
        looks.append((state["status"], state["agent_status"]))
        if state["status"] == "QUEUED":
            assert [r.path for r in cloud_server.requests[before:]] == [f"{SUBMIT}/start-tasks"]
    assert looks == [
        ("QUEUED", "WAITING_FOR_SANDBOX"),
        ("QUEUED", "PREPARING_REPOSITORY"),
        ("RUNNING", "running"),  # READY: the conversation exists, its first poll moves idle -> running
        ("COMPLETED", "finished"),  # the agent's word; only collect verifies
    ]

    result = _collect(gen, task_id)
    assert result["status"] == "COMPLETED" and result["success"] is True, result["reason"]
    assert (result["tests_passed"], result["coverage"], result["threshold"]) == (True, 100.0, 90.0)
    assert result["generated_file"] == out and (calc_repo / out).read_text() == FULL
    assert result["agent_message"] == "Wrote the tests; coverage 100%."
    conversation = cloud_server.conversation(ref.conversation_id or "")
    assert conversation.sandbox_status == "RUNNING"
    assert result["conversation_url"] == (
        f"{cloud_server.url}/runtime/{conversation.sandbox_id}/api/conversations/{conversation.id}"
    )
    assert "2 passed" in result["test_output"] and result["reason"] is None
    reads = cloud_server.requests_to(f"{SUBMIT}/{conversation.id}/file")
    assert [r.query["file_path"] for r in reads] == [[f"{REPO_DIR}/{out}"]]
    assert not cloud_server.requests_to("/git/diff")  # /file had it
    assert len(_start_tasks(cloud_server)) == 1


def test_the_request_has_the_documented_shape_and_the_key_travels_only_as_bearer(
    cloud_server: CloudV1Server, calc_repo: Path
) -> None:
    out = _unique("shape")
    # No file, a paused sandbox: collect walks every kind of endpoint (start tasks, conversations,
    # events, sandboxes, /file, git/diff) and ends quickly without a test run.
    cloud_server.add_scenario(out, sandbox_after="PAUSED")
    gen = _generator(cloud_server, calc_repo, GITHUB_HEAD_REF="feature/tests")
    task_id = gen.submit_test_generation_task_sync("calc.py", out)
    assert "does not exist" in _collect(gen, task_id)["reason"]

    posts = cloud_server.requests_to(SUBMIT, "POST")
    assert len(posts) == 1 and posts[0].path == SUBMIT and posts[0].status == 200
    body = posts[0].body
    assert set(body) == {
        "initial_message", "title", "conversation_id", "selected_repository", "git_provider",
        "selected_branch",
    }  # fmt: skip
    assert body["initial_message"]["role"] == "user"
    [part] = body["initial_message"]["content"]
    assert part["type"] == "text" and "calc.py" in part["text"] and out in part["text"]
    assert "80" in part["text"]
    assert isinstance(body["title"], str) and "calc.py" in body["title"]
    assert body["conversation_id"] == TaskRef.parse(task_id).conversation_id
    assert (body["selected_repository"], body["git_provider"], body["selected_branch"]) == (
        REPOSITORY,
        "github",
        "feature/tests",  # GITHUB_HEAD_REF (a pull request's branch) wins over GITHUB_REF_NAME
    )

    key = cloud_server.api_key
    seen = cloud_server.requests
    assert {r.path.split("/")[3] for r in seen} >= {"app-conversations", "conversation", "sandboxes"}
    for r in seen:
        assert r.headers.get("authorization") == f"Bearer {key}", r.path
        assert key not in r.path and key not in repr(r.query), r.path
        assert not {"x-session-api-key", "x-access-token"} & set(r.headers), r.path
    assert key not in repr(body)


def test_start_task_error_is_failed_with_its_detail(cloud_server: CloudV1Server, calc_repo: Path) -> None:
    out = _unique("nostart")
    cloud_server.add_scenario(
        out, start_statuses=("WORKING", "WAITING_FOR_SANDBOX", "ERROR"),
        start_error="Sandbox failed to start within 120s",
    )  # fmt: skip
    gen = _generator(cloud_server, calc_repo)
    task_id = gen.submit_test_generation_task_sync("calc.py", out)
    assert gen.get_task_status_sync(task_id)["status"] == "QUEUED"
    result = _collect(gen, task_id)
    assert (result["status"], result["agent_status"]) == ("FAILED", "ERROR")
    assert result["reason"] == "the conversation did not start: Sandbox failed to start within 120s"
    assert result["generated_file"] is None and not (calc_repo / out).exists()
    # No conversation ever existed to look at.
    assert not [r for r in cloud_server.requests if r.path == SUBMIT and r.method == "GET"]


@pytest.mark.parametrize(
    "final, code, detail, reason",
    [
        ("error", "LLMServiceUnavailableError", "LLM down", "LLMServiceUnavailableError: LLM down"),
        ("stuck", "StuckDetected", "repeating the same action", "StuckDetected: repeating the same action"),
        ("stuck", None, None, "the agent ended with status 'stuck'"),
        ("waiting_for_confirmation", None, None, "the agent ended with status 'waiting_for_confirmation'"),
    ],
)
def test_an_agent_that_errors_or_gets_stuck_is_failed_with_the_error_event(
    cloud_server: CloudV1Server, calc_repo: Path,
    final: str, code: str | None, detail: str | None, reason: str,
) -> None:  # fmt: skip
    out = _unique(final)
    cloud_server.add_scenario(
        out, execution_statuses=("running", final), error_code=code, error_detail=detail, files={out: FULL}
    )
    gen = _generator(cloud_server, calc_repo)
    result = _collect(gen, gen.submit_test_generation_task_sync("calc.py", out))
    assert (result["status"], result["agent_status"], result["reason"]) == ("FAILED", final, reason)
    # The agent's file is not collected from a failed run.
    assert result["generated_file"] is None and not (calc_repo / out).exists()
    assert not cloud_server.requests_to("/file")


def test_finished_without_the_file_is_failed(cloud_server: CloudV1Server, calc_repo: Path) -> None:
    out = _unique("nofile")
    cloud_server.add_scenario(out, files={"tests/elsewhere.py": FULL}, finish_message="All done, 95%!")
    gen = _generator(cloud_server, calc_repo)
    result = _collect(gen, gen.submit_test_generation_task_sync("calc.py", out))
    assert result["status"] == "FAILED" and result["agent_status"] == "finished"
    assert result["reason"] == f"the agent said it finished, but {out} does not exist in its workspace"
    assert result["agent_message"] == "All done, 95%!"  # reported, not believed
    assert result["generated_file"] is None and not (calc_repo / out).exists()
    # "" from /file means missing OR unreadable: the git diff was asked before giving up.
    [diff] = cloud_server.requests_to("/git/diff")
    assert diff.query["path"] == [f"{REPO_DIR}/{out}"] and diff.status == 404


def test_a_sandbox_gone_after_the_agent_finished_is_failed_naming_the_sandbox(
    cloud_server: CloudV1Server, calc_repo: Path
) -> None:
    out = _unique("missing")
    cloud_server.add_scenario(out, files={out: FULL}, sandbox_after="MISSING")
    gen = _generator(cloud_server, calc_repo)
    task_id = gen.submit_test_generation_task_sync("calc.py", out)
    result = _collect(gen, task_id)
    sandbox = cloud_server.conversation(TaskRef.parse(task_id).conversation_id or "").sandbox_id
    assert result["status"] == "FAILED" and result["agent_status"] == "finished"
    assert result["reason"] == (
        f"the agent finished but sandbox {sandbox} is MISSING: the generated file can no longer be read "
        "(collect sooner, while the sandbox is alive)"
    )
    assert result["generated_file"] is None and not (calc_repo / out).exists()
    # status still says what the stored events say: the agent finished.
    assert gen.get_task_status_sync(task_id)["status"] == "COMPLETED"


def test_a_sandbox_paused_then_lost_while_the_agent_ran_is_failed(
    cloud_server: CloudV1Server, calc_repo: Path
) -> None:
    out = _unique("lost")
    cloud_server.add_scenario(out, execution_statuses=("idle", "running", "running", "finished"))
    gen = _generator(cloud_server, calc_repo)
    task_id = gen.submit_test_generation_task_sync("calc.py", out)
    while gen.get_task_status_sync(task_id)["status"] != "RUNNING":
        pass
    conversation_id = TaskRef.parse(task_id).conversation_id or ""
    # Paused by the cloud (too many running) before the agent finished: still running, not resumed.
    cloud_server.set_sandbox_status(conversation_id, "PAUSED")
    state = gen.get_task_status_sync(task_id)
    assert (state["status"], state["agent_status"]) == ("RUNNING", "sandbox paused")
    assert not cloud_server.requests_to("/resume")
    cloud_server.set_sandbox_status(conversation_id, "MISSING")
    result = _collect(gen, task_id)
    assert result["status"] == "FAILED"
    assert result["reason"] == "the sandbox is MISSING; the agent had not finished (last status: running)"


def test_an_unreadable_file_is_taken_from_the_git_diff(cloud_server: CloudV1Server, calc_repo: Path) -> None:
    out = _unique("diff")
    cloud_server.add_scenario(out, files={out: FULL}, file_reads_empty=True)
    gen = _generator(cloud_server, calc_repo)
    result = _collect(gen, gen.submit_test_generation_task_sync("calc.py", out))
    assert result["status"] == "COMPLETED" and result["coverage"] == 100.0, result["reason"]
    assert (calc_repo / out).read_text() == FULL
    assert [r.status for r in cloud_server.requests_to("/file")] == [200]
    assert [r.query["path"] for r in cloud_server.requests_to("/git/diff")] == [[f"{REPO_DIR}/{out}"]]


def test_a_paused_sandbox_is_resumed_before_the_file_is_read(
    cloud_server: CloudV1Server, calc_repo: Path
) -> None:
    out = _unique("paused")
    cloud_server.add_scenario(out, files={out: FULL}, sandbox_after="PAUSED")
    gen = _generator(cloud_server, calc_repo)
    task_id = gen.submit_test_generation_task_sync("calc.py", out)
    result = _collect(gen, task_id)
    assert result["status"] == "COMPLETED" and result["tests_passed"] is True, result["reason"]
    assert (calc_repo / out).read_text() == FULL
    conversation = cloud_server.conversation(TaskRef.parse(task_id).conversation_id or "")
    assert conversation.sandbox_status == "RUNNING"
    paths = [(r.method, r.path) for r in cloud_server.requests]
    resume = ("POST", f"/api/v1/sandboxes/{conversation.sandbox_id}/resume")
    assert paths.count(resume) == 1
    assert paths.index(resume) < paths.index(("GET", f"{SUBMIT}/{conversation.id}/file"))


def test_rate_limits_and_503_on_submit_are_retried_into_one_start_task(
    cloud_server: CloudV1Server, calc_repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = _unique("retry")
    cloud_server.add_scenario(out)
    cloud_server.fail_next(1, status=429, retry_after=0.05, method="POST", path=SUBMIT)
    cloud_server.fail_next(1, status=503, method="POST", path=SUBMIT)
    gen = _generator(cloud_server, calc_repo)
    with caplog.at_level(logging.INFO, logger="worktree_runner.openhands"):
        task_id = gen.submit_test_generation_task_sync("calc.py", out)
    assert [r.status for r in cloud_server.requests_to(SUBMIT, "POST")] == [429, 503, 200]
    assert "retry 1/4 in 0.05s" in caplog.text  # Retry-After, not the backoff, set the first wait
    [task] = _start_tasks(cloud_server)
    assert task["id"] == TaskRef.parse(task_id).id
    # Before each retry the client looked for the start task an unanswered attempt may have made.
    assert len(cloud_server.requests_to("/start-tasks/search")) >= 2


@pytest.mark.parametrize("start_statuses", [("WORKING", "READY"), ("READY",)], ids=["starting", "ready"])
def test_a_lost_answer_to_submit_does_not_start_a_second_agent(
    cloud_server: CloudV1Server, calc_repo: Path, start_statuses: tuple[str, ...]
) -> None:
    out = _unique("lostanswer")
    cloud_server.add_scenario(out, start_statuses=start_statuses, files={out: FULL})
    # The server starts the task, but the client sees a 503.
    cloud_server.fail_next(1, status=503, method="POST", path=SUBMIT, after_processing=True)
    gen = _generator(cloud_server, calc_repo)
    task_id = gen.submit_test_generation_task_sync("calc.py", out)
    assert [r.status for r in cloud_server.requests_to(SUBMIT, "POST")] == [503]
    [task] = _start_tasks(cloud_server)
    ref = TaskRef.parse(task_id)
    assert task["id"] == ref.id and task["request"]["conversation_id"] == str(uuid.UUID(ref.conversation_id))
    # The task ID it returned is the one that runs.
    while (state := gen.get_task_status_sync(task_id))["status"] in ("QUEUED", "RUNNING"):
        pass
    assert state["status"] == "COMPLETED" and state["conversation_id"] == ref.conversation_id


def test_a_wrong_key_is_an_auth_error_without_the_key(cloud_server: CloudV1Server, calc_repo: Path) -> None:
    out = _unique("auth")
    cloud_server.add_scenario(out, files={out: FULL})
    wrong_key = "sk-wrong-" + uuid.uuid4().hex
    wrong = _generator(cloud_server, calc_repo, OPENHANDS_API_KEY=wrong_key)
    with pytest.raises(OpenHandsAuthError, match="rejected the API key") as info:
        wrong.submit_test_generation_task_sync("calc.py", out)
    assert wrong_key not in str(info.value) and cloud_server.api_key not in str(info.value)
    assert [r.status for r in cloud_server.requests] == [401]  # not retried

    task_id = _generator(cloud_server, calc_repo).submit_test_generation_task_sync("calc.py", out)
    with pytest.raises(OpenHandsAuthError):
        wrong.get_task_status_sync(task_id)
    # The action's and CLI's code path turns it into a FAILED result, the key still nowhere.
    result = collect(wrong, task_id, timeout=5, poll_interval=0.05)
    assert result["status"] == "FAILED" and "rejected the API key" in result["reason"]
    assert wrong_key not in repr(result)
    assert not (calc_repo / out).exists()
