"""The OpenHands test infrastructure itself: the fake LLM, the real agent-server, the Cloud V1 stand-in.

Talks HTTP with httpx directly, so these tests hold whatever the client library does.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import git
from tests.openhands_support.agent_server import AgentServer, conversation_request, marked_pids
from tests.openhands_support.cloud_v1 import CloudV1Server
from tests.openhands_support.fake_llm import (
    FakeLLM,
    finish,
    llm_error,
    loop,
    terminal,
    write_file,
)

HANG_GUARD_S = 120.0  # only to fail instead of hanging; no test asserts on speed
TERMINAL_STATES = ("finished", "error", "stuck")


def poll_until(
    fetch: Callable[[], Any], done: Callable[[Any], bool], what: str, interval: float = 0.1
) -> Any:
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: still {value!r} after {HANG_GUARD_S:.0f}s")
        time.sleep(interval)


def make_workdir(tmp_path: Path) -> Path:
    repo = tmp_path / "work"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    return repo


# ---------------------------------------------------------------------------------------------------
# fake LLM on its own
# ---------------------------------------------------------------------------------------------------


def chat(
    llm: FakeLLM, text: str, *, tools: bool = True, stream: bool = False, turns: int = 0
) -> httpx.Response:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "sys"}, {"role": "user", "content": text}]
    for i in range(turns):
        call = {"id": f"c{i}", "type": "function", "function": {"name": "terminal", "arguments": "{}"}}
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": "ok"},
        ]
    body: dict[str, Any] = {"model": "fake", "messages": messages, "stream": stream}
    if tools:
        schema = {
            "type": "object",
            "properties": {"command": {"type": "string"}, "security_risk": {"type": "string"}},
        }
        body["tools"] = [{"type": "function", "function": {"name": "terminal", "parameters": schema}}]
    return httpx.post(f"{llm.base_url}/chat/completions", json=body, timeout=10)


def test_fake_llm_scripts_plain_and_streamed_tool_calls() -> None:
    with FakeLLM() as llm:
        llm.add_scenario("unit-A", [terminal("echo one"), llm_error(503, times=1), finish("bye")])
        title = chat(llm, "unit-A title", tools=False).json()
        assert title["choices"][0]["message"]["content"] == "Fake title"

        first = chat(llm, "please unit-A").json()["choices"][0]
        assert first["finish_reason"] == "tool_calls"
        call = first["message"]["tool_calls"][0]["function"]
        assert call["name"] == "terminal"
        assert json.loads(call["arguments"]) == {"command": "echo one", "security_risk": "LOW"}

        assert chat(llm, "please unit-A", turns=1).status_code == 503  # the error step, once
        streamed = chat(llm, "please unit-A", turns=1, stream=True)
        assert streamed.headers["content-type"].startswith("text/event-stream")
        chunks = [
            json.loads(line[6:])
            for line in streamed.text.splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"
        ]
        arguments = "".join(
            tc["function"].get("arguments", "")
            for c in chunks
            for choice in c["choices"]
            for tc in choice["delta"].get("tool_calls", [])
        )
        names = [
            tc["function"]["name"]
            for c in chunks
            for ch in c["choices"]
            for tc in ch["delta"].get("tool_calls", [])
            if "name" in tc["function"]
        ]
        assert names == ["finish"]
        assert json.loads(arguments) == {"message": "bye"}
        assert streamed.text.rstrip().endswith("data: [DONE]")

        assert chat(llm, "nobody scripted this").status_code == 400
        assert llm.unmatched == ["nobody scripted this"]
        assert len(llm.requests_for("unit-A")) == 4
        assert httpx.get(f"{llm.base_url}/models", timeout=10).json()["data"][0]["id"] == "fake"


def test_fake_llm_write_file_survives_any_text(tmp_path: Path) -> None:
    """The generated shell commands reproduce awkward text byte for byte (run here with bash)."""
    import subprocess

    text = (
        "q='x'; echo \"$HOME\" `id` \\ EOF\n<<EOF\n"
        + "".join(chr(c) for c in range(32, 127)) * 80
        + "\nno-newline"
    )
    with FakeLLM() as llm:
        llm.add_scenario("unit-W", [write_file("a b/c'd/t.py", text), finish("ok")])
        turn = 0
        while True:
            choice = chat(llm, "unit-W", turns=turn).json()["choices"][0]
            call = choice["message"]["tool_calls"][0]["function"]
            if call["name"] == "finish":
                break
            subprocess.run(["bash", "-c", json.loads(call["arguments"])["command"]], cwd=tmp_path, check=True)
            turn += 1
    assert turn > 1  # large texts are split into several commands
    assert (tmp_path / "a b" / "c'd" / "t.py").read_text() == text


# ---------------------------------------------------------------------------------------------------
# the real agent-server with the fake LLM
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def oh(agent_server: AgentServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=agent_server.url, headers=agent_server.headers, timeout=30) as client:
        yield client


def run_conversation(oh: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    created = oh.post("/api/conversations", json=body)
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    info: dict[str, Any] = poll_until(
        lambda: oh.get(f"/api/conversations/{cid}").json(),
        lambda info: info["execution_status"] in TERMINAL_STATES,
        f"conversation {cid}",
    )
    return info


def events(oh: httpx.Client, cid: str) -> list[dict[str, Any]]:
    return oh.get(f"/api/conversations/{cid}/events/search", params={"limit": 100}).json()["items"]  # type: ignore[no-any-return]


def test_agent_server_runs_a_scripted_conversation(
    agent_server: AgentServer, fake_llm: FakeLLM, oh: httpx.Client, tmp_path: Path
) -> None:
    repo = make_workdir(tmp_path)
    match = f"src/mod_{uuid.uuid4().hex[:8]}.py"
    content = 'import calc\n\n\ndef test_add():\n    assert calc.add(1, 2) == 3  # "quotes" $VAR `tick`\n'
    fake_llm.add_scenario(
        match,
        [
            terminal("cd /"),  # write_file still lands in the working dir
            write_file("tests/unit/test_calc.py", content),
            terminal(f"cd {repo} && python3 -m pytest -q tests/unit"),
            finish("Wrote tests/unit/test_calc.py"),
        ],
    )
    cid = str(uuid.uuid4())
    body = conversation_request(fake_llm.base_url, repo, f"Write tests for {match}", conversation_id=cid)

    info = run_conversation(oh, body)
    assert info["id"] == cid
    assert info["execution_status"] == "finished"
    assert (repo / "tests" / "unit" / "test_calc.py").read_text() == content
    assert oh.get(f"/api/conversations/{cid}/agent_final_response").json() == {
        "response": "Wrote tests/unit/test_calc.py"
    }
    finish_events = [
        e for e in events(oh, cid) if e["kind"] == "ActionEvent" and e.get("tool_name") == "finish"
    ]
    assert finish_events[0]["action"] == {"kind": "FinishAction", "message": "Wrote tests/unit/test_calc.py"}
    pytest_run = [e for e in events(oh, cid) if e["kind"] == "ObservationEvent" and "pytest" in json.dumps(e)]
    assert pytest_run and pytest_run[-1]["observation"]["exit_code"] == 0

    # The same client-chosen id again: 200, same conversation, nothing re-run.
    calls = len(fake_llm.requests_for(match))
    again = oh.post("/api/conversations", json=body)
    assert again.status_code == 200 and again.json()["id"] == cid
    assert len(fake_llm.requests_for(match)) == calls
    offered = {t["function"]["name"] for t in fake_llm.requests_for(match)[-1]["tools"]}
    assert offered == {"terminal", "file_editor", "finish", "think"}

    # Auth: only X-Session-API-Key with the right key.
    url = f"{agent_server.url}/api/conversations/{cid}"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"X-Session-API-Key": "wrong"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {agent_server.api_key}"}).status_code == 401
    assert httpx.get(f"{agent_server.url}/alive").status_code == 200


def test_agent_server_llm_failures(fake_llm: FakeLLM, oh: httpx.Client, tmp_path: Path) -> None:
    repo = make_workdir(tmp_path)
    tag = uuid.uuid4().hex[:8]
    fake_llm.add_scenario(f"boom-{tag}", [llm_error(500)])
    fake_llm.add_scenario(f"spin-{tag}", [loop()])
    fake_llm.add_scenario(
        f"retry-{tag}", [llm_error(429, times=1), write_file("r.txt", "after retry\n"), finish("ok")]
    )

    boom = run_conversation(oh, conversation_request(fake_llm.base_url, repo, f"boom-{tag}"))
    assert boom["execution_status"] == "error"
    errors = [e for e in events(oh, boom["id"]) if e["kind"] == "ConversationErrorEvent"]
    assert errors[-1]["code"] == "LLMServiceUnavailableError"

    spin = run_conversation(
        oh, conversation_request(fake_llm.base_url, repo, f"spin-{tag}", max_iterations=3)
    )
    assert spin["execution_status"] == "error"
    assert [e["code"] for e in events(oh, spin["id"]) if e["kind"] == "ConversationErrorEvent"] == [
        "MaxIterationsReached"
    ]

    # The SDK's num_retries counts attempts (tenacity stop_after_attempt): 2 = one retry.
    body = conversation_request(fake_llm.base_url, repo, f"retry-{tag}", num_retries=2)
    body["agent"]["llm"].update(retry_min_wait=0, retry_max_wait=0)
    assert run_conversation(oh, body)["execution_status"] == "finished"
    assert (repo / "r.txt").read_text() == "after retry\n"


def test_agent_server_restart_keeps_finished_conversations(
    agent_server: AgentServer, fake_llm: FakeLLM, oh: httpx.Client, tmp_path: Path
) -> None:
    repo = make_workdir(tmp_path)
    match = f"restart-{uuid.uuid4().hex[:8]}"
    fake_llm.add_scenario(match, [write_file("done.txt", "yes\n"), finish("survived")])
    cid = run_conversation(oh, conversation_request(fake_llm.base_url, repo, match))["id"]
    old_pid, port = agent_server.pid, agent_server.port

    agent_server.restart()

    assert agent_server.pid != old_pid and agent_server.port == port
    assert old_pid not in marked_pids(agent_server.marker)
    info = oh.get(f"/api/conversations/{cid}").json()
    assert info["execution_status"] == "finished"
    assert oh.get(f"/api/conversations/{cid}/agent_final_response").json() == {"response": "survived"}
    assert (repo / "done.txt").read_text() == "yes\n"


# ---------------------------------------------------------------------------------------------------
# the Cloud V1 stand-in
# ---------------------------------------------------------------------------------------------------


def v1(cloud: CloudV1Server) -> httpx.Client:
    return httpx.Client(base_url=cloud.url, headers={"Authorization": f"Bearer {cloud.api_key}"}, timeout=10)


def start_body(text: str, **extra: Any) -> dict[str, Any]:
    return {"initial_message": {"content": [{"type": "text", "text": text}]}, **extra}


def test_cloud_walks_start_task_to_finished_conversation(cloud_server: CloudV1Server) -> None:
    cloud_server.add_scenario(
        "gen tests for pkg/a.py",
        start_statuses=("WORKING", "PREPARING_REPOSITORY", "READY"),
        execution_statuses=("idle", "running", "finished"),
        files={"tests/test_a.py": "def test(): pass\n"},
        finish_message="Wrote tests/test_a.py",
    )
    with v1(cloud_server) as client:
        task = client.post(
            "/api/v1/app-conversations",
            json=start_body("gen tests for pkg/a.py", selected_repository="acme/widgets"),
        ).json()
        assert task["status"] == "WORKING" and len(task["id"]) == 32 and task["app_conversation_id"] is None
        assert task["request"]["selected_repository"] == "acme/widgets"

        seen = [
            client.get("/api/v1/app-conversations/start-tasks", params={"ids": task["id"]}).json()[0]
            for _ in range(3)
        ]
        assert [t["status"] for t in seen] == ["PREPARING_REPOSITORY", "READY", "READY"]
        cid = seen[-1]["app_conversation_id"]
        assert len(cid) == 32 and seen[-1]["sandbox_id"]

        polls = [
            client.get("/api/v1/app-conversations", params={"ids": [cid, uuid.uuid4().hex]}).json()
            for _ in range(3)
        ]
        assert [p[0]["execution_status"] for p in polls] == ["running", "finished", "finished"]
        assert all(p[1] is None for p in polls)
        conv = polls[-1][0]
        assert conv["sandbox_status"] == "RUNNING" and conv["session_api_key"] and conv["conversation_url"]
        assert conv["selected_repository"] == "acme/widgets"

        path = "/workspace/project/widgets/tests/test_a.py"
        assert client.get(f"/api/v1/app-conversations/{cid}/file", params={"file_path": path}).json() == (
            "def test(): pass\n"
        )
        assert client.get(f"/api/v1/app-conversations/{cid}/file", params={"file_path": "/nope"}).json() == ""
        changes = client.get(
            f"/api/v1/app-conversations/{cid}/git/changes", params={"path": "/workspace/project/widgets"}
        ).json()
        assert changes == [{"status": "ADDED", "path": "tests/test_a.py"}]
        diff = client.get(f"/api/v1/app-conversations/{cid}/git/diff", params={"path": path}).json()
        assert diff == {"modified": "def test(): pass\n", "original": ""}

        found = client.get(
            "/api/v1/app-conversations/start-tasks/search", params={"conversation_id__eq": cid}
        ).json()
        assert [t["id"] for t in found["items"]] == [task["id"]] and found["next_page_id"] is None

        items = client.get(f"/api/v1/conversation/{cid}/events/search").json()["items"]
        finish_action = [e["action"] for e in items if e["kind"] == "ActionEvent"]
        assert finish_action == [{"kind": "FinishAction", "message": "Wrote tests/test_a.py"}]
        states = [e["value"] for e in items if e["kind"] == "ConversationStateUpdateEvent"]
        assert states == ["idle", "running", "finished"]
        page = client.get(
            f"/api/v1/conversation/{cid}/events/search", params={"limit": 2, "sort_order": "TIMESTAMP_DESC"}
        ).json()
        assert page["items"][0]["value"] == "finished" and page["next_page_id"] == "2"

    recorded = cloud_server.requests_to("/api/v1/app-conversations", "POST")
    assert recorded[0].headers["authorization"] == f"Bearer {cloud_server.api_key}"
    assert recorded[0].body["selected_repository"] == "acme/widgets"


def test_cloud_rejects_bad_requests_and_injects_faults(cloud_server: CloudV1Server) -> None:
    url = f"{cloud_server.url}/api/v1/app-conversations"
    assert httpx.post(url, json=start_body("x"), timeout=10).status_code == 401
    assert (
        httpx.post(
            url, json=start_body("x"), headers={"Authorization": "Bearer nope"}, timeout=10
        ).status_code
        == 401
    )
    assert httpx.get(f"{cloud_server.url}/alive", timeout=10).json() == {"status": "ok"}
    with v1(cloud_server) as client:
        bad = client.post("/api/v1/app-conversations", json=start_body("x", repository="a/b", title=5))
        assert bad.status_code == 422
        assert {(e["type"], tuple(e["loc"])) for e in bad.json()["detail"]} == {
            ("extra_forbidden", ("body", "repository")),
            ("string_type", ("body", "title")),
        }
        assert client.get("/api/v1/app-conversations", params={"ids": "not-a-uuid"}).status_code == 422
        assert client.get(
            "/api/v1/app-conversations/start-tasks", params={"ids": uuid.uuid4().hex}
        ).json() == [None]

        cloud_server.fail_next(2, status=429, retry_after=3)
        cloud_server.fail_next(1, status=503)
        limited = client.post("/api/v1/app-conversations", json=start_body("x"))
        assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
        assert (
            client.get("/api/v1/app-conversations/start-tasks", params={"ids": uuid.uuid4().hex}).status_code
            == 429
        )
        assert client.post("/api/v1/app-conversations", json=start_body("x")).status_code == 503
        assert client.post("/api/v1/app-conversations", json=start_body("x")).status_code == 200
    assert [r.status for r in cloud_server.requests if r.path != "/alive"] == [
        401,
        401,
        422,
        422,
        200,
        429,
        429,
        503,
        200,
    ]


def test_cloud_start_error_lost_and_paused_sandboxes(cloud_server: CloudV1Server) -> None:
    cloud_server.add_scenario(
        "will not start",
        start_statuses=("WORKING", "WAITING_FOR_SANDBOX", "ERROR"),
        start_error="Sandbox failed to start within 120s",
    )
    cloud_server.add_scenario(
        "sandbox gets lost",
        execution_statuses=("running", "finished"),
        files={"out.py": "x\n"},
        sandbox_after="MISSING",
    )
    cloud_server.add_scenario(
        "sandbox gets paused",
        execution_statuses=("running", "error"),
        error_code="Boom",
        error_detail="it broke",
        files={"/tmp/p.txt": "p"},
        sandbox_after="PAUSED",
        sandbox_after_polls=1,
    )

    def ready(client: httpx.Client, text: str) -> dict[str, Any]:
        task = client.post("/api/v1/app-conversations", json=start_body(text)).json()
        return poll_until(  # type: ignore[no-any-return]
            lambda: client.get("/api/v1/app-conversations/start-tasks", params={"ids": task["id"]}).json()[0],
            lambda t: t["status"] in ("READY", "ERROR"),
            text,
            interval=0,
        )

    def conversation(client: httpx.Client, cid: str) -> dict[str, Any]:
        return client.get("/api/v1/app-conversations", params={"ids": cid}).json()[0]  # type: ignore[no-any-return]

    with v1(cloud_server) as client:
        failed = ready(client, "will not start")
        assert failed["status"] == "ERROR" and failed["detail"] == "Sandbox failed to start within 120s"
        assert failed["app_conversation_id"] is None

        lost = ready(client, "sandbox gets lost")["app_conversation_id"]
        conv = conversation(client, lost)
        assert (conv["sandbox_status"], conv["execution_status"], conv["conversation_url"]) == (
            "MISSING",
            None,
            None,
        )
        assert (
            client.get(
                f"/api/v1/app-conversations/{lost}/file", params={"file_path": "/workspace/project/out.py"}
            ).json()
            == ""
        )
        states = [
            e["value"]
            for e in client.get(
                f"/api/v1/conversation/{lost}/events/search",
                params={"kind__eq": "ConversationStateUpdateEvent"},
            ).json()["items"]
        ]
        assert states[-1] == "finished"
        sandbox = cloud_server.conversation(lost).sandbox_id
        assert client.post(f"/api/v1/sandboxes/{sandbox}/resume").status_code == 404

        paused = ready(client, "sandbox gets paused")["app_conversation_id"]
        file_params = {"file_path": "/tmp/p.txt"}
        conv = conversation(client, paused)
        assert (conv["sandbox_status"], conv["execution_status"]) == ("RUNNING", "error")
        assert conversation(client, paused)["sandbox_status"] == "PAUSED"
        assert client.get(f"/api/v1/app-conversations/{paused}/file", params=file_params).json() == ""
        sandbox = conv["sandbox_id"]
        assert client.post(f"/api/v1/sandboxes/{sandbox}/resume").json() == {"success": True}
        conv = conversation(client, paused)
        assert (conv["sandbox_status"], conv["execution_status"]) == ("RUNNING", "error")
        assert client.get(f"/api/v1/app-conversations/{paused}/file", params=file_params).json() == "p"
        errors = client.get(
            f"/api/v1/conversation/{paused}/events/search", params={"kind__eq": "ConversationErrorEvent"}
        ).json()["items"]
        assert [(e["code"], e["detail"]) for e in errors] == [("Boom", "it broke")]
        assert client.post(f"/api/v1/sandboxes/{sandbox}/pause").json() == {"success": True}
        assert conversation(client, paused)["sandbox_status"] == "PAUSED"
