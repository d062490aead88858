"""pytest fixtures for the OpenHands client tests (registered by ``pytest_plugins`` in tests/conftest.py).

* ``fake_llm`` (session): a started ``FakeLLM``; add a scenario per test with a unique match string.
* ``agent_server`` (session): a started real ``AgentServer`` (skips when the venv cannot be made, fails
  instead when ``WORKTREE_RUNNER_REQUIRE_AGENT_SERVER`` is set). Its LLM config comes with each
  conversation, so it does not depend on ``fake_llm``.
* ``cloud_server`` (function): a started ``CloudV1Server``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.openhands_support.agent_server import (
    REQUIRE_ENV,
    AgentServer,
    AgentServerUnavailable,
    agent_server_python,
)
from tests.openhands_support.calc_project import make_calc_repo
from tests.openhands_support.cloud_v1 import CloudV1Server
from tests.openhands_support.fake_llm import FakeLLM


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as llm:
        yield llm


@pytest.fixture(scope="session")
def agent_server_interpreter() -> str:
    """The Python of the pinned agent-server venv (made on first use), or skip/fail."""
    try:
        return agent_server_python()
    except AgentServerUnavailable as exc:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set but the agent-server is unavailable: {exc}", pytrace=False)
        pytest.skip(f"openhands-agent-server unavailable: {exc}")


@pytest.fixture(scope="session")
def agent_server(
    agent_server_interpreter: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentServer]:
    server = AgentServer(agent_server_interpreter, tmp_path_factory.mktemp("agent-server"))
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def cloud_server() -> Iterator[CloudV1Server]:
    with CloudV1Server() as cloud:
        yield cloud


@pytest.fixture
def calc_repo(tmp_path: Path) -> Path:
    """A git repository with ``calc.py`` (tests/openhands_support/calc_project.py) committed."""
    return make_calc_repo(tmp_path / "calc")
