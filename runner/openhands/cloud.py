"""Backend for OpenHands Cloud and the self-hosted app server: the V1 API (``/api/v1``), Bearer auth.

Submit returns a start task at once; the conversation exists only once the start task is READY, so
every status look goes start task -> conversation. We choose the conversation id ourselves and, before
retrying a failed POST, look for a start task with that id: a POST that reached the server but whose
answer was lost does not start a second agent. The server fills a start task's
``app_conversation_id`` (what ``conversation_id__eq`` searches) only at READY, so a task still
starting is found among the newest start tasks by the ``conversation_id`` its echoed request carries.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import httpx

from runner.openhands.backend import EXECUTION_STATUS, AgentState, GenerationRequest, TaskStatus
from runner.openhands.errors import OpenHandsError
from runner.openhands.http import ApiClient
from runner.openhands.settings import OpenHandsSettings
from runner.openhands.task_id import TaskRef

__all__ = ["CloudBackend"]

_ID = re.compile(r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SANDBOX_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# In the cloud the sandbox already runs when these are read: idle (or null) means it is working.
_EXECUTION = {**EXECUTION_STATUS, None: TaskStatus.RUNNING, "idle": TaskStatus.RUNNING}
RESUME_WAIT = 120.0
RESUME_POLL = 2.0
# Before retrying a submit: how many of the newest start tasks to look through for ours.
RECENT_TASKS = 100


def _first(data: Any) -> dict[str, Any] | None:
    """The single item of a ``?ids=`` answer (a list holding an object or null)."""
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return data[0]
    return None


class CloudBackend:
    name = "cloud"

    def __init__(
        self, settings: OpenHandsSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        if not settings.api_key:
            raise ValueError("the cloud backend needs an API key (OPENHANDS_API_KEY or openhands-api-key)")
        self.settings = settings
        self.client = ApiClient(
            settings, {"Authorization": f"Bearer {settings.api_key}"}, transport=transport
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def repo_dir(self) -> str:
        # Where the cloud sandbox checks the selected repository out.
        if self.settings.repository:
            return f"/workspace/project/{self.settings.repository.split('/', 1)[1]}"
        return "/workspace/project"

    async def _search_start_tasks(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            data = await self.client.get_json(
                "/api/v1/app-conversations/start-tasks/search", params=params, retries=0
            )
        except OpenHandsError:
            return []
        items = data.get("items") if isinstance(data, dict) else None
        return [item for item in items or [] if isinstance(item, dict)]

    async def _find_start_task(self, conversation_id: str) -> httpx.Response | None:
        """The start task an earlier attempt of this submit created, if the server has one."""
        # READY (or later): the task names the conversation.
        for task in await self._search_start_tasks({"conversation_id__eq": conversation_id, "limit": 1}):
            return httpx.Response(200, json=task)
        # Still starting: app_conversation_id is null until READY; the echoed request has our id.
        recent = await self._search_start_tasks({"sort_order": "CREATED_AT_DESC", "limit": RECENT_TASKS})
        for task in recent:
            request = task.get("request")
            asked = request.get("conversation_id") if isinstance(request, dict) else None
            if isinstance(asked, str) and asked.replace("-", "").lower() == conversation_id:
                return httpx.Response(200, json=task)
        return None

    async def submit(self, request: GenerationRequest, *, submitted_at: float) -> TaskRef:
        conversation_id = uuid.uuid4().hex
        body: dict[str, Any] = {
            "initial_message": {"role": "user", "content": [{"type": "text", "text": request.prompt}]},
            "title": request.title,
            "conversation_id": conversation_id,
        }
        if self.settings.repository:
            body["selected_repository"] = self.settings.repository
            body["git_provider"] = "github"
            if self.settings.branch:
                body["selected_branch"] = self.settings.branch
        response = await self.client.request(
            "POST", "/api/v1/app-conversations", json=body,
            before_retry=lambda: self._find_start_task(conversation_id),
        )  # fmt: skip
        task = response.json()
        task_id = task.get("id") if isinstance(task, dict) else None
        if not isinstance(task_id, str) or not re.fullmatch(r"[0-9a-f]{32}", task_id.replace("-", "")):
            raise OpenHandsError("POST /api/v1/app-conversations: the answer has no start-task id")
        return TaskRef(
            backend="cloud",
            id=task_id.replace("-", ""),
            conversation_id=conversation_id,
            module_path=request.module_path,
            output_path=request.output_path,
            threshold=request.coverage_threshold,
            repo_dir=self.repo_dir(),
            submitted_at=submitted_at,
        )

    async def _conversation(self, conversation_id: str) -> dict[str, Any] | None:
        return _first(
            await self.client.get_json("/api/v1/app-conversations", params={"ids": conversation_id})
        )

    async def status(self, ref: TaskRef) -> AgentState:
        task = _first(
            await self.client.get_json("/api/v1/app-conversations/start-tasks", params={"ids": ref.id})
        )
        if task is None:
            return AgentState(
                TaskStatus.FAILED, agent_status="not found", reason="OpenHands does not know this task"
            )
        task_status = str(task.get("status"))
        if task_status == "ERROR":
            detail = str(task.get("detail") or "no detail given")[:500]
            return AgentState(
                TaskStatus.FAILED, agent_status="ERROR", reason=f"the conversation did not start: {detail}"
            )
        conversation_id = task.get("app_conversation_id")
        if task_status != "READY" or not isinstance(conversation_id, str):
            return AgentState(TaskStatus.QUEUED, agent_status=task_status)
        if not _ID.fullmatch(conversation_id):
            raise OpenHandsError("the start task names a malformed conversation id")
        conv = await self._conversation(conversation_id)
        if conv is None:
            return AgentState(
                TaskStatus.FAILED, agent_status="not found", conversation_id=conversation_id,
                reason="the conversation is gone (deleted)",
            )  # fmt: skip
        sandbox_status = str(conv.get("sandbox_status"))
        sandbox_id = conv.get("sandbox_id") if isinstance(conv.get("sandbox_id"), str) else None
        execution = conv.get("execution_status")
        common: dict[str, Any] = {
            "conversation_id": conversation_id,
            "conversation_url": conv.get("conversation_url")
            if isinstance(conv.get("conversation_url"), str)
            else None,
            "sandbox_id": sandbox_id if sandbox_id and _SANDBOX_ID.fullmatch(sandbox_id) else None,
            "sandbox_status": sandbox_status,
        }
        if sandbox_status in ("ERROR", "MISSING"):
            # The sandbox is gone; the app server's stored events still tell how the agent ended.
            last = await self._last_execution_status(conversation_id)
            if last == "finished":
                return AgentState(TaskStatus.COMPLETED, agent_status="finished", **common)
            return AgentState(
                TaskStatus.FAILED, agent_status=str(last),
                reason=f"the sandbox is {sandbox_status}; the agent had not finished (last status: {last})",
                **common,
            )  # fmt: skip
        if sandbox_status == "PAUSED":
            # A paused sandbox shows no execution_status. The cloud pauses older conversations when too
            # many run, finished ones included: the stored events tell whether the agent had ended.
            last = await self._last_execution_status(conversation_id)
            paused = _EXECUTION.get(last, TaskStatus.RUNNING)
            if paused is TaskStatus.COMPLETED:
                return AgentState(TaskStatus.COMPLETED, agent_status="finished", **common)
            if paused is TaskStatus.FAILED:
                why = await self._error_reason(conversation_id) or f"the agent ended with status {last!r}"
                return AgentState(TaskStatus.FAILED, agent_status=str(last), reason=why, **common)
            return AgentState(TaskStatus.RUNNING, agent_status="sandbox paused", **common)
        if sandbox_status == "STARTING":
            return AgentState(TaskStatus.QUEUED, agent_status="sandbox starting", **common)
        status = _EXECUTION.get(execution if isinstance(execution, str) else None, TaskStatus.RUNNING)
        reason = None
        if status is TaskStatus.FAILED:
            reason = await self._error_reason(conversation_id) or f"the agent ended with status {execution!r}"
        return AgentState(status, agent_status=str(execution), reason=reason, **common)

    async def _events(self, conversation_id: str, kind: str, limit: int) -> list[dict[str, Any]]:
        data = await self.client.get_json(
            f"/api/v1/conversation/{conversation_id}/events/search",
            params={"kind__eq": kind, "sort_order": "TIMESTAMP_DESC", "limit": limit},
        )
        items = data.get("items") if isinstance(data, dict) else None
        return [item for item in items or [] if isinstance(item, dict)]

    async def _last_execution_status(self, conversation_id: str) -> str | None:
        for event in await self._events(conversation_id, "ConversationStateUpdateEvent", 100):
            if event.get("key") == "execution_status":
                return str(event.get("value"))
        return None

    async def _error_reason(self, conversation_id: str) -> str | None:
        for event in await self._events(conversation_id, "ConversationErrorEvent", 1):
            code, detail = event.get("code"), str(event.get("detail") or "").strip()
            return f"{code}: {detail[:500]}" if code else detail[:500] or None
        return None

    async def agent_message(self, ref: TaskRef, state: AgentState) -> str | None:
        if state.conversation_id is None:
            return None
        for event in await self._events(state.conversation_id, "ActionEvent", 100):
            action = event.get("action")
            if isinstance(action, dict) and action.get("kind") == "FinishAction":
                return str(action.get("message") or "") or None
        return None

    async def _resume(self, state: AgentState) -> None:
        """A paused sandbox serves no files: resume it and wait until it runs."""
        assert state.conversation_id is not None
        if state.sandbox_id is None:
            raise OpenHandsError("the sandbox is paused and its id is unknown; cannot resume it")
        await self.client.request("POST", f"/api/v1/sandboxes/{state.sandbox_id}/resume")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RESUME_WAIT
        while loop.time() < deadline:
            conv = await self._conversation(state.conversation_id)
            if conv is not None and conv.get("sandbox_status") == "RUNNING":
                return
            await asyncio.sleep(RESUME_POLL)
        raise OpenHandsError(f"the sandbox did not resume within {RESUME_WAIT:.0f}s")

    async def fetch_output(self, ref: TaskRef, state: AgentState) -> bytes | None:
        if state.conversation_id is None:
            return None
        if state.sandbox_status in ("MISSING", "ERROR"):
            sandbox = f"sandbox {state.sandbox_id}" if state.sandbox_id else "its sandbox"
            raise OpenHandsError(
                f"the agent finished but {sandbox} is {state.sandbox_status}: the generated file can no "
                "longer be read (collect sooner, while the sandbox is alive)"
            )
        if state.sandbox_status == "PAUSED":
            await self._resume(state)
        path = f"{ref.repo_dir}/{ref.output_path}"
        base = f"/api/v1/app-conversations/{state.conversation_id}"
        text = await self.client.get_json(f"{base}/file", params={"file_path": path})
        if isinstance(text, str) and text:
            return text.encode("utf-8")
        # "" means missing OR unreadable; the git diff of a new file tells them apart.
        try:
            diff = await self.client.get_json(f"{base}/git/diff", params={"path": path}, retries=1)
        except OpenHandsError:
            return None
        modified = diff.get("modified") if isinstance(diff, dict) else None
        if isinstance(modified, str) and modified:
            return modified.encode("utf-8")
        return None

    async def cancel(self, ref: TaskRef, state: AgentState) -> None:
        if state.sandbox_id:
            await self.client.request(
                "POST", f"/api/v1/sandboxes/{state.sandbox_id}/pause", passthrough=(404, 409), retries=1
            )
