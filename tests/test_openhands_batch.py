"""Several modules in one task: one conversation per module, one batch task ID, per-module status and
results, concurrent verification; a failing module fails the batch by name while the others' files are
still written. The task-ID format stays compatible: single-module IDs parse as before.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest

from runner.openhands import InvalidTaskIdError, OpenHandsAuthError, OpenHandsTestGenerator, TaskRef
from runner.openhands.batch import BatchRef, batch_status, module_outputs, parse_any

from .conftest import PY, git
from .openhands_support.agent_server import AgentServer
from .openhands_support.calc_project import FULL
from .openhands_support.cloud_v1 import CloudV1Server
from .openhands_support.fake_llm import FakeLLM, finish, llm_error, write_file
from .test_action import errors, run_step

STRS = "def shout(s):\n    return s.upper() + '!'\n"
NUMS = "def double(n):\n    return 2 * n\n"
STRS_TESTS = "from strs import shout\n\ndef test_shout():\n    assert shout('a') == 'A!'\n"
NUMS_TESTS = "from nums import double\n\ndef test_double():\n    assert double(2) == 4\n"


def add_modules(repo: Path) -> None:
    (repo / "strs.py").write_text(STRS)
    (repo / "nums.py").write_text(NUMS)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "more modules")


def _ref(module: str, n: int) -> TaskRef:
    return TaskRef(
        backend="agent-server", id=str(uuid.UUID(int=n)), module_path=module,
        output_path=f"tests/test_{module[:-3]}.py", threshold=80, repo_dir=f"/srv/{n}", submitted_at=1.0,
    )  # fmt: skip


def test_batch_id_round_trip_and_old_ids_still_parse() -> None:
    members = (_ref("calc.py", 1), _ref("strs.py", 2))
    batch = BatchRef(backend="agent-server", members=members)
    text = batch.encode()
    assert text.startswith("ohb1.agent-server.")
    assert parse_any(text) == batch
    single = members[0].encode()
    assert single.startswith("oh1.") and parse_any(single) == members[0]  # unchanged format


def test_batch_id_validates_every_member() -> None:
    good = _ref("calc.py", 1).encode()
    for payload, message in [
        (["oh1.agent-server.not-a-uuid.e30"], "not a worktree-runner task ID"),
        ({"a": 1}, "not a list of task IDs"),
        ([], "names no task"),
        ([good, _ref("calc.py", 2).encode().replace("agent-server", "cloud")], "malformed cloud id"),
    ]:
        raw = zlib.compress(json.dumps(payload).encode())
        text = "ohb1.agent-server." + base64.urlsafe_b64encode(raw).decode().rstrip("=")
        with pytest.raises(InvalidTaskIdError, match=message):
            BatchRef.parse(text)
    bomb = zlib.compress(b"[" + b" " * 10_000_000 + b"]")
    with pytest.raises(InvalidTaskIdError, match="too large"):
        BatchRef.parse("ohb1.agent-server." + base64.urlsafe_b64encode(bomb).decode().rstrip("="))
    with pytest.raises(InvalidTaskIdError, match="damaged"):
        BatchRef.parse("ohb1.agent-server.AAAA")


def test_output_template_and_its_errors() -> None:
    assert module_outputs(["calc.py", "pkg/strs.py", "pkg"], "tests/g/test_{stem}.py") == [
        ("calc.py", "tests/g/test_calc.py"), ("pkg/strs.py", "tests/g/test_strs.py"),
        ("pkg", "tests/g/test_pkg.py"),
    ]  # fmt: skip
    assert module_outputs(["calc.py"], "tests/test_x.py") == [("calc.py", "tests/test_x.py")]
    with pytest.raises(ValueError, match=r"must contain \{stem\}"):
        module_outputs(["calc.py", "strs.py"], "tests/test_x.py")
    with pytest.raises(ValueError, match="share a stem"):
        module_outputs(["a/calc.py", "b/calc.py"], "tests/test_{stem}.py")
    with pytest.raises(ValueError, match="twice"):
        module_outputs(["calc.py", "calc.py"], "tests/test_{stem}.py")


def test_batch_status_is_the_whole() -> None:
    assert batch_status(["COMPLETED", "COMPLETED"]) == "COMPLETED"
    assert batch_status(["COMPLETED", "RUNNING"]) == "RUNNING"
    assert batch_status(["FAILED", "RUNNING"]) == "RUNNING"  # not over until every module ended
    assert batch_status(["FAILED", "COMPLETED"]) == "FAILED"
    assert batch_status(["QUEUED", "QUEUED"]) == "QUEUED"


@pytest.mark.openhands
def test_three_module_batch_one_agent_fails(
    agent_server: AgentServer, fake_llm: FakeLLM, calc_repo: Path, tmp_path: Path, runner_temp: Path
) -> None:
    add_modules(calc_repo)
    template = f"tests/gen_{uuid.uuid4().hex[:8]}/test_{{stem}}.py"
    out = {stem: template.replace("{stem}", stem) for stem in ("calc", "strs", "nums")}
    fake_llm.add_scenario(out["calc"], [write_file(out["calc"], FULL), finish("calc done")])
    fake_llm.add_scenario(out["strs"], [llm_error(500)])
    fake_llm.add_scenario(out["nums"], [write_file(out["nums"], NUMS_TESTS), finish("nums done")])
    env = {
        "OPENHANDS_BACKEND": "agent-server", "OPENHANDS_API_URL": agent_server.url,
        "OPENHANDS_API_KEY": agent_server.api_key or "", "OPENHANDS_LLM_MODEL": "openai/fake",
        "OPENHANDS_LLM_BASE_URL": fake_llm.base_url, "OPENHANDS_LLM_API_KEY": "k",
        "OPENHANDS_LLM_NUM_RETRIES": "1", "OPENHANDS_LLM_RETRY_MAX_WAIT": "0",
        "OPENHANDS_MAX_ITERATIONS": "8", "OPENHANDS_SERVER_ROOT": str(tmp_path / "server"),
        "OPENHANDS_REPO_URL": str(calc_repo),
    }  # fmt: skip
    generator = OpenHandsTestGenerator.from_env(env, workspace=calc_repo)

    async def seed() -> tuple[str, dict[str, Any], dict[str, Any]]:
        task_id = await generator.submit_test_generation_task(
            module_path=["calc.py", "strs.py", "nums.py"], output_path=template, coverage_threshold=80
        )
        status = await generator.get_task_status(task_id)
        result = await generator.get_test_generation_results(task_id, timeout=120, poll_interval=0.3)
        return task_id, status, result

    task_id, status, result = asyncio.run(seed())
    batch = BatchRef.parse(task_id)
    assert [m.module_path for m in batch.members] == ["calc.py", "strs.py", "nums.py"]
    assert len({m.id for m in batch.members}) == 3  # one conversation per module
    assert [m["module_path"] for m in status["modules"]] == ["calc.py", "strs.py", "nums.py"]
    assert status["status"] in ("QUEUED", "RUNNING", "FAILED")

    assert result["status"] == "FAILED" and result["success"] is False
    assert result["reason"].startswith("strs.py: ") and "calc.py" not in result["reason"]
    rows = {m["module_path"]: m for m in result["modules"]}
    assert rows["calc.py"]["status"] == "COMPLETED" and rows["calc.py"]["funnel"]["kept"] == 2
    assert rows["nums.py"]["status"] == "COMPLETED" and rows["nums.py"]["coverage"] == 100.0
    assert rows["strs.py"]["status"] == "FAILED" and rows["strs.py"]["generated_file"] is None
    assert (calc_repo / out["calc"]).read_text() == FULL
    assert (calc_repo / out["nums"]).read_text() == NUMS_TESTS
    assert not (calc_repo / out["strs"]).exists()
    assert result["generated_files"] == [out["calc"], out["nums"]]
    # The final status look agrees: FAILED once every module ended, naming the failed one.
    after = generator.get_task_status_sync(task_id)
    assert after["status"] == "FAILED" and after["reason"].startswith("strs.py: ")


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "runner", *args], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


OFFLINE = {
    "OPENHANDS_BACKEND": "agent-server", "OPENHANDS_API_URL": "http://127.0.0.1:9",
    "OPENHANDS_LLM_MODEL": "openai/fake",
}  # fmt: skip


def test_cli_and_action_bad_batch_inputs_are_one_line_errors(
    calc_repo: Path, tmp_path: Path, runner_temp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_modules(calc_repo)
    for args, needle in [
        (["--module-path", "calc.py", "--module-path", "strs.py", "--output-path", "tests/t.py"], "{stem}"),
        (["--module-path", "calc.py", "--module-path", "nope.py", "--output-path", "t/{stem}.py"], "nope.py"),
    ]:
        got = _cli(["submit", *args], OFFLINE, calc_repo)
        assert got.returncode == 2 and got.stderr.count("\n") == 1 and needle in got.stderr, got.stderr
    got = _cli(["collect", "ohb1.agent-server.AAAA", "--test-reruns", "3"], OFFLINE, calc_repo)
    assert got.returncode == 2 and "task-id" in got.stderr and got.stderr.count("\n") == 1, got.stderr
    got = _cli(["collect", "x", "--test-reruns", "-1"], OFFLINE, calc_repo)
    assert got.returncode == 2 and "--test-reruns" in got.stderr
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "s").mkdir()
    step = run_step(
        calc_repo, tmp_path / "s",
        {"mode": "submit", "module-path": "calc.py\nstrs.py\n", "output-path": "tests/t.py"}, runner_temp,
    )  # fmt: skip
    [error] = errors(step)
    assert step.returncode == 2 and "output-path" in error.data and "{stem}" in error.data


@pytest.mark.openhands
def test_cli_batch_with_existing_tests(
    agent_server: AgentServer, fake_llm: FakeLLM, calc_repo: Path, tmp_path: Path, runner_temp: Path
) -> None:
    add_modules(calc_repo)
    (calc_repo / "tests").mkdir()
    (calc_repo / "tests" / "test_repo.py").write_text(STRS_TESTS)  # the repository's own test of strs
    git(calc_repo, "add", ".")
    git(calc_repo, "commit", "-q", "-m", "repo tests")
    template = f"tests/cli_{uuid.uuid4().hex[:8]}/test_{{stem}}.py"
    out = {stem: template.replace("{stem}", stem) for stem in ("strs", "nums")}
    fake_llm.add_scenario(out["strs"], [write_file(out["strs"], STRS_TESTS), finish("ok")])  # nothing new
    fake_llm.add_scenario(out["nums"], [write_file(out["nums"], NUMS_TESTS), finish("ok")])
    env = {
        **OFFLINE, "OPENHANDS_API_URL": agent_server.url, "OPENHANDS_API_KEY": agent_server.api_key or "",
        "OPENHANDS_LLM_BASE_URL": fake_llm.base_url, "OPENHANDS_LLM_API_KEY": "k",
        "OPENHANDS_LLM_NUM_RETRIES": "1", "OPENHANDS_LLM_RETRY_MAX_WAIT": "0",
        "OPENHANDS_SERVER_ROOT": str(tmp_path / "server"), "OPENHANDS_REPO_URL": str(calc_repo),
    }  # fmt: skip
    sub = _cli(["submit", "--module-path", "strs.py", "--module-path", "nums.py", "--output-path", template],
               env, calc_repo)  # fmt: skip
    assert sub.returncode == 0, sub.stderr
    task_id = sub.stdout.strip()
    assert task_id.startswith("ohb1.agent-server.")
    status = json.loads(_cli(["status", task_id], env, calc_repo).stdout)
    assert [m["module_path"] for m in status["modules"]] == ["strs.py", "nums.py"]
    got = _cli(
        ["collect", task_id, "--poll-interval", "0.3", "--existing-test", "tests/test_repo.py",
         "--test-reruns", "1"], env, calc_repo,
    )  # fmt: skip
    assert got.returncode == 1, got.stderr
    result = json.loads(got.stdout)
    rows = {m["module_path"]: m for m in result["modules"]}
    # strs.py: the repository's test already covers everything the generated one does.
    assert rows["strs.py"]["status"] == "FAILED" and rows["strs.py"]["coverage_before"] == 100.0
    assert rows["strs.py"]["tests"][0]["reason"].startswith("adds no line coverage beyond")
    # nums.py: the repository's test never imports it, so nothing was covered before.
    assert rows["nums.py"]["status"] == "COMPLETED" and rows["nums.py"]["coverage_before"] == 0.0
    assert result["reason"].startswith("strs.py: no generated test was kept")
    assert "FAILED" in got.stderr and got.stderr.count("\n") == 1


def _cloud_generator(cloud: CloudV1Server, repo: Path) -> OpenHandsTestGenerator:
    settings = {
        "OPENHANDS_BACKEND": "cloud", "OPENHANDS_API_URL": cloud.url, "OPENHANDS_API_KEY": cloud.api_key,
        "GITHUB_REPOSITORY": "acme/calc", "GITHUB_REF_NAME": "main",
    }  # fmt: skip
    return OpenHandsTestGenerator.from_env(settings, workspace=repo, backoff=0.01, test_reruns=1)


def test_cloud_batch_status_per_module_and_collect(
    cloud_server: CloudV1Server, calc_repo: Path, runner_temp: Path
) -> None:
    add_modules(calc_repo)
    template = f"tests/cloud_{uuid.uuid4().hex[:8]}/test_{{stem}}.py"
    out = {stem: template.replace("{stem}", stem) for stem in ("strs", "nums")}
    cloud_server.add_scenario(out["strs"], files={out["strs"]: STRS_TESTS})
    cloud_server.add_scenario(out["nums"], files={out["nums"]: NUMS_TESTS})
    gen = _cloud_generator(cloud_server, calc_repo)
    task_id = gen.submit_test_generation_task_sync(["strs.py", "nums.py"], template, 90)
    assert task_id.startswith("ohb1.cloud.") and len(BatchRef.parse(task_id).members) == 2
    first = gen.get_task_status_sync(task_id)
    assert first["status"] == "QUEUED" and [m["status"] for m in first["modules"]] == ["QUEUED", "QUEUED"]
    result = gen.get_test_generation_results_sync(task_id, timeout=30, poll_interval=0.05)
    assert result["status"] == "COMPLETED" and result["reason"] is None, result["reason"]
    assert [m["coverage"] for m in result["modules"]] == [100.0, 100.0]
    assert result["funnel"] == {
        "generated": 2, "passing": 2, "stable": 2, "asserting": 2, "adding_coverage": 2, "kept": 2,
    }  # fmt: skip
    assert gen.get_task_status_sync(task_id)["status"] == "COMPLETED"


def test_cloud_batch_submit_failure_names_the_module(
    cloud_server: CloudV1Server, calc_repo: Path, runner_temp: Path
) -> None:
    add_modules(calc_repo)
    cloud_server.fail_next(1, 401, method="POST", path="/api/v1/app-conversations")
    gen = _cloud_generator(cloud_server, calc_repo)
    with pytest.raises(OpenHandsAuthError, match=r"^(calc|strs|nums)\.py: .*rejected the API key"):
        gen.submit_test_generation_task_sync(["calc.py", "strs.py", "nums.py"], "tests/x_{stem}.py")


def test_batch_timeout_raises_naming_the_late_modules_and_collect_keeps_the_rest(
    cloud_server: CloudV1Server, calc_repo: Path, runner_temp: Path
) -> None:
    from runner.openhands.generation import collect

    add_modules(calc_repo)
    template = f"tests/late_{uuid.uuid4().hex[:8]}/test_{{stem}}.py"
    out = {stem: template.replace("{stem}", stem) for stem in ("strs", "nums")}
    cloud_server.add_scenario(out["strs"], files={out["strs"]: STRS_TESTS})
    cloud_server.add_scenario(out["nums"], execution_statuses=("idle", "running"))  # never ends
    gen = _cloud_generator(cloud_server, calc_repo)
    task_id = gen.submit_test_generation_task_sync(["strs.py", "nums.py"], template)
    with pytest.raises(TimeoutError, match=r"1 of 2 modules did not finish within 1s: nums\.py$"):
        gen.get_test_generation_results_sync(task_id, timeout=1, poll_interval=0.05)
    assert (calc_repo / out["strs"]).read_text() == STRS_TESTS  # the module that ended was still written
    (calc_repo / out["strs"]).unlink()
    result = collect(gen, task_id, timeout=1, poll_interval=0.05)
    rows = {m["module_path"]: m for m in result["modules"]}
    assert result["status"] == "FAILED" and result["reason"].startswith("nums.py: gave up waiting")
    assert rows["strs.py"]["status"] == "COMPLETED" and (calc_repo / out["strs"]).read_text() == STRS_TESTS
