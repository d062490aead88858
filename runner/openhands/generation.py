"""OpenHands test generation from settings to result: the code path shared by the CLI and the action.

``submit`` returns the task ID; ``status`` one look; ``collect`` waits, verifies and always ends in
a terminal result: our own wait timeout becomes FAILED (after pausing the agent, so it stops
spending), as do an unreachable server or a rejected key once submit has happened.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.openhands import (
    InvalidTaskIdError,
    OpenHandsError,
    OpenHandsSettings,
    OpenHandsTestGenerator,
    TaskRef,
    TaskStatus,
)

__all__ = ["GenerationInputError", "GenerationOptions", "collect", "make_generator", "status", "submit"]


class GenerationInputError(ValueError):
    """Bad input, before anything was sent: ``field`` names the input/flag."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass
class GenerationOptions:
    workspace: Path
    url: str | None = None
    api_key: str | None = None
    backend: str | None = None
    python: str | None = None
    test_timeout: float = 600.0
    setup_command: list[str] | None = None


def make_generator(
    options: GenerationOptions, env: Mapping[str, str] | None = None
) -> OpenHandsTestGenerator:
    try:
        settings = OpenHandsSettings.from_env(
            env, url=options.url, api_key=options.api_key, backend=options.backend
        )
    except ValueError as exc:
        raise GenerationInputError("openhands settings", str(exc)) from None
    return OpenHandsTestGenerator(
        settings,
        workspace=options.workspace,
        python=options.python,
        test_timeout=options.test_timeout,
        setup_command=options.setup_command,
    )


def submit(generator: OpenHandsTestGenerator, module_path: str, output_path: str, threshold: float) -> str:
    try:
        generator.prepare_request(module_path, output_path, threshold)  # bad input: nothing sent
        if generator.settings.backend == "agent-server" and not generator.settings.llm_model:
            raise ValueError("the agent-server backend needs OPENHANDS_LLM_MODEL (the LLM the agent uses)")
    except ValueError as exc:
        raise GenerationInputError("module-path/output-path/coverage-threshold", str(exc)) from None
    return generator.submit_test_generation_task_sync(module_path, output_path, threshold)


def _parse(generator: OpenHandsTestGenerator, task_id: str) -> TaskRef:
    try:
        ref = TaskRef.parse(task_id)
    except InvalidTaskIdError as exc:
        raise GenerationInputError("task-id", str(exc)) from None
    if ref.backend != generator.settings.backend:
        raise GenerationInputError(
            "task-id",
            f"the task was submitted to the {ref.backend} backend, but the backend now is "
            f"{generator.settings.backend} (set openhands-backend / OPENHANDS_BACKEND)",
        )
    return ref


def status(generator: OpenHandsTestGenerator, task_id: str) -> dict[str, Any]:
    ref = _parse(generator, task_id)
    return generator.get_task_status_sync(ref.encode())


def collect(
    generator: OpenHandsTestGenerator, task_id: str, *, timeout: float, poll_interval: float
) -> dict[str, Any]:
    """The verified result; a terminal FAILED result (never an exception) for server-side trouble."""
    ref = _parse(generator, task_id)
    try:
        return generator.get_test_generation_results_sync(
            ref.encode(), timeout=timeout, poll_interval=poll_interval, cancel_on_timeout=True
        )
    except TimeoutError as exc:
        reason = f"gave up waiting: {exc}; the agent was paused"
    except OpenHandsError as exc:
        reason = generator.redact(str(exc))
    return failed_result(ref, reason)


def failed_result(ref: TaskRef, reason: str) -> dict[str, Any]:
    return {
        "task_id": ref.encode(),
        "success": False,
        "status": str(TaskStatus.FAILED),
        "module_path": ref.module_path,
        "output_path": ref.output_path,
        "generated_file": None,
        "tests_passed": False,
        "coverage": None,
        "threshold": ref.threshold,
        "agent_status": None,
        "agent_message": None,
        "conversation_url": None,
        "duration_s": round(max(0.0, time.time() - ref.submitted_at), 3),
        "reason": reason,
        "test_output": "",
        "coverage_before": None,
        "funnel": {},
        "tests": [],
    }
