"""OpenHands unit-test generation: submit without blocking, collect and verify later.

The client (``generator``, two backends behind one protocol, the HTTP layer, task IDs), verification of
what the agent wrote (``verify``) and the code path both faces call (``generation``). May import
``runner.engine``, ``runner.report`` and ``runner.config``; never ``runner.run``'s faces
(``runner.cli``, ``runner.action``) or ``runner.github``.
"""

from __future__ import annotations

from runner.openhands.backend import AgentState, GenerationRequest, TaskStatus
from runner.openhands.batch import BatchRef
from runner.openhands.errors import (
    InvalidTaskIdError,
    OpenHandsAuthError,
    OpenHandsError,
    OpenHandsUnavailableError,
)
from runner.openhands.generator import OpenHandsTestGenerator, TestGenerationResult
from runner.openhands.settings import DEFAULT_CLOUD_URL, OpenHandsSettings
from runner.openhands.task_id import TaskRef
from runner.openhands.verify import Verification, verify_generated_tests

__all__ = [
    "DEFAULT_CLOUD_URL",
    "AgentState",
    "BatchRef",
    "GenerationRequest",
    "InvalidTaskIdError",
    "OpenHandsAuthError",
    "OpenHandsError",
    "OpenHandsSettings",
    "OpenHandsTestGenerator",
    "OpenHandsUnavailableError",
    "TaskRef",
    "TaskStatus",
    "TestGenerationResult",
    "Verification",
    "verify_generated_tests",
]
