"""The seed's usage of ``OpenHandsTestGenerator``, as written (apart from paths), against the real
agent-server driven by the scripted LLM.

Every method is awaited, with the seed's parameter names; ``get_test_generation_results`` raises
``TimeoutError`` when the task cannot finish in time; ``generate_tests`` is the blocking (awaited)
submit + wait + verify. The ``*_sync`` twins are the documented way for synchronous callers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.openhands import OpenHandsTestGenerator, TaskRef

from .openhands_support.agent_server import AgentServer
from .openhands_support.calc_project import FULL
from .openhands_support.fake_llm import FakeLLM, finish, llm_error, write_file

pytestmark = pytest.mark.openhands


@pytest.fixture
def env(agent_server: AgentServer, fake_llm: FakeLLM, tmp_path: Path) -> Iterator[dict[str, str]]:
    yield {
        "OPENHANDS_BACKEND": "agent-server",
        "OPENHANDS_API_URL": agent_server.url,
        "OPENHANDS_API_KEY": agent_server.api_key or "",
        "OPENHANDS_LLM_MODEL": "openai/fake",
        "OPENHANDS_LLM_BASE_URL": fake_llm.base_url,
        "OPENHANDS_LLM_API_KEY": "llm-secret-value",
        "OPENHANDS_LLM_NUM_RETRIES": "1",
        "OPENHANDS_LLM_RETRY_MAX_WAIT": "0",
        "OPENHANDS_MAX_ITERATIONS": "8",
        "OPENHANDS_SERVER_ROOT": str(tmp_path / "server-checkouts"),
    }


def _generator(env: dict[str, str], repo: Path) -> OpenHandsTestGenerator:
    return OpenHandsTestGenerator.from_env({**env, "OPENHANDS_REPO_URL": str(repo)}, workspace=repo)


def _out(name: str) -> str:
    return f"tests/test_{name}_{uuid.uuid4().hex[:8]}.py"


def test_seed_submit_status_results(
    env: dict[str, str], calc_repo: Path, fake_llm: FakeLLM, runner_temp: Path
) -> None:
    out = _out("seed")
    fake_llm.add_scenario(out, [write_file(out, FULL), finish("Wrote the tests.")])
    generator = _generator(env, calc_repo)

    async def seed() -> tuple[str, dict[str, Any], dict[str, Any]]:
        # -- the seed, verbatim apart from the paths --
        task_id = await generator.submit_test_generation_task(
            module_path="calc.py", output_path=out, coverage_threshold=80
        )
        status = await generator.get_task_status(task_id)
        try:
            result = await generator.get_test_generation_results(task_id, timeout=600, poll_interval=5.0)
        except TimeoutError:
            raise AssertionError("the task should have finished") from None
        return task_id, status, result

    task_id, status, result = asyncio.run(seed())
    assert TaskRef.parse(task_id).module_path == "calc.py"
    assert status["task_id"] == task_id and status["status"] in ("QUEUED", "RUNNING", "COMPLETED")
    assert result["status"] == "COMPLETED" and result["success"] is True, result["reason"]
    assert result["threshold"] == 80.0 and result["coverage"] == 100.0
    assert (calc_repo / out).read_text() == FULL


def test_seed_timeout_error_on_a_task_that_cannot_finish(
    env: dict[str, str], calc_repo: Path, fake_llm: FakeLLM, runner_temp: Path
) -> None:
    out = _out("never")
    fake_llm.add_scenario(out, [llm_error(500)])  # the LLM keeps failing; retries wait 30 s each
    generator = _generator(
        {**env, "OPENHANDS_LLM_NUM_RETRIES": "3", "OPENHANDS_LLM_RETRY_MAX_WAIT": "30"}, calc_repo
    )

    async def seed() -> str:
        task_id = await generator.submit_test_generation_task(
            module_path="calc.py", output_path=out, coverage_threshold=80
        )
        try:
            await generator.get_test_generation_results(task_id, timeout=1, poll_interval=0.2)
        except TimeoutError as exc:
            return str(exc)
        raise AssertionError("no TimeoutError")

    message = asyncio.run(seed())
    assert "did not finish within 1s" in message


def test_seed_blocking_generate_tests_and_the_sync_twins(
    env: dict[str, str], calc_repo: Path, fake_llm: FakeLLM, runner_temp: Path
) -> None:
    out = _out("blocking")
    fake_llm.add_scenario(out, [write_file(out, FULL), finish("done")])
    generator = _generator(env, calc_repo)

    async def seed() -> dict[str, Any]:
        result = await generator.generate_tests(module_path="calc.py", output_path=out, coverage_threshold=80)
        return result

    result = asyncio.run(seed())
    assert result["status"] == "COMPLETED", result["reason"]
    assert (calc_repo / out).read_text() == FULL
    # Synchronous callers: the *_sync twins run the same coroutines.
    sync_out = _out("sync")
    fake_llm.add_scenario(sync_out, [write_file(sync_out, FULL), finish("done")])
    task_id = generator.submit_test_generation_task_sync(
        module_path="calc.py", output_path=sync_out, coverage_threshold=80
    )
    assert generator.get_task_status_sync(task_id)["task_id"] == task_id
    sync_result = generator.get_test_generation_results_sync(task_id, timeout=120, poll_interval=0.3)
    assert sync_result["status"] == "COMPLETED", sync_result["reason"]


def test_the_methods_are_coroutines() -> None:
    for name in (
        "submit_test_generation_task", "get_task_status", "get_test_generation_results", "generate_tests",
    ):  # fmt: skip
        assert asyncio.iscoroutinefunction(getattr(OpenHandsTestGenerator, name)), name
        assert not asyncio.iscoroutinefunction(getattr(OpenHandsTestGenerator, f"{name}_sync")), name
