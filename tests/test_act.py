"""The dogfood workflow (.github/workflows/dogfood.yml) run for real with nektos/act.

act builds this repository's Dockerfile (``uses: ./``), runs the action with the workflow's inputs and
hands its outputs to a later ``run:`` step, whose printed lines are checked here. ``actions/checkout``
is not fetched: for the repository act runs in, act skips it and copies the working tree (with
``.git``) into the job container, so no network access is needed (``--pull=false`` keeps act from
pulling the job image, which is the sandbox's stand-in ``sandbox/runner:bookworm``).

act runs in a throw-away git repository made from the CURRENT working tree (tracked and untracked,
not ignored files, committed once), so uncommitted work is tested and the real checkout is never
touched. What act cannot check (summaries, annotations, cancellation, ownership) is covered by
tests/test_docker_action.py.

Without Docker or act these tests skip, unless WORKTREE_RUNNER_REQUIRE_DOCKER is set (.ci/run): then they
fail.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import NoReturn

import pytest

from .conftest import git
from .docker_support import REPO_ROOT, require_docker

pytestmark = pytest.mark.docker

WORKFLOW = ".github/workflows/dogfood.yml"
JOB_IMAGE = os.environ.get("WORKTREE_RUNNER_ACT_IMAGE", "sandbox/runner:bookworm")
ACT_TIMEOUT = 600.0  # act builds the action's image first

# act prints a step's own output as "[<workflow>/<job>]   | <line>".
_STEP_LINE = re.compile(r"^\[[^\]]+\]\s+\|\s?(?P<line>.*)$")


def _unavailable(reason: str) -> NoReturn:
    # Only our own CI (.ci/run) provides act and the stand-in job image; GitHub's CI runs the same
    # workflow for real instead (dogfood.yml), so there a missing act is a skip.
    if os.environ.get("WORKTREE_RUNNER_REQUIRE_DOCKER"):
        pytest.fail(f"act is required here (WORKTREE_RUNNER_REQUIRE_DOCKER) but {reason}")
    pytest.skip(reason)


def require_act() -> str:
    """The act binary; skips (or fails where docker_required()) without Docker, act or the job image."""
    require_docker()
    act = shutil.which("act")
    if act is None:
        _unavailable("there is no `act` on PATH (../shared/tools/docker-sandbox installs it)")
    inspect = subprocess.run(
        ["docker", "image", "inspect", JOB_IMAGE], capture_output=True, timeout=60, check=False
    )
    if inspect.returncode != 0:
        _unavailable(f"the job image {JOB_IMAGE} is missing (../shared/tools/docker-sandbox builds it)")
    return act


def snapshot_repository(src: Path, dst: Path) -> None:
    """A fresh one-commit git repository at ``dst`` holding ``src``'s current working tree: tracked and
    untracked files that are not ignored (``git ls-files -co --exclude-standard``), deleted ones left
    out, symlinks kept as symlinks."""
    listed = subprocess.run(
        ["git", "-c", "safe.directory=*", "ls-files", "-z", "-co", "--exclude-standard"],
        cwd=src, capture_output=True, check=True, timeout=60,
    ).stdout.decode()  # fmt: skip
    dst.mkdir(parents=True)
    for rel in sorted({name for name in listed.split("\0") if name}):
        source = src / rel
        if not os.path.lexists(source) or (source.is_dir() and not source.is_symlink()):
            continue  # deleted in the working tree, or a submodule / nested repository
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    git(dst, "init", "-q", "-b", "main")
    git(dst, "add", "-A")
    git(dst, "commit", "-q", "-m", "snapshot of the working tree for act")


def run_act(act: str, repo: Path, timeout: float = ACT_TIMEOUT) -> tuple[int, str, float]:
    """``act push`` on the dogfood workflow in ``repo``: (exit code, combined output, seconds)."""
    argv = [act, "push", "-W", WORKFLOW, "-P", f"ubuntu-latest={JOB_IMAGE}", "--pull=false"]
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, cwd=repo, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # act removes its containers on SIGINT; the process group goes only if it does not exit.
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        text = out.decode("utf-8", errors="replace")
        pytest.fail(f"act did not finish within {timeout:.0f} s:\n{text[-5000:]}")
    return proc.returncode, out.decode("utf-8", errors="replace"), time.monotonic() - started


def step_lines(output: str) -> list[str]:
    """The lines the workflow's steps printed, without act's prefix."""
    lines = []
    for raw in output.splitlines():
        match = _STEP_LINE.match(raw)
        if match:
            lines.append(match.group("line").rstrip())
    return lines


def test_dogfood_workflow_with_act(tmp_path: Path) -> None:
    act = require_act()
    repo = tmp_path / "repo"
    snapshot_repository(REPO_ROOT, repo)
    assert (repo / WORKFLOW).is_file() and (repo / "tests" / "fixtures" / "dogfood.diff").is_file()

    returncode, output, seconds = run_act(act, repo)
    print(f"\n[act] dogfood workflow: exit {returncode} in {seconds:.1f} s")
    assert returncode == 0, output[-8000:]
    assert "Job succeeded" in output, output[-8000:]

    lines = step_lines(output)
    outputs = [line for line in lines if line.startswith("dogfood-outputs ")]
    assert len(outputs) == 1, output[-8000:]
    assert re.fullmatch(
        r"dogfood-outputs conclusion=success passed=2 failed=1 best=(passes|patched) "
        r"results-file=\.worktree-runner/results\.json junit-file=\.worktree-runner/junit\.xml",
        outputs[0],
    ), outputs[0]
    assert "dogfood-statuses passes=passed,fails=failed,patched=passed" in lines, output[-8000:]
    # The action's own progress lines came through the container's stdout.
    assert any(re.match(r"\[\d/3\] fails: failed in ", line) for line in lines), output[-8000:]
