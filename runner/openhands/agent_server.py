"""Backend for a self-hosted ``openhands-agent-server`` (``/api/conversations``, X-Session-API-Key).

Submit = (1) prepare the server-side checkout through the server's own bash endpoint (a shallow
fetch of the workflow's commit into ``<server_root>/<conversation id>``), (2) create the
conversation with a client-chosen UUID, so a retried POST finds the same conversation (HTTP 200)
instead of starting a second agent.
"""

from __future__ import annotations

import re
import shlex
import uuid
from pathlib import PurePosixPath
from typing import Any

import httpx

from runner.openhands.backend import EXECUTION_STATUS, AgentState, GenerationRequest, TaskStatus
from runner.openhands.errors import OpenHandsError
from runner.openhands.http import ApiClient
from runner.openhands.settings import OpenHandsSettings
from runner.openhands.task_id import TaskRef

__all__ = ["AgentServerBackend"]

_SHA_LINE = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$", re.MULTILINE)
PREPARE_TIMEOUT = 300

_STATUS = EXECUTION_STATUS
_REASON = {
    "stuck": "the agent got stuck (OpenHands stuck detection)",
    "waiting_for_confirmation": "the agent is waiting for a human to confirm an action",
    "deleting": "the conversation is being deleted",
}


def _clone_source(url: str) -> str:
    # `git fetch --depth` ignores depth for plain local paths; file:// keeps it shallow.
    return f"file://{url}" if url.startswith("/") else url


class AgentServerBackend:
    name = "agent-server"

    def __init__(
        self,
        settings: OpenHandsSettings,
        *,
        repo_url: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not settings.llm_model:
            raise ValueError("the agent-server backend needs an LLM model (OPENHANDS_LLM_MODEL)")
        headers = {"X-Session-API-Key": settings.api_key} if settings.api_key else {}
        self.settings = settings
        self.repo_url = repo_url
        self.client = ApiClient(settings, headers, transport=transport)

    async def aclose(self) -> None:
        await self.client.aclose()

    def _conversation_url(self, conversation_id: str) -> str:
        return f"{self.settings.base_url}/api/conversations/{conversation_id}"

    async def _bash(self, command: str, *, timeout: int) -> dict[str, Any]:
        response = await self.client.request(
            "POST", "/api/bash/execute_bash_command",
            json={"command": command, "cwd": "/", "timeout": timeout},
            timeout=timeout + 30,
        )  # fmt: skip
        data = response.json()
        if not isinstance(data, dict):
            raise OpenHandsError("POST /api/bash/execute_bash_command: unexpected answer")
        return data

    async def _prepare_checkout(self, repo_dir: str) -> str:
        """Fetch the repository at ``repo_ref`` into ``repo_dir`` on the server; returns the commit.

        Idempotent: a retried submit finds the checkout already there.
        """
        q = shlex.quote
        script = "\n".join([
            "set -eu",
            f"mkdir -p {q(repo_dir)}",
            f"cd {q(repo_dir)}",
            "[ -e .git ] || git init -q .",
            "if ! git rev-parse -q --verify HEAD >/dev/null 2>&1; then",
            f"  git fetch -q --depth 1 -- {q(_clone_source(self.repo_url))} {q(self.settings.repo_ref)}",
            "  git -c advice.detachedHead=false checkout -q --detach FETCH_HEAD",
            "fi",
            "git rev-parse HEAD",
        ])  # fmt: skip
        out = await self._bash(script, timeout=PREPARE_TIMEOUT)
        stdout, stderr = str(out.get("stdout") or ""), str(out.get("stderr") or "")
        match = _SHA_LINE.search(stdout)
        if out.get("exit_code") != 0 or match is None:
            detail = (stderr or stdout).strip().splitlines()[-3:]
            raise OpenHandsError(
                f"could not check out {self.repo_url} at {self.settings.repo_ref} on the agent-server: "
                + ("; ".join(detail) or f"exit code {out.get('exit_code')}")
            )
        return match.group(1)

    async def submit(self, request: GenerationRequest, *, submitted_at: float) -> TaskRef:
        conversation_id = str(uuid.uuid4())
        repo_dir = str(PurePosixPath(self.settings.server_root) / conversation_id)
        base_commit = await self._prepare_checkout(repo_dir)
        s = self.settings
        llm: dict[str, Any] = {
            "model": s.llm_model,
            "usage_id": "agent",
            # Bounded: litellm's defaults (5 attempts, waits up to 64 s) make a dead LLM take minutes.
            "num_retries": s.llm_num_retries,
            "retry_min_wait": min(8.0, s.llm_retry_max_wait),
            "retry_max_wait": s.llm_retry_max_wait,
        }
        if s.llm_base_url:
            llm["base_url"] = s.llm_base_url
        if s.llm_api_key:
            llm["api_key"] = s.llm_api_key
        body = {
            "conversation_id": conversation_id,
            "agent": {"kind": "Agent", "llm": llm, "tools": [{"name": "terminal"}, {"name": "file_editor"}]},
            "workspace": {"kind": "LocalWorkspace", "working_dir": repo_dir},
            "initial_message": {
                "role": "user",
                "content": [{"type": "text", "text": request.prompt}],
                "run": True,
            },
            "max_iterations": s.max_iterations,
            "autotitle": False,  # saves one LLM call per task
        }
        # Safe to retry: the id is ours, so a repeated POST answers 200 with the same conversation.
        await self.client.request("POST", "/api/conversations", json=body, ok=(200, 201))
        return TaskRef(
            backend="agent-server",
            id=conversation_id,
            module_path=request.module_path,
            output_path=request.output_path,
            threshold=request.coverage_threshold,
            repo_dir=repo_dir,
            submitted_at=submitted_at,
            base_commit=base_commit,
        )

    async def status(self, ref: TaskRef) -> AgentState:
        response = await self.client.request("GET", f"/api/conversations/{ref.id}", passthrough=(404,))
        url = self._conversation_url(ref.id)
        if response.status_code == 404:
            return AgentState(
                TaskStatus.FAILED, agent_status="not found", conversation_id=ref.id, conversation_url=url,
                reason="the agent-server does not know this conversation (deleted, or the server lost it)",
            )  # fmt: skip
        info = response.json()
        raw = info.get("execution_status") if isinstance(info, dict) else None
        status = _STATUS.get(str(raw), TaskStatus.RUNNING)
        reason = None
        if status is TaskStatus.FAILED:
            reason = await self._error_reason(ref) if raw == "error" else None
            reason = reason or _REASON.get(str(raw)) or f"the agent ended with status {raw!r}"
        return AgentState(
            status, agent_status=str(raw), reason=reason, conversation_id=ref.id, conversation_url=url
        )

    async def _error_reason(self, ref: TaskRef) -> str | None:
        data = await self.client.get_json(
            f"/api/conversations/{ref.id}/events/search",
            params={"kind": "ConversationErrorEvent", "sort_order": "TIMESTAMP_DESC", "limit": 1},
        )
        items = data.get("items") if isinstance(data, dict) else None
        if not items or not isinstance(items[0], dict):
            return None
        event = items[0]
        code, detail = event.get("code"), str(event.get("detail") or "").strip()
        return f"{code}: {detail[:500]}" if code else detail[:500] or None

    async def fetch_output(self, ref: TaskRef, state: AgentState) -> bytes | None:
        path = str(PurePosixPath(ref.repo_dir) / ref.output_path)
        response = await self.client.request(
            "GET", "/api/file/download", params={"path": path}, passthrough=(404,)
        )
        return None if response.status_code == 404 else response.content

    async def agent_message(self, ref: TaskRef, state: AgentState) -> str | None:
        response = await self.client.request(
            "GET", f"/api/conversations/{ref.id}/agent_final_response", passthrough=(404,)
        )
        if response.status_code == 404:
            return None
        data = response.json()
        text = data.get("response") if isinstance(data, dict) else None
        return str(text) if text else None

    async def cancel(self, ref: TaskRef, state: AgentState) -> None:
        await self.client.request(
            "POST", f"/api/conversations/{ref.id}/pause", passthrough=(404, 409), retries=1
        )
