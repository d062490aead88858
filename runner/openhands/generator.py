"""``OpenHandsTestGenerator``: submit now, look later, collect and verify when done.

The seed's API: ``submit_test_generation_task``, ``get_task_status``, ``get_test_generation_results`` and
``generate_tests`` are coroutines (``await`` them). Synchronous callers use the ``*_sync`` twins, which
run the coroutine through ``runner.engine.aio.run_sync`` (the one home of that wrapping); the
``*_async`` names of earlier releases stay as aliases of the coroutines. ``submit_test_generation_task``
returns a self-describing task ID (``TaskRef``) as soon as the server has accepted the task;
``get_task_status`` makes one look and never waits; ``get_test_generation_results`` polls until the
agent ends, then fetches the file, writes it into the workspace and runs it under coverage itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from runner.engine.aio import run_sync
from runner.openhands.agent_server import AgentServerBackend
from runner.openhands.backend import AgentState, Backend, GenerationRequest, TaskStatus
from runner.openhands.batch import (
    BatchRef,
    batch_result,
    batch_status,
    failed_module_result,
    is_batch_id,
    module_outputs,
)
from runner.openhands.cloud import CloudBackend
from runner.openhands.errors import OpenHandsError, redact
from runner.openhands.prompt import build_prompt, build_title
from runner.openhands.settings import OpenHandsSettings
from runner.openhands.task_id import TaskRef, check_relative_path
from runner.openhands.verify import (
    DEFAULT_RERUNS,
    Verification,
    Verifier,
    coverage_include,
)

__all__ = ["OpenHandsTestGenerator", "TestGenerationResult"]

DEFAULT_THRESHOLD = 80.0
MODULES_PER_SLOT = 4  # a batch verifies up to this many modules per test process slot at once


@dataclass
class TestGenerationResult:
    """What ``collect`` found. ``status`` is COMPLETED only when verification passed."""

    __test__ = False  # not a pytest test class

    task_id: str
    status: TaskStatus
    success: bool
    module_path: str
    output_path: str
    threshold: float
    tests_passed: bool
    coverage: float | None
    generated_file: str | None
    agent_status: str | None
    agent_message: str | None
    conversation_url: str | None
    duration_s: float
    reason: str | None
    test_output: str = ""
    coverage_before: float | None = None
    funnel: dict[str, int] = field(default_factory=dict)
    tests: list[dict[str, Any]] = field(default_factory=list)  # every generated test: verdict + reason

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "success": self.success,
            "status": str(self.status),
            "module_path": self.module_path,
            "output_path": self.output_path,
            "generated_file": self.generated_file,
            "tests_passed": self.tests_passed,
            "coverage": self.coverage,
            "threshold": self.threshold,
            "agent_status": self.agent_status,
            "agent_message": self.agent_message,
            "conversation_url": self.conversation_url,
            "duration_s": round(self.duration_s, 3),
            "reason": self.reason,
            "test_output": self.test_output,
            "coverage_before": self.coverage_before,
            "funnel": self.funnel,
            "tests": self.tests,
        }


class OpenHandsTestGenerator:
    """Client for unit-test generation on OpenHands (Cloud V1 API or a self-hosted agent-server)."""

    def __init__(
        self,
        settings: OpenHandsSettings | None = None,
        *,
        workspace: str | os.PathLike[str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        python: str | None = None,
        test_timeout: float = 600.0,
        setup_command: list[str] | None = None,
        write_to_workspace: bool = True,
        test_reruns: int = DEFAULT_RERUNS,
        existing_tests: Sequence[str] = (),
        **overrides: Any,
    ) -> None:
        self.settings = (settings or OpenHandsSettings()).with_overrides(**overrides)
        self.workspace = Path(workspace or os.environ.get("GITHUB_WORKSPACE") or os.getcwd())
        self._transport = transport
        self.python = python
        self.test_timeout = test_timeout
        self.setup_command = setup_command
        self.write_to_workspace = write_to_workspace
        if test_reruns < 0:
            raise ValueError(f"test reruns must be >= 0, got {test_reruns}")
        self.test_reruns = test_reruns  # each kept test passes in this many more fresh processes
        self.existing_tests = [check_relative_path(p, "existing test") for p in existing_tests]
        self.submit_concurrency = 4  # requests in flight while a batch is submitted
        # Test processes a collect runs at once, all modules together (one module's run one by one).
        self.verify_concurrency = max(1, min(4, os.cpu_count() or 1))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> OpenHandsTestGenerator:
        """Settings from OPENHANDS_API_URL, OPENHANDS_API_KEY, OPENHANDS_BACKEND, OPENHANDS_LLM_*,
        OPENHANDS_REPO_URL / OPENHANDS_REPO_REF (else GITHUB_SERVER_URL/GITHUB_REPOSITORY, GITHUB_SHA)."""
        setting_names = set(OpenHandsSettings.__dataclass_fields__)
        overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in setting_names}
        return cls(OpenHandsSettings.from_env(env, **overrides), **kwargs)

    def _backend(self) -> Backend:
        if self.settings.backend == "agent-server":
            repo_url = self.settings.local_repo_url(self.workspace)
            return AgentServerBackend(self.settings, repo_url=repo_url, transport=self._transport)
        return CloudBackend(self.settings, transport=self._transport)

    def redact(self, text: str) -> str:
        return redact(text, *self.settings.secrets())

    # -- submit -------------------------------------------------------------------------------

    def prepare_request(
        self, module_path: str, output_path: str, coverage_threshold: float
    ) -> GenerationRequest:
        """Validate the request before anything is sent (ValueError names the bad field)."""
        module = check_relative_path(module_path, "module path")
        output = check_relative_path(output_path, "output path")
        if not 0 <= float(coverage_threshold) <= 100:
            raise ValueError(f"coverage threshold must be between 0 and 100, got {coverage_threshold}")
        if not (self.workspace / module).exists():
            raise ValueError(f"module path {module!r} does not exist in {self.workspace}")
        if not output.endswith(".py"):
            raise ValueError(f"output path {output!r} must name a .py file")
        include = coverage_include(module, self.workspace)
        return GenerationRequest(
            module_path=module,
            output_path=output,
            coverage_threshold=float(coverage_threshold),
            prompt=build_prompt(module, output, float(coverage_threshold), include),
            title=build_title(module),
        )

    def prepare_requests(
        self, module_path: str | Sequence[str], output_path: str, coverage_threshold: float
    ) -> list[GenerationRequest]:
        """One request per module (``output_path`` a ``{stem}`` template for several); ValueError first."""
        modules = [module_path] if isinstance(module_path, str) else list(module_path)
        pairs = module_outputs(modules, output_path)
        return [self.prepare_request(m, out, coverage_threshold) for m, out in pairs]

    async def submit_test_generation_task(
        self,
        module_path: str | Sequence[str],
        output_path: str,
        coverage_threshold: float = DEFAULT_THRESHOLD,
    ) -> str:
        """Send the task; returns its ID as soon as the server accepted it (never waits for the agent).

        ``module_path`` may be a list: one conversation per module starts at once (at most
        ``submit_concurrency`` requests in flight, each retried and idempotent) and ONE batch task ID
        comes back; ``output_path`` is then a template with ``{stem}``.
        """
        requests = self.prepare_requests(module_path, output_path, coverage_threshold)
        backend = self._backend()
        try:
            if isinstance(module_path, str) or len(requests) == 1:
                ref = await backend.submit(requests[0], submitted_at=time.time())
                return ref.encode()
            limit = asyncio.Semaphore(self.submit_concurrency)

            async def one(request: GenerationRequest) -> TaskRef:
                async with limit:
                    return await backend.submit(request, submitted_at=time.time())

            done = await asyncio.gather(*(one(r) for r in requests), return_exceptions=True)
            refs = tuple(r for r in done if isinstance(r, TaskRef))
            failed = [(r, e) for r, e in zip(requests, done, strict=True) if isinstance(e, BaseException)]
            if failed:
                # No batch ID will name the tasks that did start: stop their agents (best effort).
                for ref in refs:
                    with contextlib.suppress(OpenHandsError):
                        await backend.cancel(ref, await backend.status(ref))
                request, error = failed[0]
                if isinstance(error, OpenHandsError):
                    error.args = (f"{request.module_path}: {error}",)
                raise error
        finally:
            await backend.aclose()
        return BatchRef(backend=self.settings.backend, members=refs).encode()

    submit_test_generation_task_async = submit_test_generation_task

    def submit_test_generation_task_sync(
        self,
        module_path: str | Sequence[str],
        output_path: str,
        coverage_threshold: float = DEFAULT_THRESHOLD,
    ) -> str:
        return run_sync(self.submit_test_generation_task(module_path, output_path, coverage_threshold))

    # -- status -------------------------------------------------------------------------------

    def _ref(self, task_id: str | TaskRef) -> TaskRef:
        ref = task_id if isinstance(task_id, TaskRef) else TaskRef.parse(task_id)
        if ref.backend != self.settings.backend:
            raise ValueError(
                f"task {ref.id} belongs to the {ref.backend} backend, but this client is set up for "
                f"{self.settings.backend} (set OPENHANDS_BACKEND / openhands-backend)"
            )
        return ref

    @staticmethod
    def _state_dict(ref: TaskRef, state: AgentState) -> dict[str, Any]:
        return {
            "task_id": ref.encode(),
            "backend": ref.backend,
            "status": str(state.status),
            "agent_status": state.agent_status,
            "reason": state.reason,
            "conversation_id": state.conversation_id,
            "conversation_url": state.conversation_url,
            "module_path": ref.module_path,
            "output_path": ref.output_path,
            "threshold": ref.threshold,
        }

    def _any_ref(self, task_id: str) -> TaskRef | BatchRef:
        if not is_batch_id(task_id):
            return self._ref(task_id)
        batch = BatchRef.parse(task_id)
        if batch.backend != self.settings.backend:
            raise ValueError(
                f"the batch belongs to the {batch.backend} backend, but this client is set up for "
                f"{self.settings.backend} (set OPENHANDS_BACKEND / openhands-backend)"
            )
        return batch

    async def get_task_status(self, task_id: str) -> dict[str, Any]:
        """One look, no waiting. ``status`` COMPLETED means the agent finished; collect verifies.

        For a batch: ``modules`` has one entry per module and ``status`` is the whole batch's
        (COMPLETED only when every module's agent finished, FAILED once all ended and one failed)."""
        ref = self._any_ref(task_id)
        backend = self._backend()
        try:
            if isinstance(ref, TaskRef):
                return self._state_dict(ref, await backend.status(ref))
            states = await asyncio.gather(*(backend.status(m) for m in ref.members))
        finally:
            await backend.aclose()
        modules = [self._state_dict(m, st) for m, st in zip(ref.members, states, strict=True)]
        failed = [m for m in modules if m["status"] == str(TaskStatus.FAILED)]
        return {
            "task_id": ref.encode(),
            "backend": ref.backend,
            "status": batch_status([m["status"] for m in modules]),
            "reason": "; ".join(f"{m['module_path']}: {m['reason']}" for m in failed) or None,
            "module_paths": [m.module_path for m in ref.members],
            "modules": modules,
        }

    get_task_status_async = get_task_status

    def get_task_status_sync(self, task_id: str) -> dict[str, Any]:
        return run_sync(self.get_task_status(task_id))

    # -- collect ------------------------------------------------------------------------------

    async def _wait(self, backend: Backend, ref: TaskRef, timeout: float, poll_interval: float) -> AgentState:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            state = await backend.status(ref)
            if state.status.terminal:
                return state
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"task {ref.id} did not finish within {timeout:g}s "
                    f"(last status {state.status}, agent status {state.agent_status})"
                )
            await asyncio.sleep(min(poll_interval, remaining))

    async def get_test_generation_results(
        self,
        task_id: str,
        timeout: float = 600,
        poll_interval: float = 5.0,
        *,
        cancel_on_timeout: bool = False,
    ) -> dict[str, Any]:
        """Wait for the agent, then verify its tests; raises TimeoutError if it does not end in time.

        For a batch, each module is verified (in its own worktree) as soon as its agent ends, several at
        once; TimeoutError names the modules that did not end in time (the others are still verified
        and written first)."""
        ref = self._any_ref(task_id)
        if isinstance(ref, BatchRef):
            return await self._batch_results(ref, timeout, poll_interval, cancel_on_timeout, partial=False)
        backend = self._backend()
        try:
            try:
                state = await self._wait(backend, ref, timeout, poll_interval)
            except TimeoutError:
                if cancel_on_timeout:
                    with contextlib.suppress(OpenHandsError):
                        await backend.cancel(ref, await backend.status(ref))
                raise
            async with Verifier(self.workspace) as verifier:
                result = await self._collect(backend, ref, state, verifier)
        finally:
            await backend.aclose()
        return result.to_dict()

    get_test_generation_results_async = get_test_generation_results

    def get_test_generation_results_sync(
        self,
        task_id: str,
        timeout: float = 600,
        poll_interval: float = 5.0,
        *,
        cancel_on_timeout: bool = False,
    ) -> dict[str, Any]:
        return run_sync(
            self.get_test_generation_results(
                task_id, timeout, poll_interval, cancel_on_timeout=cancel_on_timeout
            )
        )

    async def collect_batch(
        self, task_id: str, timeout: float, poll_interval: float, *, cancel_on_timeout: bool = True
    ) -> dict[str, Any]:
        """Like ``get_test_generation_results`` for a batch, but a module that does not end in time
        becomes a FAILED row (its agent paused) while the others are still verified and written."""
        ref = self._any_ref(task_id)
        if not isinstance(ref, BatchRef):
            raise ValueError("collect_batch needs a batch task ID")
        return await self._batch_results(ref, timeout, poll_interval, cancel_on_timeout, partial=True)

    async def _batch_results(
        self, batch: BatchRef, timeout: float, poll_interval: float, cancel_on_timeout: bool, *, partial: bool
    ) -> dict[str, Any]:
        backend = self._backend()
        # Modules being verified at once (each has a worktree and a layer meanwhile): more than the
        # process slots, so that one module's next process starts while another's runs.
        limit = asyncio.Semaphore(MODULES_PER_SLOT * self.verify_concurrency)
        late: list[TaskRef] = []
        # One private repository and one environment pool for the whole batch (a worktree and a layer
        # per module), and ``verify_concurrency`` test processes at once, whichever module they are of.
        verifier = Verifier(self.workspace, processes=self.verify_concurrency)
        try:

            async def one(member: TaskRef) -> dict[str, Any]:
                # Each module is verified as soon as its agent ends, while the others still run.
                try:
                    state = await self._wait(backend, member, timeout, poll_interval)
                except TimeoutError as exc:
                    late.append(member)
                    if cancel_on_timeout:
                        with contextlib.suppress(OpenHandsError):
                            await backend.cancel(member, await backend.status(member))
                    paused = "; the agent was paused" if cancel_on_timeout else ""
                    return failed_module_result(member, f"gave up waiting: {exc}{paused}")
                except OpenHandsError as exc:
                    return failed_module_result(member, self.redact(str(exc)))
                async with limit:
                    return (await self._collect(backend, member, state, verifier)).to_dict()

            results = await asyncio.gather(*(one(m) for m in batch.members))
        finally:
            try:
                await verifier.close()
            finally:
                await backend.aclose()
        if late and not partial:
            # The modules that did end are verified and written; the seed's API still raises.
            names = ", ".join(m.module_path for m in batch.members if m in late)
            raise TimeoutError(
                f"{len(late)} of {len(batch.members)} modules did not finish within {timeout:g}s: {names}"
            )
        return batch_result(batch, list(results))

    async def _collect(
        self, backend: Backend, ref: TaskRef, state: AgentState, verifier: Verifier
    ) -> TestGenerationResult:
        message = None
        with contextlib.suppress(OpenHandsError):  # the message is informative only
            message = await backend.agent_message(ref, state)
        result = TestGenerationResult(
            task_id=ref.encode(), status=TaskStatus.FAILED, success=False, module_path=ref.module_path,
            output_path=ref.output_path, threshold=ref.threshold, tests_passed=False, coverage=None,
            generated_file=None, agent_status=state.agent_status, agent_message=message,
            conversation_url=state.conversation_url, duration_s=0.0, reason=state.reason,
        )  # fmt: skip
        if state.status is TaskStatus.COMPLETED:
            try:
                content = await backend.fetch_output(ref, state)
            except OpenHandsError as exc:
                content, result.reason = None, self.redact(str(exc))
            if content is None:
                result.reason = result.reason or (
                    f"the agent said it finished, but {ref.output_path} does not exist in its workspace"
                )
            else:
                verification = await verifier.verify(
                    content=content, module_path=ref.module_path, output_path=ref.output_path,
                    threshold=ref.threshold, base_commit=ref.base_commit, python=self.python,
                    timeout=self.test_timeout, setup_command=self.setup_command,
                    existing_tests=self.existing_tests, reruns=self.test_reruns,
                )  # fmt: skip
                # The pruned file when some tests were rejected; the agent's file when none was kept.
                self._apply(verification, result)
                self._write_workspace_file(ref, verification.content or content, result)
        result.duration_s = max(0.0, time.time() - ref.submitted_at)
        return result

    def _write_workspace_file(self, ref: TaskRef, content: bytes, result: TestGenerationResult) -> None:
        if not self.write_to_workspace:
            return
        root = self.workspace.resolve()
        target = (root / ref.output_path).resolve()
        if root not in target.parents:
            result.reason = f"output path {ref.output_path!r} leaves the workspace"
            result.success, result.status = False, TaskStatus.FAILED
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.write_bytes(content)
        os.replace(tmp, target)
        result.generated_file = ref.output_path

    @staticmethod
    def _apply(verification: Verification, result: TestGenerationResult) -> None:
        result.tests_passed = verification.tests_passed
        result.coverage = verification.coverage
        result.test_output = verification.output_tail
        result.reason = verification.reason
        result.coverage_before = verification.coverage_before
        result.funnel = dict(verification.funnel)
        result.tests = list(verification.tests)
        result.success = result.reason is None and verification.kept_tests > 0
        result.status = TaskStatus.COMPLETED if result.success else TaskStatus.FAILED

    # -- blocking, for backward compatibility --------------------------------------------------

    async def generate_tests(
        self,
        module_path: str | Sequence[str],
        output_path: str,
        coverage_threshold: float = DEFAULT_THRESHOLD,
        *,
        timeout: float = 600,
        poll_interval: float = 5.0,
    ) -> dict[str, Any]:
        task_id = await self.submit_test_generation_task(module_path, output_path, coverage_threshold)
        return await self.get_test_generation_results(
            task_id, timeout, poll_interval, cancel_on_timeout=True
        )

    generate_tests_async = generate_tests

    def generate_tests_sync(
        self,
        module_path: str | Sequence[str],
        output_path: str,
        coverage_threshold: float = DEFAULT_THRESHOLD,
        *,
        timeout: float = 600,
        poll_interval: float = 5.0,
    ) -> dict[str, Any]:
        return run_sync(
            self.generate_tests(
                module_path, output_path, coverage_threshold, timeout=timeout, poll_interval=poll_interval
            )
        )
