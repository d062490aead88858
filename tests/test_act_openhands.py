"""Submit, another step, collect (tests/fixtures/workflows/openhands-act.yml) run for real with act.

The workflow is the README's "submit, keep working, collect later in the same job"; its action steps
(``uses: ./``) talk to the Cloud V1 stand-in bound to the docker0 address (tests/test_docker_openhands.py),
which act's job and action containers reach. The server's URL and key reach the workflow as
``vars.OPENHANDS_API_URL`` and ``secrets.OPENHANDS_API_KEY`` through ``--var-file``/``--secret-file``
(files outside the repository, named in its ``.actrc`` since tests/test_act.py's ``run_act`` has a fixed
argument list). ``calc.py``, the module the agent writes tests for, is committed into the snapshot.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import test_act
from .conftest import git
from .docker_support import REPO_ROOT
from .openhands_support.calc_project import CALC, FULL
from .test_act import require_act, run_act, snapshot_repository, step_lines
from .test_docker_openhands import reachable_cloud

pytestmark = pytest.mark.docker

WORKFLOW = "tests/fixtures/workflows/openhands-act.yml"
REPOSITORY = "acme/calc"
OUTPUT = "generated/test_calc_act.py"  # outside tests/: the project's conftest is not loaded


def test_submit_other_step_collect_with_act(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    act = require_act()
    repo = tmp_path / "repo"
    snapshot_repository(REPO_ROOT, repo)
    (repo / "calc.py").write_text(CALC)
    git(repo, "add", "calc.py")
    git(repo, "commit", "-q", "-m", "the module to write tests for")
    # act takes github.repository from the origin remote (nothing is fetched from it).
    git(repo, "remote", "add", "origin", f"https://github.com/{REPOSITORY}.git")
    monkeypatch.setattr(test_act, "WORKFLOW", WORKFLOW)

    with reachable_cloud() as cloud:
        cloud.add_scenario(OUTPUT, files={OUTPUT: FULL}, finish_message="Wrote the tests.")
        (tmp_path / "vars").write_text(f"OPENHANDS_API_URL={cloud.url}\n")
        (tmp_path / "secrets").write_text(f"OPENHANDS_API_KEY={cloud.api_key}\n")
        (repo / ".actrc").write_text(
            f"--var-file {tmp_path / 'vars'}\n--secret-file {tmp_path / 'secrets'}\n"
        )
        returncode, output, seconds = run_act(act, repo, timeout=300)
        requests = cloud.requests

    print(f"\n[act] openhands workflow: exit {returncode} in {seconds:.1f} s")
    assert returncode == 0, output[-8000:]
    assert "Job succeeded" in output, output[-8000:]
    lines = step_lines(output)
    assert "submit-outputs task-status=QUEUED task-id-kind=oh1.cloud" in lines, output[-8000:]
    assert "other work done" in lines
    collected = [line for line in lines if line.startswith("collect-outputs ")]
    assert collected == [
        f"collect-outputs task-status=COMPLETED coverage=100.00 tests-passed=true generated-file={OUTPUT}"
    ], output[-8000:]
    assert cloud.api_key not in output  # act masks secrets; the action masks its input too

    # One submit, then the collect step's polls and the file read; the key only as a Bearer header.
    [post] = [r for r in requests if r.method == "POST"]
    assert post.status == 200 and (post.body["selected_repository"], post.body["selected_branch"]) == (
        REPOSITORY,
        "main",
    )
    [read] = [r for r in requests if r.path.endswith("/file")]
    assert read.query["file_path"] == [f"/workspace/project/calc/{OUTPUT}"]
    assert {r.headers.get("authorization") for r in requests} == {f"Bearer {cloud.api_key}"}


def test_three_module_batch_with_act(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One submit step for three modules, a run: step, one collect step; one agent fails."""
    act = require_act()
    repo = tmp_path / "repo"
    snapshot_repository(REPO_ROOT, repo)
    (repo / "calc.py").write_text(CALC)
    (repo / "strs.py").write_text("def shout(s):\n    return s.upper() + '!'\n")
    (repo / "nums.py").write_text("def double(n):\n    return 2 * n\n")
    git(repo, "add", "calc.py", "strs.py", "nums.py")
    git(repo, "commit", "-q", "-m", "the modules to write tests for")
    git(repo, "remote", "add", "origin", f"https://github.com/{REPOSITORY}.git")
    monkeypatch.setattr(test_act, "WORKFLOW", "tests/fixtures/workflows/openhands-act-batch.yml")
    nums_tests = "from nums import double\n\ndef test_double():\n    assert double(2) == 4\n"

    with reachable_cloud() as cloud:
        cloud.add_scenario("generated/test_calc_act.py", files={"generated/test_calc_act.py": FULL})
        cloud.add_scenario(
            "generated/test_strs_act.py", execution_statuses=("idle", "running", "error"),
            error_code="LLMServiceUnavailableError",
        )  # fmt: skip
        cloud.add_scenario("generated/test_nums_act.py", files={"generated/test_nums_act.py": nums_tests})
        (tmp_path / "vars").write_text(f"OPENHANDS_API_URL={cloud.url}\n")
        (tmp_path / "secrets").write_text(f"OPENHANDS_API_KEY={cloud.api_key}\n")
        (repo / ".actrc").write_text(
            f"--var-file {tmp_path / 'vars'}\n--secret-file {tmp_path / 'secrets'}\n"
        )
        returncode, output, seconds = run_act(act, repo, timeout=300)
        requests = cloud.requests

    print(f"\n[act] openhands batch workflow: exit {returncode} in {seconds:.1f} s")
    lines = step_lines(output)
    assert "submit-outputs task-id-kind=ohb1.cloud" in lines, output[-8000:]
    assert "other work done" in lines
    assert "collect-outputs outcome=failure task-status=FAILED" in lines, output[-8000:]
    assert [line for line in lines if line.startswith("written ")] == [
        "written generated/test_calc_act.py", "written generated/test_nums_act.py",
    ]  # fmt: skip
    assert "rows calc.py=COMPLETED strs.py=FAILED nums.py=COMPLETED" in lines, output[-8000:]
    assert len([r for r in requests if r.method == "POST" and r.path.endswith("/app-conversations")]) == 3
    assert cloud.api_key not in output
