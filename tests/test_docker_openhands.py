"""The action's OpenHands modes in the BUILT image, run with ``docker run`` as GitHub's runner runs a step.

``mode: submit`` in one container, ``mode: collect`` in another with the first one's ``task-id``
output, against the Cloud V1 stand-in (tests/openhands_support/cloud_v1.py) bound to the docker0
bridge address, which both the host and the containers reach (this dockerd has no
``host.docker.internal``). The workspace is a real git repository owned by uid 1001 while the container
is root (tests/docker_support.py), the key arrives as ``INPUT_OPENHANDS-API-KEY``, and collect runs the
generated tests with the image's own pytest + coverage.py.

Without Docker these tests skip, unless CI / WORKTREE_RUNNER_REQUIRE_DOCKER is set: then they fail.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from .conftest import git
from .docker_support import (
    DEFAULT_TAG,
    REPO_ROOT,
    RUNNER_UID,
    BuildInfo,
    GithubDirs,
    GithubResult,
    build_image,
    files_not_owned_by,
    list_containers,
    make_github_dirs,
    remove_containers,
    require_docker,
    run_like_github,
)
from .openhands_support.calc_project import CALC, FAILING, FULL
from .openhands_support.cloud_v1 import CloudV1Server
from .test_docker_action import action_inputs, commands, errors, leftover_worktree_dirs, worktree_list

pytestmark = pytest.mark.docker

REPOSITORY = "acme/calc"


@functools.cache
def docker_bridge_ip() -> str:
    """The host's address on Docker's default bridge (docker0): containers on it reach the host there.

    Docker 20.10 (as the sandbox starts it) can leave ``IPAM.Config.Gateway`` empty, so the address of the
    ``docker0`` interface itself is the fallback.
    """
    proc = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    gateways = proc.stdout.split()
    if proc.returncode == 0 and gateways:
        return gateways[0]
    iface = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", "docker0"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    found = re.search(r"\binet (\d+\.\d+\.\d+\.\d+)/", iface.stdout)
    if found:
        return found.group(1)
    raise RuntimeError(
        "cannot find the docker0 gateway address: "
        f"'docker network inspect bridge' gave {proc.stdout.strip()!r} ({proc.stderr.strip()}), "
        f"'ip addr show dev docker0' gave {iface.stdout.strip()!r} ({iface.stderr.strip()})"
    )


@contextmanager
def reachable_cloud() -> Iterator[CloudV1Server]:
    """A Cloud V1 stand-in that containers (default bridge, or act's host network) can reach."""
    require_docker()
    with CloudV1Server(host=docker_bridge_ip()) as cloud:
        yield cloud


@pytest.fixture(scope="session")
def image() -> BuildInfo:
    require_docker()
    return build_image(DEFAULT_TAG, REPO_ROOT)


@pytest.fixture
def cloud() -> Iterator[CloudV1Server]:
    with reachable_cloud() as server:
        yield server


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[GithubDirs]:
    """Runner-like directories; the workspace is a repository with calc.py committed on main."""
    d = make_github_dirs(tmp_path)
    git(d.workspace, "init", "-q", "-b", "main")
    (d.workspace / "calc.py").write_text(CALC)
    git(d.workspace, "add", ".")
    git(d.workspace, "commit", "-q", "-m", "calc")
    yield d


@pytest.fixture
def label() -> Iterator[str]:
    name = f"wr-openhands-test-{secrets.token_hex(4)}"
    yield name
    remove_containers(name)  # a failed test must not leave a container behind


def run_mode(
    image: BuildInfo, dirs: GithubDirs, label: str, cloud: CloudV1Server, **given: str
) -> GithubResult:
    """One step of the action in a fresh container; the key only as the ``openhands-api-key`` input."""
    inputs = action_inputs(openhands_url=cloud.url, openhands_api_key=cloud.api_key, **given)
    return run_like_github(
        image.tag, inputs=inputs, env={"GITHUB_REPOSITORY": REPOSITORY}, label=label,
        workspace=dirs.workspace, runner_temp=dirs.runner_temp, file_commands=dirs.file_commands,
        home=dirs.home, workflow_dir=dirs.workflow_dir, timeout=90,
    )  # fmt: skip


def assert_key_hidden(key: str, step: GithubResult, workspace: Path) -> None:
    """The key reaches the runner only through ``::add-mask::``; nothing else shows or keeps it."""
    masks = [c.data for c in commands(step.stdout) if c.command == "add-mask"]
    assert key in masks, step.stdout
    shown = "".join(line for line in step.stdout.splitlines(True) if not line.startswith("::add-mask::"))
    assert key not in shown + step.stderr + step.summary + step.output_text
    result_file = workspace / ".worktree-runner" / "openhands-result.json"
    if result_file.exists():
        assert key not in result_file.read_text()


def submit_then_collect(
    image: BuildInfo, dirs: GithubDirs, label: str, cloud: CloudV1Server, out: str, **collect: str
) -> tuple[GithubResult, GithubResult]:
    submitted = run_mode(
        image, dirs, label, cloud, mode="submit", module_path="calc.py", output_path=out,
        coverage_threshold="90",
    )  # fmt: skip
    assert submitted.returncode == 0 and not submitted.step_failed, submitted.stdout + submitted.stderr
    assert submitted.outputs["task-status"] == "QUEUED"
    task_id = submitted.outputs["task-id"]
    # ... the job's other steps run here; then a new container collects ...
    collected = run_mode(
        image, dirs, label, cloud, mode="collect", task_id=task_id, wait_timeout="30", poll_interval="0.1",
        **collect,
    )  # fmt: skip
    return submitted, collected


def test_submit_and_collect_in_separate_containers(
    image: BuildInfo, dirs: GithubDirs, label: str, cloud: CloudV1Server
) -> None:
    out = f"tests/test_calc_{uuid.uuid4().hex[:8]}.py"
    cloud.add_scenario(out, files={out: FULL}, finish_message="Wrote the tests.")
    worktrees_before = worktree_list(dirs.workspace)
    submitted, collected = submit_then_collect(image, dirs, label, cloud, out)

    task_id = submitted.outputs["task-id"]
    assert task_id.startswith("oh1.cloud.")
    assert "Collect them in a later step" in submitted.summary and "calc.py" in submitted.summary
    [post] = cloud.requests_to("/api/v1/app-conversations", "POST")
    assert post.body["selected_repository"] == REPOSITORY and post.body["git_provider"] == "github"
    assert post.body["selected_branch"] == "main"

    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert not collected.step_failed and not errors(collected.stdout)
    o = collected.outputs
    assert (o["task-status"], o["generated-file"], o["coverage"], o["tests-passed"]) == (
        "COMPLETED",
        out,
        "100.00",
        "true",
    )
    assert o["results-file"] == ".worktree-runner/openhands-result.json"
    result = json.loads((dirs.workspace / o["results-file"]).read_text())
    assert (result["status"], result["coverage"], result["agent_message"]) == (
        "COMPLETED", 100.0, "Wrote the tests."
    )  # fmt: skip
    assert "2 passed" in result["test_output"]
    assert "✅ COMPLETED" in collected.summary and "100.0%" in collected.summary

    # The file is in the mounted workspace, and everything there still belongs to the runner user.
    assert (dirs.workspace / out).read_text() == FULL
    assert files_not_owned_by(dirs.workspace, RUNNER_UID) == []
    assert worktree_list(dirs.workspace) == worktrees_before
    assert leftover_worktree_dirs(dirs.runner_temp) == []
    assert list_containers(label, include_stopped=True) == []

    for step in (submitted, collected):
        assert_key_hidden(cloud.api_key, step, dirs.workspace)
    for r in cloud.requests:
        assert r.headers["authorization"] == f"Bearer {cloud.api_key}"
        assert cloud.api_key not in r.path + repr(r.query)


def test_collect_of_failing_tests_fails_the_step_with_one_error(
    image: BuildInfo, dirs: GithubDirs, label: str, cloud: CloudV1Server
) -> None:
    out = f"tests/test_calc_{uuid.uuid4().hex[:8]}.py"
    cloud.add_scenario(out, files={out: FAILING})
    submitted, collected = submit_then_collect(image, dirs, label, cloud, out)
    assert collected.returncode == 1, collected.stdout + collected.stderr
    o: Mapping[str, str] = collected.outputs
    assert (o["task-status"], o["generated-file"], o["tests-passed"]) == ("FAILED", out, "false")
    [error] = errors(collected.stdout)
    assert error.data == "the generated tests fail (pytest exit code 1)"
    assert "❌ FAILED" in collected.summary and "pytest exit code 1" in collected.summary
    result = json.loads((dirs.workspace / o["results-file"]).read_text())
    assert "assert 3 == 4" in result["test_output"]
    # The file is kept for a look, owned by the runner user like the rest of the workspace.
    assert (dirs.workspace / out).read_text() == FAILING
    assert files_not_owned_by(dirs.workspace, RUNNER_UID) == []
    for step in (submitted, collected):
        assert_key_hidden(cloud.api_key, step, dirs.workspace)


def test_three_module_batch_one_submit_one_collect_one_agent_fails(
    image: BuildInfo, dirs: GithubDirs, label: str, cloud: CloudV1Server
) -> None:
    """One submit step for three modules (one task ID), one collect step: every file that can be written
    is written, one row per module, and the module whose agent failed fails the batch by name."""
    (dirs.workspace / "strs.py").write_text("def shout(s):\n    return s.upper() + '!'\n")
    (dirs.workspace / "nums.py").write_text("def double(n):\n    return 2 * n\n")
    git(dirs.workspace, "add", ".")
    git(dirs.workspace, "commit", "-q", "-m", "more modules")
    template = f"tests/gen_{uuid.uuid4().hex[:8]}/test_{{stem}}.py"
    out = {stem: template.replace("{stem}", stem) for stem in ("calc", "strs", "nums")}
    nums_tests = "from nums import double\n\ndef test_double():\n    assert double(2) == 4\n"
    cloud.add_scenario(out["calc"], files={out["calc"]: FULL})
    cloud.add_scenario(
        out["strs"], execution_statuses=("idle", "running", "error"), error_code="LLMServiceUnavailableError",
        error_detail="the LLM is down",
    )  # fmt: skip
    cloud.add_scenario(out["nums"], files={out["nums"]: nums_tests})
    submitted = run_mode(
        image, dirs, label, cloud, mode="submit", module_path="calc.py\nstrs.py\nnums.py\n",
        output_path=template, coverage_threshold="90",
    )  # fmt: skip
    assert submitted.returncode == 0 and not submitted.step_failed, submitted.stdout + submitted.stderr
    task_id = submitted.outputs["task-id"]
    assert task_id.startswith("ohb1.cloud.")
    assert len(cloud.requests_to("/api/v1/app-conversations", "POST")) == 3
    # ... the job's other steps run here ...
    collected = run_mode(
        image, dirs, label, cloud, mode="collect", task_id=task_id, wait_timeout="60", poll_interval="0.1",
        test_reruns="2",
    )  # fmt: skip
    assert collected.returncode == 1, collected.stdout + collected.stderr
    assert collected.outputs["task-status"] == "FAILED"
    assert collected.outputs["generated-file"].splitlines() == [out["calc"], out["nums"]]
    [error] = errors(collected.stdout)
    assert error.data.startswith("strs.py: ") and "calc.py" not in error.data
    assert (dirs.workspace / out["calc"]).read_text() == FULL
    assert (dirs.workspace / out["nums"]).read_text() == nums_tests
    assert not (dirs.workspace / out["strs"]).exists()
    result = json.loads((dirs.workspace / collected.outputs["results-file"]).read_text())
    rows = {m["module_path"]: m for m in result["modules"]}
    assert [rows[m]["status"] for m in ("calc.py", "strs.py", "nums.py")] == [
        "COMPLETED",
        "FAILED",
        "COMPLETED",
    ]
    assert rows["calc.py"]["funnel"]["kept"] == 2 and rows["nums.py"]["coverage"] == 100.0
    # The job summary: one row per module with status, kept/generated, coverage and the reason.
    summary_rows = [
        line for line in collected.summary.splitlines() if line.startswith("| ") and ".py |" in line
    ]
    module_rows = [r for r in summary_rows if r.split("|")[1].strip() in ("calc.py", "strs.py", "nums.py")]
    assert [r.split("|")[1].strip() for r in module_rows] == ["calc.py", "strs.py", "nums.py"]
    assert "COMPLETED | 2 / 2 | 100.0%" in module_rows[0] and "FAILED | 0 / 0" in module_rows[1]
    assert "LLMServiceUnavailableError" in module_rows[1]
    assert files_not_owned_by(dirs.workspace, RUNNER_UID) == []
    assert leftover_worktree_dirs(dirs.runner_temp) == []
    for step in (submitted, collected):
        assert_key_hidden(cloud.api_key, step, dirs.workspace)
