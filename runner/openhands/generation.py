"""OpenHands test generation from settings to result: the code path shared by the CLI and the action.

``submit`` returns the task ID; ``status`` one look; ``collect`` waits, verifies and always ends in
a terminal result: our own wait timeout becomes FAILED (after pausing the agent, so it stops
spending), as do an unreachable server or a rejected key once submit has happened.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.engine.aio import run_sync
from runner.openhands import (
    InvalidTaskIdError,
    OpenHandsError,
    OpenHandsSettings,
    OpenHandsTestGenerator,
    TaskRef,
)
from runner.openhands.batch import BatchRef, failed_batch_result, failed_module_result, parse_any

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
    test_reruns: int = 3
    existing_tests: list[str] = field(default_factory=list)


def make_generator(
    options: GenerationOptions, env: Mapping[str, str] | None = None
) -> OpenHandsTestGenerator:
    try:
        settings = OpenHandsSettings.from_env(
            env, url=options.url, api_key=options.api_key, backend=options.backend
        )
    except ValueError as exc:
        raise GenerationInputError("openhands settings", str(exc)) from None
    try:
        return OpenHandsTestGenerator(
            settings,
            workspace=options.workspace,
            python=options.python,
            test_timeout=options.test_timeout,
            setup_command=options.setup_command,
            test_reruns=options.test_reruns,
            existing_tests=options.existing_tests,
        )
    except ValueError as exc:
        raise GenerationInputError("test-reruns/existing-tests", str(exc)) from None


def submit(
    generator: OpenHandsTestGenerator, module_path: str | Sequence[str], output_path: str, threshold: float
) -> str:
    """One module (a plain task ID, as always) or several (one batch task ID; ``{stem}`` in the output)."""
    try:
        generator.prepare_requests(module_path, output_path, threshold)  # bad input: nothing sent
        if generator.settings.backend == "agent-server" and not generator.settings.llm_model:
            raise ValueError("the agent-server backend needs OPENHANDS_LLM_MODEL (the LLM the agent uses)")
    except ValueError as exc:
        raise GenerationInputError("module-path/output-path/coverage-threshold", str(exc)) from None
    return generator.submit_test_generation_task_sync(module_path, output_path, threshold)


def _parse(generator: OpenHandsTestGenerator, task_id: str) -> TaskRef | BatchRef:
    try:
        ref = parse_any(task_id)
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
    if isinstance(ref, BatchRef):
        try:
            return run_sync(
                generator.collect_batch(ref.encode(), timeout, poll_interval, cancel_on_timeout=True)
            )
        except OpenHandsError as exc:
            return failed_batch_result(ref, generator.redact(str(exc)))
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
    return failed_module_result(ref, reason)
