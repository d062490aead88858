"""OpenHands unit-test generation: submit without blocking, collect and verify later."""

from __future__ import annotations

from .backend import AgentState, GenerationRequest, TaskStatus
from .errors import InvalidTaskIdError, OpenHandsAuthError, OpenHandsError, OpenHandsUnavailableError
from .generator import OpenHandsTestGenerator, TestGenerationResult
from .settings import DEFAULT_CLOUD_URL, OpenHandsSettings
from .task_id import TaskRef
from .verify import Verification, verify_generated_tests

__all__ = [
    "DEFAULT_CLOUD_URL",
    "AgentState",
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
