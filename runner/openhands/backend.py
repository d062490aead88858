"""What every backend offers, and the task states both map to."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from runner.openhands.task_id import TaskRef

__all__ = ["EXECUTION_STATUS", "AgentState", "Backend", "GenerationRequest", "TaskStatus"]


class TaskStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"

    @property
    def terminal(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED)


# OpenHands' execution_status -> ours (docs/openhands.md 5.1); both backends read it. `finished` is
# COMPLETED from the agent's side only: collect still verifies.
EXECUTION_STATUS: dict[str | None, TaskStatus] = {
    "idle": TaskStatus.QUEUED,
    "running": TaskStatus.RUNNING,
    "paused": TaskStatus.RUNNING,
    "finished": TaskStatus.COMPLETED,
    "error": TaskStatus.FAILED,
    "stuck": TaskStatus.FAILED,
    "waiting_for_confirmation": TaskStatus.FAILED,
    "deleting": TaskStatus.FAILED,
}


@dataclass(frozen=True)
class GenerationRequest:
    module_path: str
    output_path: str
    coverage_threshold: float
    prompt: str
    title: str


@dataclass(frozen=True)
class AgentState:
    """One look at a task. ``COMPLETED`` here means the *agent* says it finished: the generated
    tests are only trusted after ``collect`` has run them (see ``OpenHandsTestGenerator``)."""

    status: TaskStatus
    agent_status: str | None = None  # the server's own word (execution_status, start-task status)
    reason: str | None = None
    conversation_id: str | None = None
    conversation_url: str | None = None
    agent_message: str | None = None
    # cloud only: the sandbox the conversation runs in.
    sandbox_id: str | None = None
    sandbox_status: str | None = None


class Backend(Protocol):
    name: str

    async def submit(self, request: GenerationRequest, *, submitted_at: float) -> TaskRef: ...

    async def status(self, ref: TaskRef) -> AgentState: ...

    async def fetch_output(self, ref: TaskRef, state: AgentState) -> bytes | None:
        """The generated file's bytes, None if it does not exist (or cannot be read any more)."""
        ...

    async def agent_message(self, ref: TaskRef, state: AgentState) -> str | None: ...

    async def cancel(self, ref: TaskRef, state: AgentState) -> None:
        """Best effort: stop spending on a task we gave up on."""
        ...

    async def aclose(self) -> None: ...
