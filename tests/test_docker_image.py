"""The action image: it builds, stays small, has what the entrypoint needs, and follows GitHub's rules
for Docker actions (no USER, no WORKDIR, exec-form ENTRYPOINT, unbuffered Python).

Also checks that tests/docker_support.py runs a container the way the runner does (env, mounts,
ownership, file commands, SIGINT proxying), since runner-faithful tests of the action build on it.

Without Docker these tests skip, unless CI is set: then they fail (CI must really run them).
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
import tomllib
from pathlib import Path

import pytest

from .docker_support import (
    DEFAULT_TAG,
    REPO_ROOT,
    BuildInfo,
    build_image,
    dockerfile_base_image,
    files_not_owned_by,
    image_config,
    image_env,
    image_size,
    list_containers,
    make_github_dirs,
    remove_containers,
    require_docker,
    run_in_image,
    run_like_github,
    start_like_github,
)

MB = 1_000_000
RUNNER_PYTHON = "/action/venv/bin/python"  # the runner's own virtualenv (never on PATH)
MAX_IMAGE_BYTES = 250 * MB
# The offline sandbox builds FROM a stand-in base (Debian's Python, git preinstalled, ~400 MB), not the
# official python:*-slim image. There the size check adds what the official base and git would weigh:
OFFICIAL_BASE_BYTES_ESTIMATE = 130 * MB  # python:3.12-slim-bookworm, linux/amd64, unpacked (`docker images`)
GIT_ON_SLIM_BYTES = 87 * MB  # measured: `apt-get install --no-install-recommends git` on bookworm-slim

docker = pytest.mark.docker


@pytest.fixture(scope="session")
def image() -> BuildInfo:
    require_docker()
    return build_image(DEFAULT_TAG, REPO_ROOT)


def _is_official_python_base(base: str) -> bool:
    # Official python images set PYTHON_VERSION; the sandbox's stand-in does not.
    return "PYTHON_VERSION" in image_env(base)


# --------------------------------------------------------------------------------------------------
# The image itself
# --------------------------------------------------------------------------------------------------


@docker
def test_image_builds(image: BuildInfo) -> None:
    assert image.size_bytes > 0
    assert image_size(image.tag) == image.size_bytes


@docker
def test_image_size_under_limit(image: BuildInfo) -> None:
    base = dockerfile_base_image(REPO_ROOT / "Dockerfile")
    if _is_official_python_base(base):
        assert image.size_bytes < MAX_IMAGE_BYTES, f"image is {image.size_bytes / MB:.1f} MB"
        return
    added = image.size_bytes - image_size(base)
    estimate = OFFICIAL_BASE_BYTES_ESTIMATE + GIT_ON_SLIM_BYTES + added
    assert estimate < MAX_IMAGE_BYTES, (
        f"layers on top of the stand-in base: {added / MB:.1f} MB; with the official base and git "
        f"the image would be about {estimate / MB:.0f} MB"
    )


@docker
def test_image_has_git(image: BuildInfo) -> None:
    proc = run_in_image(image.tag, ["--version"], entrypoint="git")
    assert proc.returncode == 0, proc.stderr
    assert re.match(r"git version 2\.\d+", proc.stdout), proc.stdout


@docker
@pytest.mark.skipif(not (REPO_ROOT / "runner" / "__init__.py").exists(), reason="runner/ not written yet")
def test_image_imports_the_package_and_dependencies(image: BuildInfo) -> None:
    code = "import runner, pydantic, yaml; print(runner.__file__); print(pydantic.VERSION)"
    proc = run_in_image(image.tag, ["-c", code], entrypoint=RUNNER_PYTHON, workdir="/action")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "/action/runner/__init__.py"
    assert proc.stdout.splitlines()[1].startswith("2.")
    # The user's test commands run with the same interpreter elsewhere: our package must not
    # shadow a package of theirs that happens to be called `runner`.
    hidden = run_in_image(image.tag, ["-c", "import importlib.util as u; print(u.find_spec('runner'))"],
                          entrypoint="python", workdir="/tmp")  # fmt: skip
    assert hidden.stdout.strip() == "None", hidden.stdout + hidden.stderr


@docker
def test_the_hypotheses_interpreter_has_test_tools_and_nothing_of_ours(image: BuildInfo) -> None:
    """`python` on PATH is the hypotheses' base: pip, pytest, coverage; the runner's packages live in
    /action/venv only, so no setup can see or change them."""
    code = (
        "import importlib.util as u, json, sys, coverage, pip, pytest\n"
        "print(json.dumps({'ours': [m for m in ('pydantic', 'yaml', 'httpx', 'github', 'runner') "
        "if u.find_spec(m)], 'prefix': sys.prefix}))"
    )
    proc = run_in_image(image.tag, ["-c", code], entrypoint="python", workdir="/tmp")
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["ours"] == [] and not seen["prefix"].startswith("/action")
    which = run_in_image(image.tag, ["-c", "command -v python python3 pip pytest"], entrypoint="sh")
    assert "/action" not in which.stdout, which.stdout


@docker
def test_image_config_follows_docker_action_rules(image: BuildInfo) -> None:
    config = image_config(image.tag)
    # "Docker actions must be run by the default Docker user (root). Do not use the USER instruction"
    assert not config.get("User"), config.get("User")
    # The runner passes --workdir /github/workspace; the docs advise against WORKDIR.
    assert not config.get("WorkingDir"), config.get("WorkingDir")
    # Exec form, so the docker CLI's SIGINT reaches Python as PID 1 (no /bin/sh in between).
    assert config.get("Entrypoint") == [RUNNER_PYTHON, "/action/entrypoint.py"]
    assert not config.get("Cmd")
    labels = config.get("Labels") or {}
    assert isinstance(labels, dict)
    assert labels.get("org.opencontainers.image.title") == "worktree-runner"


@docker
def test_image_environment(image: BuildInfo) -> None:
    env = image_env(image.tag)
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    # A PYTHONPATH would leak into every test command the action runs and could shadow a user's own
    # top-level package named like ours.
    assert "PYTHONPATH" not in env


@docker
def test_build_context_is_small(image: BuildInfo, tmp_path: Path) -> None:
    """.dockerignore keeps .git, tests, bench, caches and venvs out of what `docker build` sends."""
    (tmp_path / "Dockerfile").write_text(f"FROM {dockerfile_base_image()}\nCOPY . /ctx\n")
    tag = "worktree-runner-context:test"
    subprocess.run(
        ["docker", "build", "-q", "-t", tag, "-f", str(tmp_path / "Dockerfile"), str(REPO_ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    try:
        proc = run_in_image(tag, ["/ctx", "-maxdepth", "1"], entrypoint="find")
        assert proc.returncode == 0, proc.stderr
        top = {Path(p).name for p in proc.stdout.split() if p != "/ctx"}
        deep = run_in_image(tag, ["/ctx", "-name", "__pycache__"], entrypoint="find").stdout.split()
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, check=False)
    for unwanted in (".git", "tests", "bench", "examples", ".github", ".venv", "venv", ".mypy_cache"):
        assert unwanted not in top
    assert {"runner", "pyproject.toml", "requirements.lock"} <= top
    assert not deep


# --------------------------------------------------------------------------------------------------
# The lock file (no Docker needed)
# --------------------------------------------------------------------------------------------------


def _requirement_names(lines: list[str]) -> set[str]:
    names = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[<>=!~;\[ \\]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_requirements_lock_is_pinned_hashed_and_in_sync() -> None:
    lock = (REPO_ROOT / "requirements.lock").read_text()
    blocks = re.findall(
        r"^([A-Za-z0-9._-]+)==(\S+) \\\n((?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", lock, re.M
    )
    pinned = {name.lower() for name, _, _ in blocks}
    assert pinned, "no pinned requirements found"
    requirement_lines = [
        ln for ln in lock.splitlines() if ln and not ln[0].isspace() and not ln.startswith("#")
    ]
    assert len(requirement_lines) == len(blocks), "every requirement must be `name==version` with hashes"
    top = _requirement_names((REPO_ROOT / "requirements.in").read_text().splitlines())
    assert top <= pinned, f"requirements.in not locked: {top - pinned}"
    declared = _requirement_names(
        tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    )
    assert declared <= top, f"pyproject dependencies missing from requirements.in: {declared - top}"


# --------------------------------------------------------------------------------------------------
# The runner-faithful `docker run` helper
# --------------------------------------------------------------------------------------------------

PROBE = textwrap.dedent(
    """
    import json, os, subprocess
    git = subprocess.run(["git", "status"], capture_output=True, text=True)
    open("/github/workspace/left-by-root.txt", "w").close()
    with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as fh:
        fh.write("multi<<ghadelimiter_1\\nline 1\\nline 2\\nghadelimiter_1\\nsimple=a=b\\n")
    with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as fh:
        fh.write("## summary\\n")
    print(json.dumps({"uid": os.getuid(), "cwd": os.getcwd(), "env": dict(os.environ),
                      "workspace_uid": os.stat("/github/workspace").st_uid, "git": git.stderr}))
    """
)


@docker
def test_run_like_github_reproduces_the_runner(image: BuildInfo, tmp_path: Path) -> None:
    dirs = make_github_dirs(tmp_path)
    subprocess.run(["git", "init", "-q", str(dirs.workspace)], check=True)
    result = run_like_github(
        image.tag,
        **dirs.as_kwargs(),
        inputs={"my-input": "x", "with space": "y", "path": str(dirs.workspace / "sub")},
        env={"MY_SECRET": "s3cr3t-value"},
        entrypoint="python",
        args=["-c", PROBE],
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout)
    env = probe["env"]
    assert probe["uid"] == 0
    assert probe["cwd"] == "/github/workspace"
    assert probe["workspace_uid"] == 1001
    assert "dubious ownership" in probe["git"]
    assert env["INPUT_MY-INPUT"] == "x"
    assert env["INPUT_WITH_SPACE"] == "y"
    assert env["INPUT_PATH"] == "/github/workspace/sub"  # host paths are translated, inputs included
    assert env["GITHUB_ACTIONS"] == "true" and env["CI"] == "true"
    assert env["HOME"] == "/github/home"
    assert env["GITHUB_WORKSPACE"] == "/github/workspace"
    assert env["RUNNER_TEMP"] == "/github/runner_temp"
    assert env["GITHUB_EVENT_PATH"] == "/github/workflow/event.json"
    assert env["GITHUB_OUTPUT"].startswith("/github/file_commands/set_output_")
    assert env["GITHUB_STEP_SUMMARY"].startswith("/github/file_commands/step_summary_")
    assert env["MY_SECRET"] == "s3cr3t-value"
    run = result.run
    assert run is not None
    assert "s3cr3t-value" not in " ".join(run.argv)  # values travel in the CLI's environment only
    assert not {"--user", "--init", "-t", "-it"} & set(run.argv)
    assert result.outputs == {"multi": "line 1\nline 2", "simple": "a=b"}
    assert result.summary == "## summary\n"
    assert files_not_owned_by(dirs.workspace) == [dirs.workspace / "left-by-root.txt"]
    assert list_containers(run.label, include_stopped=True) == []  # --rm


SLEEPER = textwrap.dedent(
    """
    import os, signal, sys, time
    def on_signal(signum, frame):
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as fh:
            fh.write(f"signal={signum}\\n")
        sys.exit(130)
    signal.signal(signal.SIGINT, on_signal)
    print("ready")
    time.sleep(60)
    """
)


@docker
def test_sigint_to_the_docker_cli_reaches_pid_1(image: BuildInfo, tmp_path: Path) -> None:
    dirs = make_github_dirs(tmp_path)
    run = start_like_github(
        image.tag, **dirs.as_kwargs(), inputs={}, entrypoint="python", args=["-c", SLEEPER]
    )
    try:
        assert run.wait_for_output("ready", timeout=60), run.stderr_so_far()
        result = run.cancel_like_runner()
        assert result.escalation == "sigint"
        assert result.returncode == 130
        assert result.outputs == {"signal": "2"}
        assert list_containers(run.label, include_stopped=True) == []
    finally:
        remove_containers(run.label)
