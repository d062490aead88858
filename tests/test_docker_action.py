"""The BUILT action image, run with ``docker run`` exactly as GitHub's runner runs a Docker action step.

tests/test_action.py checks the same behaviour with the entrypoint as a plain process; here the image
runs through tests/docker_support.py (``--workdir /github/workspace``, the workspace mounted there and
owned by uid 1001 while the container is root, ``/github/runner_temp``, ``/github/file_commands/*``,
``GITHUB_*`` and ``INPUT_*`` in the environment, SIGINT to the ``docker run`` CLI on cancel), and what
the step leaves behind is read back with the runner's own parsers (tests/github_parsers.py).

Without Docker these tests skip, unless CI / WORKTREE_RUNNER_REQUIRE_DOCKER is set: then they fail.
"""

from __future__ import annotations

import json
import math
import secrets
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from .conftest import git, make_check_repo
from .docker_support import (
    CONTAINER_RUNNER_TEMP,
    DEFAULT_TAG,
    REPO_ROOT,
    RUNNER_UID,
    BuildInfo,
    GithubDirs,
    GithubResult,
    GithubRun,
    build_image,
    files_not_owned_by,
    list_containers,
    make_github_dirs,
    remove_containers,
    require_docker,
    start_like_github,
)
from .github_parsers import ActionCommand, CommandProcessor

pytestmark = pytest.mark.docker

PY = "python"  # the interpreter inside the image (Debian's Python 3.11 on the offline stand-in base)
FAKE_TOKEN = "ghs_" + secrets.token_hex(18)  # what `${{ github.token }}` evaluates to on a runner


@pytest.fixture(scope="session")
def image() -> BuildInfo:
    require_docker()
    return build_image(DEFAULT_TAG, REPO_ROOT)


@dataclass
class Step:
    """One prepared step: runner-like directories with a real repository as the workspace."""

    dirs: GithubDirs
    label: str

    @property
    def workspace(self) -> Path:
        return self.dirs.workspace

    @property
    def runner_temp(self) -> Path:
        return self.dirs.runner_temp


@pytest.fixture
def step(tmp_path: Path) -> Iterator[Step]:
    """A workspace that is a git repository: ``check.py`` passes on ``main``, fails on ``broken``.

    The git work happens here, as the host's user; start_like_github chowns everything to uid 1001
    right before the run (after that, host git needs ``-c safe.directory=*``)."""
    dirs = make_github_dirs(tmp_path)
    make_check_repo(dirs.workspace)
    label = f"wr-action-test-{secrets.token_hex(4)}"
    yield Step(dirs, label)
    # A failed test must not leave a container running behind it.
    remove_containers(label)


def host_git(repo: Path, *args: str) -> str:
    """Host git in a workspace that now belongs to another uid."""
    return git(repo, "-c", "safe.directory=*", *args)


def worktree_list(repo: Path) -> str:
    return host_git(repo, "worktree", "list", "--porcelain")


def action_inputs(**given: str) -> dict[str, str]:
    """Every input action.yml declares, with its default unless given (the runner passes them all)."""
    action = yaml.safe_load((REPO_ROOT / "action.yml").read_text())
    inputs: dict[str, str] = {}
    for name, spec in action["inputs"].items():
        default = str(spec.get("default", ""))
        inputs[name] = FAKE_TOKEN if name == "github-token" else default
    for key, value in given.items():
        inputs[key.replace("_", "-")] = value
    return inputs


def start_step(image: BuildInfo, step: Step, inputs: Mapping[str, str]) -> GithubRun:
    """``docker run`` the image as the runner runs a step; returns while it runs."""
    d = step.dirs
    return start_like_github(
        image.tag, inputs=inputs, label=step.label, workspace=d.workspace, runner_temp=d.runner_temp,
        file_commands=d.file_commands, home=d.home, workflow_dir=d.workflow_dir,
    )  # fmt: skip


def run_step(image: BuildInfo, step: Step, inputs: Mapping[str, str], timeout: float = 180) -> GithubResult:
    return start_step(image, step, inputs).wait(timeout=timeout)


def commands(stdout: str) -> list[ActionCommand]:
    """The workflow commands the runner would execute from this stdout (stop-commands honoured)."""
    processor = CommandProcessor()
    processor.feed(stdout)
    return processor.executed


def errors(stdout: str) -> list[ActionCommand]:
    return [c for c in commands(stdout) if c.command == "error"]


def leftover_worktree_dirs(runner_temp: Path) -> list[Path]:
    return sorted(runner_temp.glob("worktree-runner-*"))


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime_ns) of everything under root (symlinks not followed)."""
    snap: dict[str, tuple[int, int]] = {}
    for path in root.rglob("*"):
        st = path.lstat()
        snap[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return snap


def assert_left_clean(step: Step, worktrees_before: str) -> None:
    """What a later step (running as the runner user) and the next checkout need."""
    assert worktree_list(step.workspace) == worktrees_before
    assert files_not_owned_by(step.workspace, RUNNER_UID) == []
    assert list_containers(step.label, include_stopped=True) == []
    assert leftover_worktree_dirs(step.runner_temp) == []


INJECTING = "print('::error::pwned'); print('::add-mask::x'); raise SystemExit(1)"


def test_outputs_summary_annotations_and_cleanup(image: BuildInfo, step: Step) -> None:
    hypotheses = [
        {"name": "main", "ref": "main"},
        {"name": "broken", "ref": "broken"},
        {"name": "injector", "ref": "main", "command": [PY, "-c", INJECTING]},
        {"name": "pytest-like", "ref": "main",
         "command": [PY, "-c", "print('tests/test_x.py:12: AssertionError'); raise SystemExit(1)"]},
    ]  # fmt: skip
    worktrees_before = worktree_list(step.workspace)
    inputs = action_inputs(
        hypotheses=yaml.safe_dump(hypotheses),
        test_command=f"{PY} check.py",
        max_parallel="2",
        succeed_if="any",
    )
    result = run_step(image, step, inputs)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.step_failed

    # Outputs, as a later step reads them.
    out = result.outputs
    assert out["conclusion"] == "success"
    assert out["passed"] == "1" and out["failed"] == "3" and out["best"] == "main"
    compact = json.loads(out["results"])
    assert [(r["name"], r["status"]) for r in compact["results"]] == [
        ("main", "passed"),
        ("broken", "failed"),
        ("injector", "failed"),
        ("pytest-like", "failed"),
    ]
    assert "output_tail" not in compact["results"][0]
    # Paths are relative to the workspace and mean something on the host (outside the container).
    assert out["results-file"] == ".worktree-runner/results.json"
    assert out["junit-file"] == ".worktree-runner/junit.xml"
    results_file = step.workspace / out["results-file"]
    junit_file = step.workspace / out["junit-file"]
    assert results_file.is_file() and junit_file.is_file()
    full = json.loads(results_file.read_text())
    assert [r["status"] for r in full["results"]] == ["passed", "failed", "failed", "failed"]
    log_path = full["results"][1]["log_path"]
    assert log_path.startswith(".worktree-runner/logs/"), log_path
    assert "broken!" in (step.workspace / log_path).read_text()
    assert "<testsuite" in junit_file.read_text()
    # --no-optional-locks: a plain `git status` run here as root would rewrite .git/index as root.
    assert (
        host_git(step.workspace, "--no-optional-locks", "status", "--porcelain") == ""
    )  # results dir ignores itself

    # Annotations: one error per failing hypothesis, nothing injected by a hypothesis's output.
    executed = commands(result.stdout)
    errs = [c for c in executed if c.command == "error"]
    assert sorted(c.prop("title") or "" for c in errs) == [
        "hypothesis broken: failed",
        "hypothesis injector: failed",
        "hypothesis pytest-like: failed",
    ]
    assert ("error", "pwned") not in {(c.command, c.data) for c in executed}
    masks = [c.data for c in executed if c.command == "add-mask"]
    assert masks == [FAKE_TOKEN]  # the token input is masked; the hypothesis's "::add-mask::x" is not obeyed
    assert not [c for c in executed if c.command in ("warning", "set-output", "set-env")]
    pytest_like = next(c for c in errs if "pytest-like" in (c.prop("title") or ""))
    assert pytest_like.prop("file") == "tests/test_x.py" and pytest_like.prop("line") == "12"
    assert "::error::pwned" in result.stdout  # shown in the log, not obeyed

    # Job summary: the conclusion first, then the table.
    summary = result.summary
    assert "| Status | Hypothesis |" in summary
    assert summary.index("success") < summary.index("| Status |") < summary.index("| main")
    assert "broken!" in summary

    assert_left_clean(step, worktrees_before)
    assert files_not_owned_by(step.runner_temp, RUNNER_UID) == []


@pytest.mark.parametrize(
    ("given", "needle"),
    [
        ({"max_parallel": "lots"}, "input 'max-parallel'"),
        ({"working_directory": "../.."}, "input 'working-directory'"),
        ({"hypotheses": "- {name: a, ref: --orphan}"}, "hypotheses[0].ref"),
    ],
)
def test_bad_input_exit_2_one_error_no_outputs_nothing_created(
    image: BuildInfo, step: Step, given: dict[str, str], needle: str
) -> None:
    worktrees_before = worktree_list(step.workspace)
    snapshot_before = tree_snapshot(step.workspace)
    base = {"test_command": f"{PY} check.py", "hypotheses": "- {name: a, ref: main}"}
    result = run_step(image, step, action_inputs(**{**base, **given}))
    assert result.returncode == 2, result.stdout + result.stderr
    errs = errors(result.stdout)
    assert len(errs) == 1 and needle in errs[0].data, errs
    assert errs[0].prop("title") == "worktree-runner: bad input"
    assert result.outputs == {}
    assert tree_snapshot(step.workspace) == snapshot_before
    assert not (step.workspace / ".worktree-runner").exists()
    assert_left_clean(step, worktrees_before)


def test_cancellation_sigint_to_docker_cli(image: BuildInfo, step: Step) -> None:
    markers = step.runner_temp / "markers"
    markers.mkdir()
    container_markers = f"{CONTAINER_RUNNER_TEMP}/markers"
    sleeper = (
        f"{PY} -c \"import os, time; open(os.path.join('{container_markers}', str(os.getpid())), 'w'); "
        'time.sleep(60)"'
    )
    hypotheses = "- {name: quick, ref: main, command: 'true'}\n" + "".join(
        f"- {{name: slow-{i}, ref: main}}\n" for i in range(3)
    )
    worktrees_before = worktree_list(step.workspace)
    inputs = action_inputs(hypotheses=hypotheses, test_command=sleeper, max_parallel="4")
    run = start_step(image, step, inputs)
    try:
        assert run.wait_for_output("quick: passed", timeout=60, stream="stdout"), run.stdout_so_far()
        deadline = time.monotonic() + 60
        while len(list(markers.iterdir())) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(list(markers.iterdir())) == 3, run.stdout_so_far() + run.stderr_so_far()
    except BaseException:
        run.send_signal()
        run.wait(timeout=30)
        raise
    sent = time.monotonic()
    result = run.cancel_like_runner()
    ended_after = time.monotonic() - sent
    print(f"\n[docker-action] SIGINT -> step ended in {ended_after:.2f} s (escalation: {result.escalation})")
    assert result.escalation == "sigint", result.stdout + result.stderr
    assert ended_after < 5, ended_after
    assert result.returncode == 130, result.stdout + result.stderr

    out = result.outputs
    assert out["conclusion"] == "failure"
    statuses = {r["name"]: r["status"] for r in json.loads(out["results"])["results"]}
    assert statuses == {
        "quick": "passed",
        "slow-0": "cancelled",
        "slow-1": "cancelled",
        "slow-2": "cancelled",
    }
    assert (step.workspace / out["results-file"]).is_file()
    assert "cancelled" in result.summary.lower()
    assert "the run was cancelled" in result.summary.lower()

    assert_left_clean(step, worktrees_before)
    assert list_containers(step.label) == []  # not even a stopped one (--rm fired)


def _docker_started_at(container: str) -> float:
    """The container's start time (``State.StartedAt``, RFC 3339 with nanoseconds) as epoch seconds."""
    text = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.StartedAt}}", container],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip()  # fmt: skip
    whole, _, frac = text.rstrip("Z").partition(".")
    base = datetime.fromisoformat(whole + "+00:00").timestamp()
    return base + (float("0." + frac) if frac else 0.0)


def test_start_to_first_test_latency(image: BuildInfo, step: Step) -> None:
    """Measured, printed (pytest -s), never asserted on: ``docker run`` -> first test command starts.

    Each hypothesis writes the wall-clock time its command started into /github/runner_temp (a host
    directory); the container and the host share one kernel clock. ``first`` then waits for a
    release file so the container is still there for ``docker inspect`` (its StartedAt splits the
    figure into Docker's part and the action's part)."""
    rt = CONTAINER_RUNNER_TEMP
    wait_release = f"i=0; while [ ! -e {rt}/release ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done"
    first = f"date +%s.%N > {rt}/start-first; {wait_release}"
    hypotheses = [
        {"name": "first", "ref": "main", "command": ["sh", "-c", first]},
        {"name": "second", "ref": "main", "command": ["sh", "-c", f"date +%s.%N > {rt}/start-second"]},
    ]
    inputs = action_inputs(hypotheses=yaml.safe_dump(hypotheses), max_parallel="2")
    wall0, mono0 = time.time(), time.monotonic()
    run = start_step(image, step, inputs)
    launched = wall0 + (run.started - mono0)  # wall-clock time of the `docker run` Popen
    starts = [step.runner_temp / "start-first", step.runner_temp / "start-second"]
    try:
        deadline = time.monotonic() + 120
        while not all(p.is_file() and p.read_text().strip() for p in starts) and time.monotonic() < deadline:
            time.sleep(0.02)
        container_started = _docker_started_at(run.name)
    finally:
        (step.runner_temp / "release").write_text("")
    result = run.wait(timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.outputs["passed"] == "2"

    first_test = min(float(p.read_text()) for p in starts)
    latency = first_test - launched
    docker_part = container_started - launched
    action_part = first_test - container_started
    print(
        f"\n[docker-action] start-to-first-test latency: {latency * 1000:.0f} ms "
        f"(docker run -> container started {docker_part * 1000:.0f} ms, "
        f"container started -> first test command {action_part * 1000:.0f} ms); "
        f"whole step {result.seconds:.2f} s"
    )
    assert math.isfinite(latency) and latency > 0


# A hypothesis' setup installs a `pydantic` 1.x (a local wheel: offline and fast) while the action, which
# itself runs on pydantic 2, goes on to write outputs and summary, and a later `mode: merge` step runs.
FAKE_PYDANTIC_CHECK = (
    "import os, pydantic; assert pydantic.VERSION == '1.0.0-fake', pydantic.VERSION; "
    "assert pydantic.__file__.startswith(os.environ['VIRTUAL_ENV'] + '/'), pydantic.__file__"
)


def test_a_setup_installing_another_pydantic_cannot_break_the_action(image: BuildInfo, step: Step) -> None:
    from .wheels import make_wheel

    wheels = step.runner_temp / "wheels"
    wheels.mkdir()
    wheel = make_wheel(wheels, "pydantic", "1.0.0", {"pydantic/__init__.py": "VERSION = '1.0.0-fake'\n"})
    in_container = f"{CONTAINER_RUNNER_TEMP}/wheels/{wheel.name}"
    base_has_none = "import importlib.util as u, sys; sys.exit(u.find_spec('pydantic') is not None)"
    hypotheses = [
        {"name": "pip", "ref": "main", "setup": f"pip install --no-index {in_container}",
         "command": [PY, "-c", FAKE_PYDANTIC_CHECK]},
        {"name": "base", "ref": "main", "command": [PY, "-c", base_has_none]},
        {"name": "python -m pip", "ref": "main", "setup": f"{PY} -m pip install --no-index {in_container}",
         "command": [PY, "-c", FAKE_PYDANTIC_CHECK]},
        {"name": "broken", "ref": "broken", "setup": f"pip install --no-index {in_container}"},
    ]  # fmt: skip
    worktrees_before = worktree_list(step.workspace)
    for k in (1, 2):
        inputs = action_inputs(
            hypotheses=yaml.safe_dump(hypotheses), test_command=f"{PY} check.py", max_parallel="2",
            shard=f"{k}/2", results_dir=f"shard-{k}", succeed_if="any",
        )  # fmt: skip
        result = run_step(image, step, inputs)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.outputs["conclusion"] == "success", result.outputs
        assert "| Status | Hypothesis |" in result.summary
    merged = run_step(image, step, action_inputs(mode="merge", results_files="shard-*/results.json"))
    assert merged.returncode == 0, merged.stdout + merged.stderr
    statuses = [(r["name"], r["status"]) for r in json.loads(merged.outputs["results"])["results"]]
    assert statuses == [
        ("pip", "passed"), ("base", "passed"), ("python -m pip", "passed"), ("broken", "failed")
    ]  # fmt: skip
    assert "| Status | Hypothesis |" in merged.summary

    # isolation: none installs into the image's interpreter, which is still not the action's own.
    # (The offline stand-in base is Debian's Python, which refuses installs without this.)
    into_image = f"rm -f /usr/lib/python3*/EXTERNALLY-MANAGED; {PY} -m pip install --no-index {in_container}"
    fake_in_image = "import pydantic; assert pydantic.VERSION == '1.0.0-fake'"
    shared = [{"name": "shared", "ref": "main", "setup": ["sh", "-c", into_image],
               "command": [PY, "-c", fake_in_image]}]  # fmt: skip
    result = run_step(image, step, action_inputs(hypotheses=yaml.safe_dump(shared), isolation="none"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.outputs["conclusion"] == "success" and "| Status | Hypothesis |" in result.summary
    assert_left_clean(step, worktrees_before)
    assert leftover_worktree_dirs(step.runner_temp) == []
    assert sorted(p.name for p in step.runner_temp.glob("worktree-runner-*")) == []
