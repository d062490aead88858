"""A stand-in for the OpenHands Cloud V1 app server (../shared/docs/openhands.md §1.2, §1.3).

A stdlib HTTP server in a background thread on 127.0.0.1 (or ``host``, e.g. the docker0 address for
containers) that answers with the documented V1 shapes:

* ``POST /api/v1/app-conversations``: validates the body against ``AppConversationStartRequest`` (unknown
  fields or wrong types -> FastAPI-style 422) and returns an ``AppConversationStartTask`` (``WORKING``).
* ``GET /api/v1/app-conversations/start-tasks?ids=`` (list, null for unknown ids),
  ``GET /api/v1/app-conversations/start-tasks/search?conversation_id__eq=`` (``{"items","next_page_id"}``).
* ``GET /api/v1/app-conversations?ids=`` (list of ``AppConversation`` or null).
* ``GET /api/v1/conversation/{id}/events/search`` (``kind__eq``, ``sort_order``, ``limit``, ``page_id``).
* ``GET /api/v1/app-conversations/{id}/git/changes?path=``, ``.../git/diff?path=``, ``.../file?file_path=``.
* ``GET /api/v1/sandboxes?ids=``, ``POST /api/v1/sandboxes/{id}/pause`` and ``/resume``; ``GET /alive``.

Every ``/api`` route needs ``Authorization: Bearer <api_key>`` (else 401). Behaviour is scripted per
conversation by the first scenario whose ``match`` occurs in the initial message text (unmatched requests
use ``CloudScenario()`` defaults). Nothing depends on wall-clock time: a start task moves one status
forward on each poll of ``start-tasks?ids=`` that names it, a conversation one ``execution_status`` forward
on each poll of ``app-conversations?ids=`` that names it. When a conversation reaches its last status the
"agent" has written the scenario's files, its events are complete and the sandbox goes to
``sandbox_after`` (after ``sandbox_after_polls`` further conversation polls).

``fail_next`` injects 429/5xx answers, for every ``/api`` request or only matching ones, either instead of
handling the request or after it took effect (an answer lost on the way back).

The repository lives at ``/workspace/project/<repo>`` in the sandbox (``repo`` = the second part of
``selected_repository``), or ``/workspace/project`` without one.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.openhands_support.threaded_server import ThreadedHTTPService

__all__ = [
    "CONVERSATION_STATUSES",
    "START_TASK_STATUSES",
    "CloudConversation",
    "CloudScenario",
    "CloudStartTask",
    "CloudV1Server",
    "RecordedRequest",
]

START_TASK_STATUSES = (
    "WORKING",
    "WAITING_FOR_SANDBOX",
    "PREPARING_REPOSITORY",
    "RUNNING_SETUP_SCRIPT",
    "SETTING_UP_GIT_HOOKS",
    "SETTING_UP_SKILLS",
    "STARTING_CONVERSATION",
    "READY",
    "ERROR",
)
CONVERSATION_STATUSES = (
    "idle",
    "running",
    "paused",
    "waiting_for_confirmation",
    "finished",
    "error",
    "stuck",
    "deleting",
)
SANDBOX_STATUSES = ("STARTING", "RUNNING", "PAUSED", "ERROR", "MISSING")
TERMINAL = ("finished", "error", "stuck", "waiting_for_confirmation")

# AppConversationStartRequest: field -> default (as the task's echoed "request" shows it).
START_REQUEST_FIELDS: dict[str, Any] = {
    "sandbox_id": None,
    "conversation_id": None,
    "initial_message": None,
    "system_message_suffix": None,
    "processors": None,
    "llm_model": None,
    "selected_repository": None,
    "selected_branch": None,
    "git_provider": None,
    "title": None,
    "trigger": None,
    "pr_number": [],
    "parent_conversation_id": None,
    "agent_type": "default",
    "public": None,
    "plugins": None,
    "secrets": None,
    "agent_profile_id": None,
    "suggested_task": None,
    "observability_metadata": None,
    "observability_tags": None,
    "observability_span_name": None,
}
GIT_PROVIDERS = (
    "github",
    "gitlab",
    "bitbucket",
    "bitbucket_data_center",
    "azure_devops",
    "forgejo",
    "enterprise_sso",
)
MESSAGE_ROLES = ("user", "system", "assistant", "tool")
DEFAULT_START_ERROR = "500: Agent Server Failed to start properly"


@dataclass(frozen=True)
class CloudScenario:
    """How one conversation behaves. ``match`` selects it (a substring of the initial message text).

    ``start_statuses``: the start task's statuses, one per poll (the POST answers the first); READY creates
    the conversation, ERROR fails the task with ``start_error`` as ``detail``.
    ``execution_statuses``: the conversation's ``execution_status`` per poll (the first is what the READY
    conversation shows before any poll); the last one is final.
    ``files``: what the agent writes, path relative to the repository dir (or absolute) -> content.
    ``file_reads_empty``: ``/file`` answers ``""`` even for the files the agent wrote (what the real server
    does for a file it cannot read); ``git/diff`` still has them.
    ``finish_message``: the FinishAction message (when the final status is ``finished``; None: no action).
    ``error_code``/``error_detail``: a ConversationErrorEvent (default for a final ``error``:
    ``AgentError``/"scripted error").
    ``sandbox_after``: the sandbox status once the final status is reached (RUNNING, PAUSED, MISSING,
    ERROR). ``sandbox_after_polls``: how many conversation polls show the final status with a RUNNING
    sandbox first (0: the poll that reaches it already shows ``sandbox_after``; MISSING and PAUSED show
    ``execution_status: null``, as the real server does).
    """

    match: str = ""
    start_statuses: Sequence[str] = ("WORKING", "PREPARING_REPOSITORY", "READY")
    start_error: str = DEFAULT_START_ERROR
    execution_statuses: Sequence[str | None] = ("idle", "running", "finished")
    files: Mapping[str, str] = field(default_factory=dict)
    file_reads_empty: bool = False
    finish_message: str | None = "Done."
    error_code: str | None = None
    error_detail: str | None = None
    sandbox_after: str = "RUNNING"
    sandbox_after_polls: int = 0
    title: str = "Fake title"

    def __post_init__(self) -> None:
        if not self.start_statuses or self.start_statuses[-1] not in ("READY", "ERROR"):
            raise ValueError("start_statuses must end with READY or ERROR")
        for s in self.start_statuses:
            if s not in START_TASK_STATUSES:
                raise ValueError(f"unknown start task status {s!r}")
        if not self.execution_statuses:
            raise ValueError("execution_statuses must not be empty")
        for e in self.execution_statuses:
            if e is not None and e not in CONVERSATION_STATUSES:
                raise ValueError(f"unknown execution status {e!r}")
        if self.sandbox_after not in SANDBOX_STATUSES:
            raise ValueError(f"unknown sandbox status {self.sandbox_after!r}")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: Any
    status: int  # what the stand-in answered


@dataclass(frozen=True)
class _Fault:
    status: int
    retry_after: float | None
    method: str | None = None
    path: str | None = None
    after_processing: bool = False

    def matches(self, method: str, path: str, after_processing: bool) -> bool:
        return (
            self.after_processing == after_processing
            and self.method in (None, method)
            and self.path in (None, path)
        )

    def answer(self) -> _Answer:
        extra = {"Retry-After": f"{self.retry_after:g}"} if self.retry_after is not None else {}
        detail = "Too Many Requests" if self.status == 429 else "Service Unavailable"
        return _Answer(self.status, {"detail": detail}, extra)


@dataclass
class CloudStartTask:
    id: str
    request: dict[str, Any]
    scenario: CloudScenario
    created_at: str
    step: int = 0
    updated_at: str = ""
    conversation_id: str | None = None
    sandbox_id: str | None = None

    @property
    def status(self) -> str:
        return self.scenario.start_statuses[min(self.step, len(self.scenario.start_statuses) - 1)]


@dataclass
class CloudConversation:
    id: str
    task: CloudStartTask
    sandbox_id: str
    session_api_key: str
    repo_dir: str
    created_at: str
    updated_at: str = ""
    step: int = 0
    final_polls: int = 0  # polls that showed the final status
    sandbox_status: str = "RUNNING"
    files: dict[str, str] = field(default_factory=dict)  # absolute path -> content
    events: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False

    @property
    def scenario(self) -> CloudScenario:
        return self.task.scenario

    @property
    def agent_status(self) -> str | None:
        statuses = self.scenario.execution_statuses
        return statuses[min(self.step, len(statuses) - 1)]


class _Answer(Exception):
    """An HTTP answer; raised to answer early, returned otherwise."""

    def __init__(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.payload = payload
        self.headers = dict(headers or {})


def _err(kind: str, loc: Sequence[str | int], msg: str, value: Any) -> dict[str, Any]:
    return {"type": kind, "loc": list(loc), "msg": msg, "input": value}


def _validate_start_request(body: Any) -> list[dict[str, Any]]:
    """FastAPI/pydantic-style error list for an AppConversationStartRequest body (empty when valid)."""
    if not isinstance(body, dict):
        return [_err("model_attributes_type", ["body"], "Input should be a valid dictionary or object", body)]
    errors = []
    for key, value in body.items():
        loc = ["body", key]
        if key not in START_REQUEST_FIELDS:
            errors.append(_err("extra_forbidden", loc, "Extra inputs are not permitted", value))
        elif value is None:
            if key in ("pr_number", "agent_type"):
                errors.append(
                    _err(
                        "list_type" if key == "pr_number" else "enum", loc, "Input should not be null", value
                    )
                )
        elif key in (
            "sandbox_id",
            "system_message_suffix",
            "llm_model",
            "selected_repository",
            "selected_branch",
            "title",
            "trigger",
            "agent_profile_id",
            "observability_span_name",
        ):
            if not isinstance(value, str):
                errors.append(_err("string_type", loc, "Input should be a valid string", value))
        elif key in ("conversation_id", "parent_conversation_id"):
            if not isinstance(value, str) or _parse_uuid(value) is None:
                errors.append(_err("uuid_parsing", loc, "Input should be a valid UUID", value))
        elif key == "git_provider":
            if value not in GIT_PROVIDERS:
                errors.append(
                    _err("enum", loc, f"Input should be {', '.join(map(repr, GIT_PROVIDERS))}", value)
                )
        elif key == "agent_type":
            if value not in ("default", "plan"):
                errors.append(_err("enum", loc, "Input should be 'default' or 'plan'", value))
        elif key == "pr_number":
            if not isinstance(value, list) or not all(
                isinstance(n, int) and not isinstance(n, bool) for n in value
            ):
                errors.append(_err("list_type", loc, "Input should be a valid list of integers", value))
        elif key == "public":
            if not isinstance(value, bool):
                errors.append(_err("bool_type", loc, "Input should be a valid boolean", value))
        elif key in ("secrets", "observability_metadata", "observability_tags", "suggested_task"):
            if not isinstance(value, dict):
                errors.append(_err("dict_type", loc, "Input should be a valid dictionary", value))
        elif key in ("plugins", "processors"):
            if not isinstance(value, list):
                errors.append(_err("list_type", loc, "Input should be a valid list", value))
        elif key == "initial_message":
            errors.extend(_validate_message(value, loc))
    if isinstance(body.get("selected_repository"), str) and body["selected_repository"].count("/") < 1:
        loc = ["body", "selected_repository"]
        errors.append(
            _err("value_error", loc, "Value error, expected 'owner/repo'", body["selected_repository"])
        )
    return errors


def _validate_message(value: Any, loc: list[str | int]) -> list[dict[str, Any]]:
    if not isinstance(value, dict):
        return [_err("model_attributes_type", loc, "Input should be a valid dictionary or object", value)]
    errors = []
    for key, item in value.items():
        if key not in ("role", "content", "run"):
            errors.append(_err("extra_forbidden", [*loc, key], "Extra inputs are not permitted", item))
    if "role" in value and value["role"] not in MESSAGE_ROLES:
        errors.append(
            _err(
                "literal_error",
                [*loc, "role"],
                "Input should be 'user', 'system', 'assistant' or 'tool'",
                value["role"],
            )
        )
    if "run" in value and not isinstance(value["run"], bool):
        errors.append(_err("bool_type", [*loc, "run"], "Input should be a valid boolean", value["run"]))
    content = value.get("content", [])
    if not isinstance(content, list):
        return [*errors, _err("list_type", [*loc, "content"], "Input should be a valid list", content)]
    for i, part in enumerate(content):
        ploc = [*loc, "content", i]
        if not isinstance(part, dict) or part.get("type") not in ("text", "image"):
            errors.append(_err("union_tag_invalid", ploc, "Input tag should be 'text' or 'image'", part))
        elif part["type"] == "text" and not isinstance(part.get("text"), str):
            errors.append(
                _err("string_type", [*ploc, "text"], "Input should be a valid string", part.get("text"))
            )
        elif part["type"] == "image" and not isinstance(part.get("image_urls"), list):
            errors.append(
                _err(
                    "list_type", [*ploc, "image_urls"], "Input should be a valid list", part.get("image_urls")
                )
            )
    return errors


def _parse_uuid(text: str) -> str | None:
    try:
        return uuid.UUID(text).hex
    except (ValueError, AttributeError, TypeError):
        return None


def _conversation_key(raw_id: str) -> str:
    """The conversation id in a path, or the 422 FastAPI answers for a malformed UUID."""
    key = _parse_uuid(raw_id)
    if key is None:
        detail = _err("uuid_parsing", ["path", "conversation_id"], "Input should be a valid UUID", raw_id)
        raise _Answer(422, {"detail": [detail]})
    return key


def _message_text(request: Mapping[str, Any]) -> str:
    message = request.get("initial_message") or {}
    return "\n".join(str(p.get("text", "")) for p in message.get("content") or [] if isinstance(p, dict))


class CloudV1Server(ThreadedHTTPService):
    """The stand-in app server; a context manager. ``requests`` records every request."""

    def __init__(self, api_key: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api_key = api_key or f"cloud-key-{secrets.token_hex(8)}"
        super().__init__(host, port)
        self._lock = threading.Lock()
        self._scenarios: list[CloudScenario] = []
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._tasks: dict[str, CloudStartTask] = {}
        self._conversations: dict[str, CloudConversation] = {}
        self._sandboxes: dict[str, CloudConversation] = {}
        self._clock = itertools.count()
        self._epoch = datetime(2026, 11, 21, 6, 0, 0, tzinfo=UTC)

    thread_name = "cloud-v1"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(_Handler):
            cloud = owner

        return Handler

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("CloudV1Server is not started")
        return f"http://{self._host}:{self.port}"

    # -- scripting -----------------------------------------------------------------------------------

    def add_scenario(self, match: str, **behaviour: Any) -> CloudScenario:
        """Add ``CloudScenario(match, **behaviour)`` (see its fields); the first matching scenario wins."""
        if not match:
            raise ValueError("match must be a non-empty string")
        scenario = CloudScenario(match=match, **behaviour)
        with self._lock:
            self._scenarios.append(scenario)
        return scenario

    def fail_next(
        self,
        count: int,
        status: int = 429,
        retry_after: float | None = None,
        *,
        method: str | None = None,
        path: str | None = None,
        after_processing: bool = False,
    ) -> None:
        """Answer the next ``count`` ``/api`` requests with ``status`` (before auth; state does not move).

        429 carries ``Retry-After: <retry_after>`` (default 1); other statuses only when it is given.
        ``method``/``path`` (exact, e.g. ``"/api/v1/app-conversations"``) limit the faults to matching
        requests; others pass untouched. ``after_processing=True``: the request takes effect as usual and
        only its answer is replaced: an answer lost on the way back (a POST that started a task although
        the client saw a 503).
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        fault = _Fault(status, retry_after, method, path, after_processing)
        with self._lock:
            self._faults.extend([fault] * count)

    def _take_fault(self, method: str, path: str, after_processing: bool) -> _Fault | None:
        """The first queued fault for this request, removed from the queue (lock held)."""
        for i, fault in enumerate(self._faults):
            if fault.matches(method, path, after_processing):
                return self._faults.pop(i)
        return None

    def set_sandbox_status(self, conversation_id: str, status: str) -> None:
        """Force a conversation's sandbox status now (e.g. MISSING while the agent is still running)."""
        if status not in SANDBOX_STATUSES:
            raise ValueError(f"unknown sandbox status {status!r}")
        with self._lock:
            self._conversation(conversation_id).sandbox_status = status

    # -- inspection ----------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path_part: str, method: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if path_part in r.path and (method is None or r.method == method)]

    def start_task(self, task_id: str) -> CloudStartTask:
        with self._lock:
            return self._tasks[_parse_uuid(task_id) or task_id]

    def conversation(self, conversation_id: str) -> CloudConversation:
        with self._lock:
            return self._conversation(conversation_id)

    def _conversation(self, conversation_id: str) -> CloudConversation:
        return self._conversations[_parse_uuid(conversation_id) or conversation_id]

    # -- state machine (called with the lock held) -----------------------------------------------------

    def _now(self) -> str:
        # A fake clock: every reading is one millisecond later, so timestamps order events deterministically.
        stamp = self._epoch + timedelta(milliseconds=next(self._clock))
        return stamp.isoformat().replace("+00:00", "Z")

    def _scenario_for(self, request: Mapping[str, Any]) -> CloudScenario:
        text = _message_text(request)
        return next((s for s in self._scenarios if s.match in text), CloudScenario())

    def _create_task(self, body: dict[str, Any]) -> CloudStartTask:
        request = {
            **{k: (list(v) if isinstance(v, list) else v) for k, v in START_REQUEST_FIELDS.items()},
            **body,
        }
        if request["initial_message"] is not None:
            message = request["initial_message"]
            request["initial_message"] = {
                "role": message.get("role", "user"),
                "content": message.get("content", []),
                "run": message.get("run", False),
            }
        if request.get("conversation_id"):
            request["conversation_id"] = str(uuid.UUID(request["conversation_id"]))
        now = self._now()
        task = CloudStartTask(uuid.uuid4().hex, request, self._scenario_for(request), now, updated_at=now)
        self._tasks[task.id] = task
        self._on_task_status(task)
        return task

    def _advance_task(self, task: CloudStartTask) -> None:
        if task.step < len(task.scenario.start_statuses) - 1:
            task.step += 1
            task.updated_at = self._now()
            self._on_task_status(task)

    def _on_task_status(self, task: CloudStartTask) -> None:
        if task.status == "READY" and task.conversation_id is None:
            requested = task.request.get("conversation_id")
            conversation_id = _parse_uuid(requested) if requested else uuid.uuid4().hex
            assert conversation_id is not None
            repository = task.request.get("selected_repository")
            repo_dir = (
                f"/workspace/project/{repository.split('/', 1)[1]}" if repository else "/workspace/project"
            )
            now = self._now()
            conversation = CloudConversation(
                id=conversation_id,
                task=task,
                sandbox_id=secrets.token_hex(11),
                created_at=now,
                updated_at=now,
                session_api_key=f"sess-{secrets.token_hex(12)}",
                repo_dir=repo_dir,
            )
            task.conversation_id, task.sandbox_id = conversation.id, conversation.sandbox_id
            self._conversations[conversation.id] = conversation
            self._sandboxes[conversation.sandbox_id] = conversation
            self._event(
                conversation,
                {
                    "kind": "MessageEvent",
                    "source": "user",
                    "llm_message": {
                        "role": "user",
                        "content": (task.request.get("initial_message") or {}).get("content", []),
                    },
                },
            )
            self._on_conversation_status(conversation)

    def _event(self, conversation: CloudConversation, event: dict[str, Any]) -> None:
        conversation.events.append({"id": str(uuid.uuid4()), "timestamp": self._now(), **event})

    def _advance_conversation(self, conversation: CloudConversation) -> None:
        if conversation.done:
            conversation.final_polls += 1
            if conversation.final_polls == conversation.scenario.sandbox_after_polls:
                conversation.sandbox_status = conversation.scenario.sandbox_after
            return
        if conversation.sandbox_status != "RUNNING":
            return  # a paused or lost sandbox makes no progress
        conversation.step += 1
        conversation.updated_at = self._now()
        self._on_conversation_status(conversation)
        if conversation.done and conversation.scenario.sandbox_after_polls == 0:
            conversation.sandbox_status = conversation.scenario.sandbox_after

    def _on_conversation_status(self, conversation: CloudConversation) -> None:
        scenario = conversation.scenario
        status = conversation.agent_status
        final = conversation.step >= len(scenario.execution_statuses) - 1
        if final and not conversation.done:
            conversation.done = True
            for path, text in scenario.files.items():
                full = path if path.startswith("/") else f"{conversation.repo_dir}/{path}"
                conversation.files[full] = text
            if status == "finished" and scenario.finish_message is not None:
                message = scenario.finish_message
                self._event(
                    conversation,
                    {
                        "kind": "ActionEvent",
                        "source": "agent",
                        "tool_name": "finish",
                        "action": {"kind": "FinishAction", "message": message},
                        "tool_call": {
                            "id": f"call_{secrets.token_hex(6)}",
                            "name": "finish",
                            "arguments": json.dumps({"message": message}),
                            "origin": "completion",
                        },
                        "llm_response_id": f"chatcmpl-{secrets.token_hex(6)}",
                        "security_risk": "UNKNOWN",
                        "summary": f"finish: {message[:60]}",
                    },
                )
            if scenario.error_code is not None or status == "error":
                self._event(
                    conversation,
                    {
                        "kind": "ConversationErrorEvent",
                        "source": "environment",
                        "code": scenario.error_code or "AgentError",
                        "detail": scenario.error_detail or "scripted error",
                        "classification": {"kind": "agent_action", "retryable": False, "user_action": "none"},
                    },
                )
        if status is not None:
            previous = [e for e in conversation.events if e.get("key") == "execution_status"]
            if not previous or previous[-1]["value"] != status:
                self._event(
                    conversation,
                    {
                        "kind": "ConversationStateUpdateEvent",
                        "source": "environment",
                        "key": "execution_status",
                        "value": status,
                    },
                )

    # -- JSON shapes ---------------------------------------------------------------------------------

    def _task_json(self, task: CloudStartTask) -> dict[str, Any]:
        ready = task.status == "READY"
        return {
            "id": task.id,
            "created_by_user_id": None,
            "status": task.status,
            "detail": task.scenario.start_error if task.status == "ERROR" else None,
            "app_conversation_id": task.conversation_id if ready else None,
            "sandbox_id": task.sandbox_id if ready else None,
            "agent_server_url": f"{self.url}/runtime/{task.sandbox_id}" if ready else None,
            "request": task.request,
            "created_at": task.created_at,
            "updated_at": task.updated_at,
        }

    def _conversation_json(self, c: CloudConversation) -> dict[str, Any]:
        running = c.sandbox_status == "RUNNING"
        request = c.task.request
        return {
            "id": c.id,
            "created_by_user_id": None,
            "sandbox_id": c.sandbox_id,
            "selected_repository": request.get("selected_repository"),
            "selected_branch": request.get("selected_branch"),
            "git_provider": request.get("git_provider"),
            "title": request.get("title") or c.scenario.title,
            "trigger": request.get("trigger"),
            "pr_number": list(request.get("pr_number") or []),
            "llm_model": request.get("llm_model"),
            "agent_kind": "openhands",
            "metrics": None,
            "parent_conversation_id": request.get("parent_conversation_id"),
            "sub_conversation_ids": [],
            "public": request.get("public"),
            "tags": {},
            "created_at": c.created_at,
            "updated_at": c.updated_at,
            "sandbox_status": c.sandbox_status,
            "execution_status": c.agent_status if running else None,
            "conversation_url": f"{self.url}/runtime/{c.sandbox_id}/api/conversations/{c.id}"
            if running
            else None,
            "session_api_key": c.session_api_key if c.sandbox_status in ("RUNNING", "PAUSED") else None,
            "acp_server": None,
            "launched_agent_profile": None,
        }

    def _sandbox_json(self, c: CloudConversation) -> dict[str, Any]:
        running = c.sandbox_status == "RUNNING"
        return {
            "id": c.sandbox_id,
            "created_by_user_id": None,
            "sandbox_spec_id": "fake-spec",
            "status": c.sandbox_status,
            "session_api_key": c.session_api_key if running else None,
            "exposed_urls": [{"name": "AGENT_SERVER", "url": f"{self.url}/runtime/{c.sandbox_id}", "port": 0}]
            if running
            else None,
            "created_at": c.created_at,
        }

    # -- request handling ----------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], raw_body: bytes) -> _Answer:
        """Route one request; the answer comes back as a _Answer(status, payload, headers)."""
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        body: Any = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body = raw_body.decode(errors="replace")
        try:
            answer = self._route(method, path, query, headers, body)
        except _Answer as reject:
            answer = reject
        if path.startswith("/api/"):
            with self._lock:
                lost = self._take_fault(method, path, after_processing=True)
            if lost is not None:
                answer = lost.answer()
        with self._lock:
            self._requests.append(RecordedRequest(method, path, query, dict(headers), body, answer.status))
        return answer

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], headers: Mapping[str, str], body: Any
    ) -> _Answer:
        if path in ("/alive", "/health"):
            return _Answer(200, {"status": "ok"})
        if not path.startswith("/api/"):
            raise _Answer(404, {"detail": "Not Found"})
        with self._lock:
            fault = self._take_fault(method, path, after_processing=False)
        if fault is not None:
            raise fault.answer()
        if headers.get("authorization", "") != f"Bearer {self.api_key}":
            raise _Answer(401, {"detail": "Not authenticated"}, {"WWW-Authenticate": "Bearer"})
        segments = [s for s in path.split("/") if s][2:]  # after /api/v1
        if not path.startswith("/api/v1/") or not segments:
            raise _Answer(404, {"detail": "Not Found"})
        with self._lock:
            return self._route_v1(method, segments, query, body)

    def _route_v1(self, method: str, seg: list[str], query: dict[str, list[str]], body: Any) -> _Answer:
        n = len(seg)
        if seg[0] == "app-conversations":
            if n == 1 and method == "POST":
                errors = _validate_start_request(body)
                if errors:
                    raise _Answer(422, {"detail": errors})
                return _Answer(200, self._task_json(self._create_task(body)))
            if n == 1 and method == "GET":
                result = []
                for key in _ids(query):
                    conversation = self._conversations.get(key)
                    if conversation is not None:
                        self._advance_conversation(conversation)
                    result.append(self._conversation_json(conversation) if conversation else None)
                return _Answer(200, result)
            if n == 2 and seg[1] == "start-tasks" and method == "GET":
                result_tasks = []
                for key in _ids(query):
                    task = self._tasks.get(key)
                    if task is not None:
                        self._advance_task(task)
                    result_tasks.append(self._task_json(task) if task else None)
                return _Answer(200, result_tasks)
            if n == 3 and seg[1:] == ["start-tasks", "search"] and method == "GET":
                return _Answer(200, self._search_tasks(query))
            if n >= 3 and method == "GET":
                return self._conversation_read(seg[1], seg[2:], query)
        if seg[0] == "conversation" and n == 4 and seg[2:] == ["events", "search"] and method == "GET":
            return _Answer(200, self._search_events(seg[1], query))
        if seg[0] == "sandboxes":
            if n == 1 and method == "GET":
                return _Answer(
                    200,
                    [
                        self._sandbox_json(self._sandboxes[i]) if i in self._sandboxes else None
                        for i in query.get("ids", [])
                    ],
                )
            if n == 3 and seg[2] in ("pause", "resume") and method == "POST":
                sandbox = self._sandboxes.get(seg[1])
                if sandbox is None or sandbox.sandbox_status in ("MISSING", "ERROR"):
                    raise _Answer(404, {"detail": "Not Found"})
                sandbox.sandbox_status = "PAUSED" if seg[2] == "pause" else "RUNNING"
                return _Answer(200, {"success": True})
        raise _Answer(404 if method in ("GET", "POST") else 405, {"detail": "Not Found"})

    def _conversation_read(self, raw_id: str, rest: list[str], query: dict[str, list[str]]) -> _Answer:
        key = _conversation_key(raw_id)
        conversation = self._conversations.get(key)
        if rest == ["file"]:
            file_path = query.get("file_path", ["/workspace/project/PLAN.md"])[-1]
            if conversation is None or conversation.sandbox_status != "RUNNING":
                return _Answer(200, "")
            if conversation.scenario.file_reads_empty:
                return _Answer(200, "")
            return _Answer(200, conversation.files.get(file_path, ""))
        if rest not in (["git", "changes"], ["git", "diff"]):
            raise _Answer(404, {"detail": "Not Found"})
        if conversation is None or conversation.sandbox_status != "RUNNING":
            raise _Answer(404, {"error": f"Sandbox not found or not running for conversation {raw_id}"})
        if "path" not in query:
            raise _Answer(422, {"detail": [_err("missing", ["query", "path"], "Field required", None)]})
        target = query["path"][-1]
        if not target.startswith("/"):
            raise _Answer(400, {"detail": f"path must be absolute: {target}"})
        if rest == ["git", "changes"]:
            root = target.rstrip("/") + "/"
            changes = [
                {"status": "ADDED", "path": p[len(root) :]}
                for p in sorted(conversation.files)
                if p.startswith(root)
            ]
            return _Answer(200, changes)
        if target not in conversation.files:
            raise _Answer(404, {"detail": f"no changes for {target}"})
        return _Answer(200, {"modified": conversation.files[target], "original": ""})

    def _search_tasks(self, query: dict[str, list[str]]) -> dict[str, Any]:
        tasks = list(self._tasks.values())
        if "conversation_id__eq" in query:
            wanted = _parse_uuid(query["conversation_id__eq"][-1])
            if wanted is None:
                raise _Answer(
                    422,
                    {
                        "detail": [
                            _err(
                                "uuid_parsing",
                                ["query", "conversation_id__eq"],
                                "Input should be a valid UUID",
                                query["conversation_id__eq"][-1],
                            )
                        ]
                    },
                )
            tasks = [t for t in tasks if t.conversation_id == wanted]
        order = query.get("sort_order", ["CREATED_AT_DESC"])[-1]
        tasks.sort(key=lambda t: t.created_at, reverse=order.endswith("_DESC"))
        return self._page([self._task_json(t) for t in tasks], query)

    def _search_events(self, raw_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        key = _conversation_key(raw_id)
        conversation = self._conversations.get(key)
        events = list(conversation.events) if conversation else []
        if "kind__eq" in query:
            events = [e for e in events if e["kind"] == query["kind__eq"][-1]]
        if query.get("sort_order", ["TIMESTAMP"])[-1] == "TIMESTAMP_DESC":
            events.reverse()
        return self._page(events, query)

    @staticmethod
    def _page(items: list[Any], query: dict[str, list[str]]) -> dict[str, Any]:
        try:
            limit = int(query.get("limit", ["100"])[-1])
            start = int(query.get("page_id", ["0"])[-1] or 0)
        except ValueError as exc:
            raise _Answer(422, {"detail": [_err("int_parsing", ["query", "limit"], str(exc), None)]}) from exc
        if not 0 < limit <= 100:
            raise _Answer(
                422,
                {
                    "detail": [
                        _err(
                            "less_than_equal",
                            ["query", "limit"],
                            "Input should be greater than 0 and at most 100",
                            limit,
                        )
                    ]
                },
            )
        page = items[start : start + limit]
        more = start + limit < len(items)
        return {"items": page, "next_page_id": str(start + limit) if more else None}


def _ids(query: dict[str, list[str]]) -> list[str]:
    """Parsed ``ids`` (FastAPI ``list[UUID]``: repeated parameters, 1..99 of them) or a 422."""
    raw = query.get("ids")
    if not raw:
        raise _Answer(422, {"detail": [_err("missing", ["query", "ids"], "Field required", None)]})
    parsed = []
    for i, text in enumerate(raw):
        key = _parse_uuid(text)
        if key is None:
            raise _Answer(
                422,
                {"detail": [_err("uuid_parsing", ["query", "ids", i], "Input should be a valid UUID", text)]},
            )
        parsed.append(key)
    if len(parsed) >= 100:
        raise _Answer(500, {"detail": "Internal Server Error"})  # the real router asserts len(ids) < 100
    return parsed


class _Handler(BaseHTTPRequestHandler):
    cloud: CloudV1Server
    server_version = "cloud-v1-standin/1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer = self.cloud.handle(self.command, self.path, headers, raw)
        data = json.dumps(answer.payload).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = _serve
    do_POST = _serve
    do_PATCH = _serve
    do_DELETE = _serve
