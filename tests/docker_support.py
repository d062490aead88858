"""Helpers for tests that build the action image and run it the way GitHub's runner does.

No tests here. What the helpers reproduce (see ../shared/docs/github-actions.md, sections 1.1-1.7, and
actions/runner ``DockerCommandManager.DockerRun`` / ``ContainerActionHandler``):

* ``docker build -t <tag> -f <ctx>/Dockerfile <ctx>`` (the runner builds once per job, no cache flags).
* ``docker run --name <image>_<6hex> --label <6hex> --workdir /github/workspace --rm -e NAME ...
  -e GITHUB_ACTIONS=true -e CI=true [--entrypoint X] [--network N] -v ... <image> [args]``; every env
  value travels in the docker CLI's own environment (``-e NAME`` only), never on the command line; no
  ``--user``, no ``--init``, no ``-t``; stdin is not attached.
* Mounts: docker.sock (if present), runner temp, home, workflow, file commands, workspace; env values
  that start with a mounted host path are rewritten to the container path (inputs too).
* File commands: ``set_output_<guid>``, ``set_env_<guid>``, ``add_path_<guid>``, ``save_state_<guid>``,
  ``step_summary_<guid>`` created empty before the step, read back after it with
  ``tests/github_parsers.parse_env_file`` (the runner's ``EnvFileKeyValuePairs``).
* Ownership: on GitHub the workspace and the runner's temp directories belong to the runner user
  (uid/gid 1001) while the container runs as root, so git inside sees "dubious ownership".
* Cancellation: the runner sends SIGINT to the ``docker run`` CLI (which proxies it to PID 1), SIGTERM
  after 7.5 s, kills the CLI after 2.5 s more; the container then keeps running (``--rm`` never fires).
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .github_parsers import EnvFileError, decode_file, parse_env_file

REPO_ROOT = Path(__file__).resolve().parents[1]
# A per-checkout tag (WORKTREE_RUNNER_TEST_IMAGE) lets several checkouts on one machine test side by side.
DEFAULT_TAG = os.environ.get("WORKTREE_RUNNER_TEST_IMAGE") or "worktree-runner:test"
RUNNER_UID = 1001  # the hosted runner's "runner" user; also its primary gid
RUNNER_GID = 1001
SUMMARY_LIMIT_BYTES = 1024 * 1024  # the runner drops a step summary larger than this (1 MiB)
SIGINT_TIMEOUT = 7.5  # runner ProcessInvoker: SIGINT, then SIGTERM after 7.5 s ...
SIGTERM_TIMEOUT = 2.5  # ... then kills the process tree after 2.5 s more

CONTAINER_WORKSPACE = "/github/workspace"
CONTAINER_HOME = "/github/home"
CONTAINER_WORKFLOW = "/github/workflow"
CONTAINER_FILE_COMMANDS = "/github/file_commands"
CONTAINER_RUNNER_TEMP = "/github/runner_temp"
DOCKER_SOCK = "/var/run/docker.sock"

_DOCKER_INFO_TIMEOUT = 20.0


# --------------------------------------------------------------------------------------------------
# Docker availability and the image
# --------------------------------------------------------------------------------------------------


@functools.cache
def docker_available() -> bool:
    """True when a docker CLI is on PATH and its daemon answers (cached for the session)."""
    if shutil.which("docker") is None:
        return False
    try:
        proc = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=_DOCKER_INFO_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and bool(proc.stdout.strip())


def docker_required() -> bool:
    """True where a missing Docker must fail the tests: under CI, or WORKTREE_RUNNER_REQUIRE_DOCKER set."""
    return bool(os.environ.get("CI") or os.environ.get("WORKTREE_RUNNER_REQUIRE_DOCKER"))


def require_docker() -> None:
    """Skip the calling test when Docker is missing, except where docker_required(): then it fails."""
    if docker_available():
        return
    reason = "no usable Docker engine (run .ci/docker-setup, i.e. ../shared/tools/docker-sandbox)"
    if docker_required():
        pytest.fail(f"Docker is required here (CI / WORKTREE_RUNNER_REQUIRE_DOCKER) but there is {reason}")
    pytest.skip(reason)


class DockerBuildError(RuntimeError):
    def __init__(self, tag: str, returncode: int, log: str) -> None:
        tail = "\n".join(log.splitlines()[-60:])
        super().__init__(f"docker build of {tag} failed with exit code {returncode}:\n{tail}")
        self.tag = tag
        self.returncode = returncode
        self.log = log


@dataclass(frozen=True)
class BuildInfo:
    tag: str
    seconds: float  # wall time of the `docker build` call
    size_bytes: int  # `docker image inspect -f {{.Size}}`
    log: str = field(repr=False, default="")


_build_lock = threading.Lock()
_builds: dict[tuple[str, str, bool], BuildInfo] = {}


def build_image(
    tag: str = DEFAULT_TAG,
    context: Path | str = REPO_ROOT,
    *,
    no_cache: bool = False,
    timeout: float = 1200.0,
) -> BuildInfo:
    """Build ``<context>/Dockerfile`` as the runner does; once per (tag, context, no_cache) per session.

    Raises DockerBuildError (with the build log) when the build fails.
    """
    ctx = Path(context).resolve()
    key = (tag, str(ctx), no_cache)
    with _build_lock:
        if key in _builds:
            return _builds[key]
        argv = ["docker", "build", "-t", tag, "-f", str(ctx / "Dockerfile")]
        if no_cache:
            argv.append("--no-cache")
        argv.append(str(ctx))
        start = time.monotonic()
        proc = subprocess.run(
            argv,
            cwd=ctx,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
        seconds = time.monotonic() - start
        if proc.returncode != 0:
            raise DockerBuildError(tag, proc.returncode, proc.stdout)
        info = BuildInfo(tag=tag, seconds=seconds, size_bytes=image_size(tag), log=proc.stdout)
        _builds[key] = info
        return info


def image_inspect(image: str) -> dict[str, object]:
    """The parsed ``docker image inspect <image>`` object."""
    out = subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    data = json.loads(out)
    assert isinstance(data, list) and len(data) == 1, data
    obj = data[0]
    assert isinstance(obj, dict)
    return obj


def image_config(image: str) -> dict[str, object]:
    """The image's ``Config`` (User, WorkingDir, Env, Entrypoint, Cmd, Labels, ...)."""
    config = image_inspect(image)["Config"]
    assert isinstance(config, dict)
    return config


def image_env(image: str) -> dict[str, str]:
    env = image_config(image).get("Env") or []
    assert isinstance(env, list)
    return dict(str(item).partition("=")[::2] for item in env)


def image_size(image: str) -> int:
    size = image_inspect(image)["Size"]
    assert isinstance(size, int)
    return size


def dockerfile_base_image(dockerfile: Path | str = REPO_ROOT / "Dockerfile") -> str:
    """The image named by the (last) ``FROM`` line of a Dockerfile."""
    base = ""
    for line in Path(dockerfile).read_text().splitlines():
        words = [w for w in line.split() if not w.startswith("--")]
        if len(words) >= 2 and words[0].upper() == "FROM":
            base = words[1]
    if not base:
        raise ValueError(f"no FROM line in {dockerfile}")
    return base


def run_in_image(
    image: str,
    argv: Sequence[str],
    *,
    entrypoint: str | None = None,
    workdir: str | None = None,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """A plain ``docker run --rm [--entrypoint E] <image> argv...`` for quick checks of the image."""
    cmd = ["docker", "run", "--rm"]
    if entrypoint is not None:
        cmd += ["--entrypoint", entrypoint]
    if workdir is not None:
        cmd += ["--workdir", workdir]
    cmd += [image, *argv]
    return subprocess.run(
        cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout, check=False
    )


# --------------------------------------------------------------------------------------------------
# Ownership and containers
# --------------------------------------------------------------------------------------------------


def chown_tree(root: Path | str, uid: int = RUNNER_UID, gid: int | None = None) -> None:
    """``chown -R uid:gid root`` without following symlinks (gid defaults to uid)."""
    gid = uid if gid is None else gid
    root = Path(root)
    os.lchown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.lchown(os.path.join(dirpath, name), uid, gid)


def files_not_owned_by(root: Path | str, uid: int = RUNNER_UID) -> list[Path]:
    """Every path under ``root`` (root included, symlinks not followed) whose owner is not ``uid``."""
    root = Path(root)
    bad: list[Path] = []
    if os.lstat(root).st_uid != uid:
        bad.append(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            path = os.path.join(dirpath, name)
            if os.lstat(path).st_uid != uid:
                bad.append(Path(path))
    return bad


def list_containers(label: str, *, include_stopped: bool = False) -> list[str]:
    """Names of the containers that carry ``label`` (running only, unless include_stopped)."""
    cmd = ["docker", "ps", "--filter", f"label={label}", "--format", "{{.Names}}"]
    if include_stopped:
        cmd.insert(2, "--all")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    return [line for line in out.splitlines() if line]


def remove_containers(label: str) -> list[str]:
    """``docker rm --force`` every container with ``label``; returns the names removed."""
    names = list_containers(label, include_stopped=True)
    if names:
        subprocess.run(["docker", "rm", "--force", *names], capture_output=True, check=False, timeout=120)
    return names


# --------------------------------------------------------------------------------------------------
# File-command formats: the runner's env-file parser lives in tests/github_parsers.py
# --------------------------------------------------------------------------------------------------


def read_runner_text(path: Path | str) -> str:
    """A file-command file as .NET File.ReadAllText reads it (UTF-8, BOM skipped, bad bytes -> U+FFFD)."""
    return decode_file(Path(path).read_bytes())


def parse_path_file(text: str) -> list[str]:
    """GITHUB_PATH as the runner reads it (File.ReadAllLines: CRLF, LF or CR end a line; blanks skipped)."""
    return [line for line in re.split(r"\r\n|\n|\r", text) if line]


# --------------------------------------------------------------------------------------------------
# Running the image like GitHub's runner
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GithubDirs:
    """Host-side directories laid out like the runner's (``_temp`` holds home, workflow, file commands)."""

    workspace: Path
    runner_temp: Path
    home: Path
    workflow_dir: Path
    file_commands: Path

    def as_kwargs(self) -> dict[str, Path]:
        return {
            "workspace": self.workspace,
            "runner_temp": self.runner_temp,
            "home": self.home,
            "workflow_dir": self.workflow_dir,
            "file_commands": self.file_commands,
        }


def make_github_dirs(
    base: Path | str,
    *,
    uid: int | None = None,
    event: Mapping[str, object] | None = None,
) -> GithubDirs:
    """Create ``base/work/repo/repo`` (workspace) and ``base/work/_temp/{_github_home,_github_workflow,
    _runner_file_commands}`` like a hosted runner and write ``event.json`` when ``event`` is given.

    Ownership is left to start_like_github (it chowns to ``workspace_uid`` right before the run), so
    the test can still prepare the workspace with the host's git; pass ``uid`` to chown here already
    (after that, host git needs ``-c safe.directory=*``)."""
    base = Path(base)
    work = base / "work"
    temp = work / "_temp"
    dirs = GithubDirs(
        workspace=work / "repo" / "repo",
        runner_temp=temp,
        home=temp / "_github_home",
        workflow_dir=temp / "_github_workflow",
        file_commands=temp / "_runner_file_commands",
    )
    for d in (dirs.workspace, dirs.home, dirs.workflow_dir, dirs.file_commands):
        d.mkdir(parents=True, exist_ok=True)
    if event is not None:
        (dirs.workflow_dir / "event.json").write_text(json.dumps(event, indent=2) + "\n")
    if uid is not None:
        chown_tree(work, uid)
    return dirs


def input_env_name(name: str) -> str:
    """``INPUT_`` + name with spaces -> ``_``, upper-cased; hyphens and other characters are kept."""
    return "INPUT_" + name.replace(" ", "_").upper()


def _container_name(image: str) -> str:
    sanitized = re.sub(r"[^A-Za-z0-9_]", "", image) or "image"
    return f"{sanitized}_{secrets.token_hex(3)}"


def _translate(value: str, mappings: Sequence[tuple[str, str]]) -> str:
    """The runner's TranslateToContainerPath: a value equal to / under a mapped host path is rewritten."""
    for host, container in mappings:
        if value == host:
            return container
        if value.startswith(host + "/"):
            return container + value[len(host) :]
    return value


def _head_sha(workspace: Path) -> str:
    try:
        proc = subprocess.run(
            ["git", "-c", "safe.directory=*", "-C", str(workspace), "rev-parse", "--verify", "-q", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return "0" * 40
    sha = proc.stdout.strip()
    return sha if proc.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", sha) else "0" * 40


def default_event(repository: str, sha: str, ref: str = "refs/heads/main") -> dict[str, object]:
    """A small ``push`` event payload."""
    owner, _, name = repository.partition("/")
    return {
        "ref": ref,
        "before": "0" * 40,
        "after": sha,
        "repository": {
            "full_name": repository,
            "name": name,
            "owner": {"login": owner},
            "default_branch": "main",
            "private": False,
        },
        "sender": {"login": "octocat", "type": "User"},
        "head_commit": {"id": sha, "message": "test"},
    }


@dataclass
class GithubResult:
    """What a step run left behind: exit code, logs, and the parsed file commands."""

    returncode: int
    stdout: str
    stderr: str
    output_text: str  # raw GITHUB_OUTPUT
    env_text: str  # raw GITHUB_ENV
    state_text: str  # raw GITHUB_STATE
    path_text: str  # raw GITHUB_PATH
    summary: str  # GITHUB_STEP_SUMMARY text
    summary_bytes: int
    seconds: float
    escalation: str | None = None  # set by cancel_like_runner: "sigint" | "sigterm" | "kill"
    run: GithubRun | None = field(default=None, repr=False)

    @functools.cached_property
    def outputs(self) -> dict[str, str]:
        """GITHUB_OUTPUT parsed like the runner (raises EnvFileError where the step would fail); a later
        record with the same name wins, as in the runner."""
        return dict(parse_env_file(self.output_text))

    @functools.cached_property
    def exported_env(self) -> dict[str, str]:
        return dict(parse_env_file(self.env_text))

    @functools.cached_property
    def state(self) -> dict[str, str]:
        return dict(parse_env_file(self.state_text))

    @functools.cached_property
    def path_entries(self) -> list[str]:
        return parse_path_file(self.path_text)

    @property
    def step_failed(self) -> bool:
        """As the runner judges the step: non-zero exit, or a file command it cannot parse."""
        if self.returncode != 0:
            return True
        try:
            for text in (self.output_text, self.env_text, self.state_text):
                parse_env_file(text)
        except EnvFileError:
            return True
        return False


class _Pump(threading.Thread):
    """Reads a pipe to EOF into a buffer and wakes waiters on every chunk."""

    def __init__(self, stream: object, cond: threading.Condition) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.cond = cond
        self.data = bytearray()

    def run(self) -> None:
        fd = self.stream.fileno()  # type: ignore[attr-defined]
        while True:
            chunk = os.read(fd, 65536)
            with self.cond:
                if not chunk:
                    self.cond.notify_all()
                    break
                self.data += chunk
                self.cond.notify_all()

    def text(self) -> str:
        with self.cond:
            return bytes(self.data).decode("utf-8", errors="replace")


@dataclass
class GithubRun:
    """A ``docker run`` started like the runner's; ``process`` is the docker CLI (the runner's child)."""

    process: subprocess.Popen[bytes]
    argv: list[str]
    container_env: dict[str, str]  # what the container receives (after path translation)
    name: str
    label: str
    image: str
    dirs: GithubDirs
    files: dict[str, Path]  # "output", "env", "path", "state", "summary" -> host path
    started: float
    _cond: threading.Condition = field(repr=False)
    _out: _Pump = field(repr=False)
    _err: _Pump = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stdout_so_far(self) -> str:
        return self._out.text()

    def stderr_so_far(self) -> str:
        return self._err.text()

    def wait_for_output(self, needle: str, timeout: float = 60.0, *, stream: str = "any") -> bool:
        """Block until ``needle`` appears on stdout/stderr ("stdout", "stderr" or "any"), the CLI exits
        with nothing more to read, or the timeout passes. True when it appeared."""
        pumps = {"stdout": [self._out], "stderr": [self._err], "any": [self._out, self._err]}[stream]
        raw = needle.encode()
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if any(raw in p.data for p in pumps):
                    return True
                if all(not p.is_alive() for p in pumps):
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.5))

    def send_signal(self, sig: int = signal.SIGINT) -> None:
        """Signal the docker CLI (it proxies the signal to the container's PID 1)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def interrupt(self) -> None:
        self.send_signal(signal.SIGINT)

    def wait(self, timeout: float = 300.0) -> GithubResult:
        """Wait for the CLI to exit and collect everything. On timeout the CLI is killed, the container
        force-removed, and subprocess.TimeoutExpired raised (with the logs so far)."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.process.kill()
            self.process.wait()
            subprocess.run(["docker", "rm", "--force", self.name], capture_output=True, check=False)
            self._join()
            raise subprocess.TimeoutExpired(
                self.argv, timeout, output=self._out.text(), stderr=self._err.text()
            ) from exc
        return self._collect(None)

    def cancel_like_runner(
        self,
        sigint_timeout: float = SIGINT_TIMEOUT,
        sigterm_timeout: float = SIGTERM_TIMEOUT,
    ) -> GithubResult:
        """Cancel as the runner does: SIGINT to the CLI, SIGTERM after 7.5 s, kill after 2.5 s more.

        ``escalation`` in the result says how far it went. After a kill the container is still running
        (as on GitHub): check with list_containers(run.label), clean up with remove_containers."""
        escalation = "sigint"
        self.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=sigint_timeout)
        except subprocess.TimeoutExpired:
            escalation = "sigterm"
            self.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=sigterm_timeout)
            except subprocess.TimeoutExpired:
                escalation = "kill"
                self.process.kill()
                self.process.wait()
        return self._collect(escalation)

    def _join(self) -> None:
        for pump in (self._out, self._err):
            pump.join(timeout=30)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()

    def _collect(self, escalation: str | None) -> GithubResult:
        self._join()
        returncode = self.process.returncode
        assert returncode is not None
        summary_path = self.files["summary"]
        summary_raw = summary_path.read_bytes() if summary_path.exists() else b""
        texts = {
            k: read_runner_text(p) if p.exists() else "" for k, p in self.files.items() if k != "summary"
        }
        return GithubResult(
            returncode=returncode,
            stdout=self._out.text(),
            stderr=self._err.text(),
            output_text=texts["output"],
            env_text=texts["env"],
            state_text=texts["state"],
            path_text=texts["path"],
            summary=summary_raw.decode("utf-8", errors="replace"),
            summary_bytes=len(summary_raw),
            seconds=time.monotonic() - self.started,
            escalation=escalation,
            run=self,
        )


def start_like_github(
    image: str,
    *,
    workspace: Path,
    inputs: Mapping[str, str],
    env: Mapping[str, str] | None = None,
    runner_temp: Path,
    file_commands: Path,
    home: Path,
    workflow_dir: Path,
    workspace_uid: int | None = RUNNER_UID,
    args: Sequence[str] = (),
    entrypoint: str | None = None,
    network: str | None = None,
    label: str | None = None,
    mount_docker_sock: bool = True,
) -> GithubRun:
    """Start the image exactly as the runner starts a container action step; returns at once.

    * ``inputs``: action inputs by their action.yml names -> ``INPUT_<NAME>`` (spaces -> ``_``,
      upper-cased, hyphens kept). Pass every declared input (the runner passes defaults or "").
    * ``env``: extra variables (step ``env:`` / ``runs.env``); they also override the GITHUB_* /
      RUNNER_* defaults built here (the real runner never lets step env override those; tests may).
    * ``workspace_uid``: the workspace and the temp dirs are chowned to it (gid = uid) before the
      run, as a hosted runner's user owns them; None leaves ownership alone.
    * ``args``: the container arguments (``runs.args``), passed as separate argv items.
    """
    dirs = GithubDirs(
        workspace=Path(workspace).resolve(),
        runner_temp=Path(runner_temp).resolve(),
        home=Path(home).resolve(),
        workflow_dir=Path(workflow_dir).resolve(),
        file_commands=Path(file_commands).resolve(),
    )
    for d in (dirs.workspace, dirs.runner_temp, dirs.home, dirs.workflow_dir, dirs.file_commands):
        d.mkdir(parents=True, exist_ok=True)

    # One new set of file-command files per step, created empty (FileCommandManager.InitializeFiles).
    guid = str(uuid.uuid4())
    prefixes = {
        "path": "add_path_",
        "env": "set_env_",
        "summary": "step_summary_",
        "state": "save_state_",
        "output": "set_output_",
    }
    files = {key: dirs.file_commands / f"{prefix}{guid}" for key, prefix in prefixes.items()}
    for path in files.values():
        path.write_bytes(b"")

    user_env = dict(env or {})
    repository = user_env.get("GITHUB_REPOSITORY", "octo-org/octo-repo")
    owner, _, repo_name = repository.partition("/")
    sha = user_env.get("GITHUB_SHA") or _head_sha(dirs.workspace)
    ref = user_env.get("GITHUB_REF", "refs/heads/main")
    event_path = dirs.workflow_dir / "event.json"
    if not event_path.exists():
        event_path.write_text(json.dumps(default_event(repository, sha, ref), indent=2) + "\n")

    if workspace_uid is not None:
        chown_tree(dirs.workspace, workspace_uid)
        for d in (dirs.runner_temp, dirs.home, dirs.workflow_dir, dirs.file_commands):
            chown_tree(d, workspace_uid)

    # Host path -> container path, most specific first (home etc. live inside runner_temp on a runner).
    mappings = sorted(
        [
            (str(dirs.home), CONTAINER_HOME),
            (str(dirs.workflow_dir), CONTAINER_WORKFLOW),
            (str(dirs.file_commands), CONTAINER_FILE_COMMANDS),
            (str(dirs.workspace), CONTAINER_WORKSPACE),
            (str(dirs.runner_temp), CONTAINER_RUNNER_TEMP),
        ],
        key=lambda m: len(m[0]),
        reverse=True,
    )

    # Order as in a real step: inputs, step env, HOME, the github/runner contexts, the runtime vars.
    raw: dict[str, str] = {input_env_name(k): v for k, v in inputs.items()}
    raw["HOME"] = str(dirs.home)
    raw.update(
        {
            "GITHUB_JOB": "test",
            "GITHUB_REF": ref,
            "GITHUB_SHA": sha,
            "GITHUB_REPOSITORY": repository,
            "GITHUB_REPOSITORY_OWNER": owner,
            "GITHUB_REPOSITORY_OWNER_ID": "9919",
            "GITHUB_RUN_ID": "1234567890",
            "GITHUB_RUN_NUMBER": "7",
            "GITHUB_RETENTION_DAYS": "90",
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_REPOSITORY_ID": "123456",
            "GITHUB_ACTOR_ID": "583231",
            "GITHUB_ACTOR": "octocat",
            "GITHUB_TRIGGERING_ACTOR": "octocat",
            "GITHUB_WORKFLOW": "CI",
            "GITHUB_HEAD_REF": "",
            "GITHUB_BASE_REF": "",
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_API_URL": "https://api.github.com",
            "GITHUB_GRAPHQL_URL": "https://api.github.com/graphql",
            "GITHUB_REF_NAME": ref.rpartition("/")[2],
            "GITHUB_REF_PROTECTED": "false",
            "GITHUB_REF_TYPE": "tag" if ref.startswith("refs/tags/") else "branch",
            "GITHUB_WORKFLOW_REF": f"{repository}/.github/workflows/ci.yml@{ref}",
            "GITHUB_WORKFLOW_SHA": sha,
            "GITHUB_WORKSPACE": str(dirs.workspace),
            "GITHUB_ACTION": "__self",
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_ACTION_REPOSITORY": "",
            "GITHUB_ACTION_REF": "",
            "GITHUB_PATH": str(files["path"]),
            "GITHUB_ENV": str(files["env"]),
            "GITHUB_STEP_SUMMARY": str(files["summary"]),
            "GITHUB_STATE": str(files["state"]),
            "GITHUB_OUTPUT": str(files["output"]),
            "RUNNER_OS": "Linux",
            "RUNNER_ARCH": "X64",
            "RUNNER_NAME": "GitHub Actions 1000000001",
            "RUNNER_ENVIRONMENT": "github-hosted",
            "RUNNER_TOOL_CACHE": "/opt/hostedtoolcache",
            "RUNNER_TEMP": str(dirs.runner_temp),
            "RUNNER_WORKSPACE": f"/home/runner/work/{repo_name}",
            "ACTIONS_RUNTIME_URL": "https://pipelines.actions.example.invalid/fake/",
            "ACTIONS_RUNTIME_TOKEN": "fake-runtime-token-" + secrets.token_hex(8),
            "ACTIONS_CACHE_URL": "https://artifactcache.actions.example.invalid/fake/",
            "ACTIONS_RESULTS_URL": "https://results-receiver.actions.example.invalid/",
        }
    )
    raw.update(user_env)
    container_env = {k: _translate(v, mappings) for k, v in raw.items()}

    name = _container_name(image)
    label = label or secrets.token_hex(3)
    argv = ["docker", "run", "--name", name, "--label", label, "--workdir", CONTAINER_WORKSPACE, "--rm"]
    for key in container_env:
        argv += ["-e", key]
    argv += ["-e", "GITHUB_ACTIONS=true"]
    if "CI" not in container_env:
        argv += ["-e", "CI=true"]
    if entrypoint:
        argv += ["--entrypoint", entrypoint]
    if network:
        argv += ["--network", network]
    if mount_docker_sock and os.path.exists(DOCKER_SOCK):
        argv += ["-v", f"{DOCKER_SOCK}:{DOCKER_SOCK}"]
    argv += [
        "-v",
        f"{dirs.runner_temp}:{CONTAINER_RUNNER_TEMP}",
        "-v",
        f"{dirs.home}:{CONTAINER_HOME}",
        "-v",
        f"{dirs.workflow_dir}:{CONTAINER_WORKFLOW}",
        "-v",
        f"{dirs.file_commands}:{CONTAINER_FILE_COMMANDS}",
        "-v",
        f"{dirs.workspace}:{CONTAINER_WORKSPACE}",
        image,
        *args,
    ]

    # The values reach the container only through the CLI's environment.
    cli_env = {**os.environ, **container_env}
    cond = threading.Condition()
    started = time.monotonic()
    process = subprocess.Popen(
        argv, env=cli_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = _Pump(process.stdout, cond), _Pump(process.stderr, cond)
    out.start()
    err.start()
    return GithubRun(
        process=process,
        argv=argv,
        container_env=container_env,
        name=name,
        label=label,
        image=image,
        dirs=dirs,
        files=files,
        started=started,
        _cond=cond,
        _out=out,
        _err=err,
    )


def run_like_github(image: str, *, timeout: float = 300.0, **kwargs: Any) -> GithubResult:
    """start_like_github (same keyword arguments) + wait: run one step to completion."""
    return start_like_github(image, **kwargs).wait(timeout=timeout)
