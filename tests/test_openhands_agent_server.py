"""End to end against a real ``openhands-agent-server`` on 127.0.0.1, driven by the scripted LLM.

The agent really runs its tools (the fake LLM only decides which): it writes the test file in the
server-side checkout that submit prepared, and finishes. Then collect fetches the file, writes it
into the workspace and verifies it with pytest + coverage.py in a worktree. The failure paths are
the real server's too: the LLM erroring, finishing without the file, failing tests, low coverage, a
restart between submit and collect, an unreachable server, a wrong key. Both faces are exercised:
the library, the CLI and the action entrypoint (as processes).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.openhands import (
    OpenHandsAuthError,
    OpenHandsTestGenerator,
    OpenHandsUnavailableError,
    TaskRef,
)

from .conftest import PY, git, worktree_list
from .openhands_support.agent_server import AgentServer
from .openhands_support.calc_project import FAILING, FULL, PARTIAL
from .openhands_support.fake_llm import FakeLLM, finish, llm_error, write_file
from .test_action import errors, run_step

pytestmark = pytest.mark.openhands




@pytest.fixture
def env(agent_server: AgentServer, fake_llm: FakeLLM, tmp_path: Path) -> Iterator[dict[str, str]]:
    server_root = tmp_path / "server-checkouts"
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
        "OPENHANDS_SERVER_ROOT": str(server_root),
    }


def _unique(name: str) -> str:
    return f"tests/test_{name}_{uuid.uuid4().hex[:8]}.py"


def _generator(env: dict[str, str], repo: Path, **kw: object) -> OpenHandsTestGenerator:
    return OpenHandsTestGenerator.from_env({**env, "OPENHANDS_REPO_URL": str(repo)}, workspace=repo, **kw)


def test_submit_returns_at_once_and_collect_verifies(
    env: dict[str, str], calc_repo: Path, fake_llm: FakeLLM, runner_temp: Path
) -> None:
    out = _unique("ok")
    fake_llm.add_scenario(out, [write_file(out, FULL), finish("Wrote the tests; coverage 100%.")])
    gen = _generator(env, calc_repo)
    task_id = gen.submit_test_generation_task_sync("calc.py", out, coverage_threshold=90)
    ref = TaskRef.parse(task_id)
    assert ref.backend == "agent-server" and ref.base_commit == git(calc_repo, "rev-parse", "HEAD")
    first = gen.get_task_status_sync(task_id)
    assert first["status"] in ("QUEUED", "RUNNING", "COMPLETED") and first["task_id"] == task_id
    result = gen.get_test_generation_results_sync(task_id, timeout=120, poll_interval=0.3)
    assert result["status"] == "COMPLETED" and result["success"] is True, result["reason"]
    assert (result["tests_passed"], result["coverage"], result["threshold"]) == (True, 100.0, 90.0)
    assert result["generated_file"] == out and (calc_repo / out).read_text() == FULL
    assert result["agent_message"] == "Wrote the tests; coverage 100%."
    assert result["conversation_url"] == f"{env['OPENHANDS_API_URL']}/api/conversations/{ref.id}"
    assert "2 passed" in result["test_output"] and result["duration_s"] > 0
    assert gen.get_task_status_sync(task_id)["status"] == "COMPLETED"
    # The LLM key went to the server for the agent; nothing of ours kept it.
    assert "llm-secret-value" not in json.dumps(result)


@pytest.mark.parametrize(
    "name, steps, reason",
    [
        ("llm_down", [llm_error(500)], "LLMServiceUnavailableError"),
        ("no_file", [finish("All done, 95% coverage!")], "does not exist in its workspace"),
        ("failing", "FAILING", "the generated tests fail (pytest exit code 1)"),
        ("low", "PARTIAL", "% < 80% of calc.py"),
    ],
)
def test_failure_paths_end_failed_with_the_reason(
    env: dict[str, str], calc_repo: Path, fake_llm: FakeLLM, runner_temp: Path,
    name: str, steps: object, reason: str,
) -> None:  # fmt: skip
    out = _unique(name)
    if isinstance(steps, str):
        steps = [write_file(out, {"FAILING": FAILING, "PARTIAL": PARTIAL}[steps]), finish("done")]
    fake_llm.add_scenario(out, steps)  # type: ignore[arg-type]
    gen = _generator(env, calc_repo)
    task_id = gen.submit_test_generation_task_sync("calc.py", out)
    result = gen.get_test_generation_results_sync(task_id, timeout=120, poll_interval=0.3)
    assert result["status"] == "FAILED" and result["success"] is False
    assert reason in result["reason"]
    if name == "no_file":
        assert result["agent_message"] == "All done, 95% coverage!"  # the claim is reported, not believed
        assert result["generated_file"] is None and not (calc_repo / out).exists()
    if name in ("failing", "low"):
        assert (calc_repo / out).exists() and result["generated_file"] == out


def test_server_restart_between_submit_and_collect(
    env: dict[str, str], calc_repo: Path, fake_llm: FakeLLM, agent_server: AgentServer, runner_temp: Path
) -> None:
    out = _unique("restart")
    fake_llm.add_scenario(out, [write_file(out, FULL), finish("ok")])
    gen = _generator(env, calc_repo)
    task_id = gen.submit_test_generation_task_sync("calc.py", out)
    # Let the agent end, then restart the server: collect must still find the task and its file.
    while gen.get_task_status_sync(task_id)["status"] not in ("COMPLETED", "FAILED"):
        pass
    agent_server.restart()
    result = gen.get_test_generation_results_sync(task_id, timeout=120, poll_interval=0.3)
    assert result["status"] == "COMPLETED", result["reason"]


def test_unknown_conversation_is_failed_not_hanging(
    env: dict[str, str], calc_repo: Path, runner_temp: Path
) -> None:
    gen = _generator(env, calc_repo)
    ghost = TaskRef(
        backend="agent-server", id=str(uuid.uuid4()), module_path="calc.py", output_path="tests/test_x.py",
        threshold=80, repo_dir="/tmp/nowhere", submitted_at=1.0,
    )  # fmt: skip
    state = gen.get_task_status_sync(ghost.encode())
    assert state["status"] == "FAILED" and "does not know this conversation" in state["reason"]
    result = gen.get_test_generation_results_sync(ghost.encode(), timeout=5, poll_interval=0.1)
    assert result["status"] == "FAILED"


def test_wrong_key_and_unreachable_server(env: dict[str, str], calc_repo: Path, runner_temp: Path) -> None:
    wrong = _generator({**env, "OPENHANDS_API_KEY": "not-the-key"}, calc_repo)
    with pytest.raises(OpenHandsAuthError, match="rejected the API key") as info:
        wrong.submit_test_generation_task_sync("calc.py", "tests/test_k.py")
    assert "not-the-key" not in str(info.value)
    down = _generator({**env, "OPENHANDS_API_URL": "http://127.0.0.1:9"}, calc_repo, retries=1, backoff=0.01)
    with pytest.raises(OpenHandsUnavailableError, match="gave up after 2 attempt"):
        down.submit_test_generation_task_sync("calc.py", "tests/test_k.py")


def test_our_wait_timeout_is_a_timeout_error_and_collect_makes_it_failed(
    env: dict[str, str], calc_repo: Path, fake_llm: FakeLLM, runner_temp: Path
) -> None:
    from runner.openhands.generation import collect

    out = _unique("slow")
    fake_llm.add_scenario(out, [llm_error(500)])
    gen = _generator(
        {**env, "OPENHANDS_LLM_NUM_RETRIES": "3", "OPENHANDS_LLM_RETRY_MAX_WAIT": "30"}, calc_repo
    )
    task_id = gen.submit_test_generation_task_sync("calc.py", out)
    with pytest.raises(TimeoutError, match=r"did not finish within 0\.5s"):
        gen.get_test_generation_results_sync(task_id, timeout=0.5, poll_interval=0.1)
    result = collect(gen, task_id, timeout=0.5, poll_interval=0.1)
    assert result["status"] == "FAILED" and "gave up waiting" in result["reason"]
    # The pause lands once the in-flight step (an LLM retry wait here) is over: it stops spending.
    deadline = time.monotonic() + 90
    while gen.get_task_status_sync(task_id)["agent_status"] not in ("paused", "error"):
        assert time.monotonic() < deadline, "the agent was not paused"
        time.sleep(0.5)


# -- the two faces, as processes --------------------------------------------------------------


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env}
    return subprocess.run(
        [PY, "-m", "runner", *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=300
    )


def test_cli_submit_status_collect(
    env: dict[str, str], calc_repo: Path, fake_llm: FakeLLM, runner_temp: Path
) -> None:
    out = _unique("cli")
    fake_llm.add_scenario(out, [write_file(out, FULL), finish("done")])
    env = {**env, "OPENHANDS_REPO_URL": str(calc_repo)}
    sub = _cli(["submit", "--module-path", "calc.py", "--output-path", out], env, calc_repo)
    assert sub.returncode == 0, sub.stderr
    task_id = sub.stdout.strip()
    assert TaskRef.parse(task_id).output_path == out
    status = _cli(["status", task_id], env, calc_repo)
    assert status.returncode == 0 and json.loads(status.stdout)["status"] in (
        "QUEUED",
        "RUNNING",
        "COMPLETED",
    )
    got = _cli(["collect", task_id, "--poll-interval", "0.3", "--result-json", "r.json"], env, calc_repo)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["coverage"] == 100.0
    assert json.loads((calc_repo / "r.json").read_text())["status"] == "COMPLETED"
    for secret in (env["OPENHANDS_API_KEY"], "llm-secret-value"):
        assert secret not in sub.stdout + sub.stderr + status.stdout + got.stdout + got.stderr
    bad = _cli(["collect", "oh1.agent-server.nope"], env, calc_repo)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "task-id" in bad.stderr


def test_action_submit_other_step_collect(
    env: dict[str, str], calc_repo: Path, fake_llm: FakeLLM, tmp_path: Path, runner_temp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    out = _unique("action")
    fake_llm.add_scenario(out, [write_file(out, FULL), finish("done")])
    for k, v in {**env, "OPENHANDS_REPO_URL": str(calc_repo)}.items():
        monkeypatch.setenv(k, v)
    key = env["OPENHANDS_API_KEY"]
    monkeypatch.delenv("OPENHANDS_API_KEY")
    inputs = {"openhands-api-key": key}
    (tmp_path / "s1").mkdir()
    (tmp_path / "s2").mkdir()
    submit_inputs = {**inputs, "mode": "submit", "module-path": "calc.py", "output-path": out}
    submitted = run_step(calc_repo, tmp_path / "s1", submit_inputs, runner_temp)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert submitted.outputs["task-status"] == "QUEUED"
    task_id = submitted.outputs["task-id"]
    assert [c.data for c in submitted.commands if c.command == "add-mask"] == [key, "llm-secret-value"]
    assert "Collect them in a later step" in submitted.summary
    before = worktree_list(calc_repo)
    # ... other workflow steps run here ...
    collected = run_step(
        calc_repo, tmp_path / "s2", {**inputs, "mode": "collect", "task-id": task_id, "poll-interval": "0.3"},
        runner_temp,
    )  # fmt: skip
    assert collected.returncode == 0, collected.stdout + collected.stderr
    o = collected.outputs
    assert (o["task-status"], o["generated-file"], o["coverage"], o["tests-passed"]) == (
        "COMPLETED",
        out,
        "100.00",
        "true",
    )
    assert o["results-file"] == ".worktree-runner/openhands-result.json"
    assert "✅ COMPLETED" in collected.summary and "100.0%" in collected.summary
    assert "2 passed" in collected.summary and "done" in collected.summary  # test output, agent message
    assert (calc_repo / out).read_text() == FULL and worktree_list(calc_repo) == before
    assert not errors(collected)
    for step in (submitted, collected):
        # Only the ::add-mask:: command itself may carry the key (that is how the runner learns it).
        shown = "".join(line for line in step.stdout.splitlines(True) if not line.startswith("::add-mask::"))
        assert key not in shown + step.stderr + step.summary + json.dumps(step.outputs)


def test_action_bad_inputs_name_the_input(
    env: dict[str, str], calc_repo: Path, tmp_path: Path, runner_temp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cases = [
        ({"mode": "submit", "output-path": "tests/t.py"}, "module-path"),
        ({"mode": "submit", "module-path": "nope.py", "output-path": "tests/t.py"}, "module-path"),
        ({"mode": "submit", "module-path": "calc.py", "output-path": "../t.py"}, "output-path"),
        (
            {"mode": "submit", "module-path": "calc.py", "output-path": "t.py", "coverage-threshold": "120"},
            "coverage-threshold",
        ),
        ({"mode": "collect"}, "task-id"),
        ({"mode": "collect", "task-id": "::error::pwned"}, "task-id"),
        ({"mode": "collect", "task-id": "x", "openhands-backend": "lambda"}, "openhands-backend"),
    ]
    for i, (inputs, name) in enumerate(cases):
        (tmp_path / f"b{i}").mkdir()
        step = run_step(calc_repo, tmp_path / f"b{i}", inputs, runner_temp)
        errs = errors(step)
        assert step.returncode == 2 and len(errs) == 1, (inputs, step.stdout)
        assert f"input '{name}'" in errs[0].data or name in errs[0].data, (name, errs[0].data)
        assert "pwned" not in [c.command for c in step.commands]
        assert not (calc_repo / ".worktree-runner").exists()
