"""The release path: scripts/release-action-yml.py (only runs.image changes), .github/workflows/release.yml,
and, offline, the release steps against a real registry on 127.0.0.1 followed by an act workflow that
uses the released action.yml (act pulls the pushed image) and reads its outputs in a later step.

act and ``--pull=false``: it keeps act from pulling the job image (the sandbox's local stand-in) and
from re-pulling images that are present, but a ``docker://`` action image that is missing locally is
still pulled (through the host's daemon, so ``127.0.0.1:<port>`` is the host's loopback, where the
registry listens). The test removes the pushed names locally first, so the run proves the pull."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import PY, REPO_ROOT, git
from .registry_support import (
    RELEASE_SCRIPT,
    forget_locally,
    image_present,
    local_registry,
    registry_binary,
    release_to_registry,
)

IMAGE = "ghcr.io/some-owner/worktree-runner:1.2.3"
DIGEST = "sha256:" + "ab" * 32


def release(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, str(RELEASE_SCRIPT), *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_released_action_yml_changes_only_runs_image(tmp_path: Path) -> None:
    out = tmp_path / "released" / "action.yml"
    proc = release("--image", IMAGE, "--digest", DIGEST, "--action", str(REPO_ROOT / "action.yml"),
                   "--output", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    before, after = (REPO_ROOT / "action.yml").read_text(), out.read_text()
    # As text: exactly one line differs, the image line.
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert changed == [("  image: Dockerfile", f'  image: "docker://{IMAGE}@{DIGEST}"')]
    # As YAML: every input, output and the rest of runs are identical.
    old, new = load(REPO_ROOT / "action.yml"), load(out)
    assert new["inputs"] == old["inputs"] and new["outputs"] == old["outputs"]
    assert {k: v for k, v in new.items() if k != "runs"} == {k: v for k, v in old.items() if k != "runs"}
    assert new["runs"] == {**old["runs"], "image": f"docker://{IMAGE}@{DIGEST}"}
    assert old["runs"]["image"] == "Dockerfile"  # the development branch keeps building the code at hand


def test_in_place_without_digest_and_docker_prefix_accepted(tmp_path: Path) -> None:
    action = tmp_path / "action.yml"
    action.write_text("name: x\ninputs:\n  image: {default: keep}\nruns:\n  # built\n  using: docker\n"
                      "  image: 'Dockerfile'   # dev\n  args: [a]\nbranding: {color: green}\n")  # fmt: skip
    proc = release("--image", "docker://127.0.0.1:5000/worktree-runner:0.0.1-rc.1", "--action", str(action))
    assert proc.returncode == 0, proc.stderr
    doc = load(action)
    assert doc["runs"]["image"] == "docker://127.0.0.1:5000/worktree-runner:0.0.1-rc.1"
    assert doc["inputs"] == {"image": {"default": "keep"}} and doc["runs"]["args"] == ["a"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--image", "ghcr.io/Owner/worktree-runner:1.0"], "--image"),  # upper case
        (["--image", "ghcr.io/o/worktree-runner"], "--image"),  # no tag
        (["--image", "ghcr.io/o/w:1.0\nimage: x"], "--image"),
        (["--image", "ghcr.io/o/w:1.0 #"], "--image"),
        (["--image", IMAGE, "--digest", "sha256:xyz"], "--digest"),
        (["--image", IMAGE, "--action", "/nonexistent/action.yml"], "--action"),
    ],
)
def test_bad_options_are_one_line_and_write_nothing(tmp_path: Path, args: list[str], named: str) -> None:
    out = tmp_path / "out.yml"
    if "--action" not in args:
        args = [*args, "--action", str(REPO_ROOT / "action.yml")]
    proc = release(*args, "--output", str(out))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and named in proc.stderr, proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name: x\nruns:\n  using: composite\n  image: Dockerfile\n", "not 'docker'"),
        ("name: x\nruns:\n  using: docker\n", "runs.image not found"),
        ("name: x\nruns:\n  using: docker\n  env:\n    image: x\n", "runs.image not found"),
        ("name: x\n", "no top-level 'runs:'"),
    ],
)
def test_unusable_action_yml_is_refused(tmp_path: Path, text: str, problem: str) -> None:
    action = tmp_path / "action.yml"
    action.write_text(text)
    proc = release("--image", IMAGE, "--action", str(action))
    assert proc.returncode == 2 and problem in proc.stderr, proc.stderr
    assert action.read_text() == text


def test_release_workflow_builds_both_platforms_and_pushes_to_ghcr() -> None:
    workflow = load(REPO_ROOT / ".github" / "workflows" / "release.yml")
    assert workflow[True]["push"]["tags"] == ["v*"]  # YAML 1.1 reads the key `on` as True
    steps = workflow["jobs"]["release"]["steps"]
    build = next(s for s in steps if str(s.get("uses", "")).startswith("docker/build-push-action"))
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64" and build["with"]["push"] is True
    names = next(s for s in steps if s.get("id") == "names")
    assert "${REGISTRY}/${OWNER,,}/worktree-runner" in names["run"]
    assert workflow["env"]["REGISTRY"] == "ghcr.io"
    rewrite = next(s for s in steps if "release-action-yml.py" in str(s.get("run", "")))
    assert '--digest "$DIGEST"' in rewrite["run"]
    assert workflow["permissions"] == {"contents": "write", "packages": "write"}


# --------------------------------------------------------------------------------------------------
# Offline: a registry on 127.0.0.1, the release steps, and act using the released action.yml
# --------------------------------------------------------------------------------------------------

RELEASED_WORKFLOW = """\
name: released
on: push
jobs:
  released:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4   # act copies the working tree instead (nothing is fetched)
      - id: wr
        uses: ./.github/actions/worktree-runner
        with:
          test-command: python -c "import sys; sys.exit(0)"
          succeed-if: any
          hypotheses: |
            - {name: passes, ref: HEAD}
            - {name: fails, ref: HEAD, command: ["python", "-c", "raise SystemExit(3)"]}
      - name: read the outputs in a later step
        env:
          CONCLUSION: ${{ steps.wr.outputs.conclusion }}
          PASSED: ${{ steps.wr.outputs.passed }}
          FAILED: ${{ steps.wr.outputs.failed }}
          BEST: ${{ steps.wr.outputs.best }}
        run: echo "released-outputs conclusion=$CONCLUSION passed=$PASSED failed=$FAILED best=$BEST"
"""


def require_registry() -> str:
    binary = registry_binary()
    if binary is None:
        reason = "no docker-registry binary (apt-get install docker-registry; .ci/docker-setup does)"
        if os.environ.get("WORKTREE_RUNNER_REQUIRE_DOCKER"):
            pytest.fail(f"a registry is required here (WORKTREE_RUNNER_REQUIRE_DOCKER) but {reason}")
        pytest.skip(reason)
    return binary


def run_workflow(act: str, repo: Path, workflow: str, timeout: float = 600) -> tuple[int, str]:
    argv = [act, "push", "-W", workflow, "-P", "ubuntu-latest=sandbox/runner:bookworm", "--pull=false"]
    proc = subprocess.Popen(argv, cwd=repo, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    return proc.returncode, out.decode("utf-8", errors="replace")


@pytest.mark.docker
def test_release_to_a_local_registry_then_act_pulls_and_runs_it(tmp_path: Path) -> None:
    from .docker_support import DEFAULT_TAG, build_image
    from .test_act import require_act, step_lines

    act = require_act()
    binary = require_registry()
    built = build_image(DEFAULT_TAG)  # the image the docker tests build (cached by Docker's layers)
    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "released.yml").write_text(RELEASED_WORKFLOW)
    (repo / "README").write_text("a repository that uses the released action\n")
    with local_registry(tmp_path / "registry", binary) as registry:
        released = release_to_registry(
            built.tag, registry, "0.0.0-test", REPO_ROOT / "action.yml",
            repo / ".github" / "actions" / "worktree-runner" / "action.yml",
        )  # fmt: skip
        action = load(repo / ".github" / "actions" / "worktree-runner" / "action.yml")
        assert action["runs"]["image"] == f"docker://{released.pinned}"
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "uses the released action")
        forget_locally(released)
        assert not image_present(released.pinned)
        try:
            started = time.monotonic()
            code, output = run_workflow(act, repo, ".github/workflows/released.yml")
            print(
                f"\n[act] released action from {registry}: exit {code} in {time.monotonic() - started:.1f} s"
            )
            # act had to pull the image from the registry (it was not there locally).
            assert re.search(rf"docker pull image={re.escape(registry)}/worktree-runner", output), output[
                -6000:
            ]
            assert image_present(released.pinned)
        finally:
            forget_locally(released)
    assert code == 0 and "Job succeeded" in output, output[-6000:]
    assert "released-outputs conclusion=success passed=1 failed=1 best=passes" in step_lines(output), output[
        -6000:
    ]
