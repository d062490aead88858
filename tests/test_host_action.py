"""The host variant (host/action.yml, a composite action) against the Docker action and for real.

* Its inputs and outputs are those of action.yml, each input is forwarded as the INPUT_* variable the
  Docker action gets, each output is mapped from the run step, and both steps `exec`.
* Its two steps are run outside Actions the way the runner runs composite `run:` steps: the step's
  own text from host/action.yml in a file, `bash --noprofile --norc -e -o pipefail <file>`, the step's
  `env:` with its `${{ inputs.* }}` / `${{ steps.*.outputs.* }}` expressions evaluated,
  GITHUB_ACTION_PATH, a GITHUB_OUTPUT file per step, outputs mapped by `outputs.<id>.value`.
* The runner's venv is made from one Python while the job's `python3` is another (older) one: the
  hypotheses run the job's Python, never the runner's.
* Cancellation as the runner does it: SIGINT to the step's own PID only.

Needs two CPython builds of different versions, one older than 3.11 (pyenv's on this machine,
$PYENV_ROOT/versions); without them those tests skip. The venv install needs the package index.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.github.inputs import input_env_name

from .conftest import REPO_ROOT, make_check_repo, pid_alive, worktree_list
from .github_parsers import parse_command, parse_env_file

DOCKER_ACTION: dict[str, Any] = yaml.safe_load((REPO_ROOT / "action.yml").read_text())
HOST_DIR = REPO_ROOT / "host"
HOST_ACTION: dict[str, Any] = yaml.safe_load((HOST_DIR / "action.yml").read_text())
INSTALL_SH = HOST_DIR / "install.sh"
INSTALL_TIMEOUT = 600.0  # a cold install downloads ~25 wheels

_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


# --------------------------------------------------------------------------------------------------
# Same inputs, same outputs, one entry point


def _step(step_id: str) -> dict[str, Any]:
    steps = HOST_ACTION["runs"]["steps"]
    matches = [s for s in steps if s.get("id") == step_id]
    assert len(matches) == 1, step_id
    return matches[0]


def test_inputs_are_those_of_the_docker_action() -> None:
    assert list(HOST_ACTION["inputs"]) == list(DOCKER_ACTION["inputs"])
    for name, spec in DOCKER_ACTION["inputs"].items():
        assert HOST_ACTION["inputs"][name] == spec, name  # description, required, default


def test_outputs_are_those_of_the_docker_action_mapped_from_the_run_step() -> None:
    assert list(HOST_ACTION["outputs"]) == list(DOCKER_ACTION["outputs"])
    for name, spec in DOCKER_ACTION["outputs"].items():
        assert HOST_ACTION["outputs"][name] == {
            "description": spec["description"],
            "value": f"${{{{ steps.run.outputs.{name} }}}}",
        }, name


def test_every_input_is_forwarded_under_the_docker_actions_variable_name() -> None:
    env = _step("run")["env"]
    forwarded = {key: value for key, value in env.items() if key.startswith("INPUT_")}
    assert forwarded == {
        input_env_name(name): f"${{{{ inputs.{name} }}}}" for name in DOCKER_ACTION["inputs"]
    }
    assert set(env) - set(forwarded) == {"WORKTREE_RUNNER_HOST_PYTHON"}
    assert env["WORKTREE_RUNNER_HOST_PYTHON"] == "${{ steps.install.outputs.python }}"


def test_both_steps_exec_and_the_entry_point_is_the_docker_images() -> None:
    assert HOST_ACTION["runs"]["using"] == "composite"
    assert [s["id"] for s in HOST_ACTION["runs"]["steps"]] == ["install", "run"]
    for step in HOST_ACTION["runs"]["steps"]:
        assert step["shell"] == "bash"
        # The runner signals only the step's own process: without exec, bash would get the signal.
        assert step["run"].startswith("exec "), step["id"]
        assert "\n" not in step["run"].strip(), step["id"]
    assert '"$GITHUB_ACTION_PATH/../entrypoint.py"' in _step("run")["run"]
    assert '"$GITHUB_ACTION_PATH/install.sh"' in _step("install")["run"]
    # The image runs the same file with its own (private) interpreter.
    entry = re.search(r'^ENTRYPOINT \["(?P<python>[^"]+)", "(?P<script>[^"]+)"\]$',
                      (REPO_ROOT / "Dockerfile").read_text(), re.MULTILINE)  # fmt: skip
    assert entry is not None and entry["script"] == "/action/entrypoint.py"
    assert entry["python"].endswith("/python")
    assert os.access(INSTALL_SH, os.X_OK)


# --------------------------------------------------------------------------------------------------
# Pythons, and a small emulation of the runner's composite handler


def _pyenv_pythons() -> dict[tuple[int, int], Path]:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found: dict[tuple[int, int], Path] = {}
    for exe in sorted(root.glob("*/bin/python3")):
        match = re.fullmatch(r"(\d+)\.(\d+)\.\d+", exe.parent.parent.name)
        if match:
            found.setdefault((int(match[1]), int(match[2])), exe)
    return found


@dataclass(frozen=True)
class Pythons:
    old: Path  # the job's python3: older than the runner accepts
    old_version: str
    new: Path  # what the runner runs on
    new_version: str
    new_name: str  # python3.X


def _version_of(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip


@pytest.fixture(scope="module")
def pythons() -> Pythons:
    found = _pyenv_pythons()
    old = [v for v in found if v < (3, 11)]
    new = [v for v in found if v >= (3, 11)]
    if not old or not new:
        pytest.skip(f"needs a CPython < 3.11 and one >= 3.11 under pyenv; found {sorted(found)}")
    # The runner's Python: a 3.12 if there is one (not the Debian 3.11 that /usr/bin also offers).
    o, n = max(old), min(new, key=lambda v: (v != (3, 12), v))
    return Pythons(found[o], _version_of(found[o]), found[n], _version_of(found[n]), f"python{n[0]}.{n[1]}")


def job_bin(directory: Path, links: Mapping[str, Path]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, target in links.items():
        (directory / name).symlink_to(target)
    return directory


@dataclass
class Job:
    """One job: a workspace, RUNNER_TEMP, the job's environment, and file-command files per step."""

    workspace: Path
    runner_temp: Path
    files: Path
    env: dict[str, str]

    def evaluate(self, text: str, inputs: Mapping[str, str], steps: Mapping[str, dict[str, str]]) -> str:
        def one(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression == "github.token":
                return ""
            if expression.startswith("inputs."):
                name = expression.removeprefix("inputs.")
                if name in inputs:
                    return inputs[name]
                default = str(HOST_ACTION["inputs"][name].get("default", ""))
                return self.evaluate(default, inputs, steps)
            step_match = re.fullmatch(r"steps\.([a-z-]+)\.outputs\.([a-z-]+)", expression)
            assert step_match, f"the emulation does not know {expression!r}"
            return steps.get(step_match[1], {}).get(step_match[2], "")

        return _EXPRESSION.sub(one, text)

    def start(
        self, step: dict[str, Any], inputs: Mapping[str, str], steps: Mapping[str, dict[str, str]],
        *, run: str | None = None,
    ) -> subprocess.Popen[str]:  # fmt: skip
        """Start a composite `run:` step as the runner does (ScriptHandler: bash with a script file)."""
        self.files.mkdir(parents=True, exist_ok=True)
        output = self.files / f"set_output_{step['id']}"
        output.write_text("")
        script = self.files / f"{step['id']}.sh"
        script.write_text(step["run"] if run is None else run)
        env = dict(self.env)
        env.update(
            {key: self.evaluate(str(value), inputs, steps) for key, value in step.get("env", {}).items()}
        )
        env.update(GITHUB_ACTION_PATH=str(HOST_DIR), GITHUB_OUTPUT=str(output))
        return subprocess.Popen(
            ["/bin/bash", "--noprofile", "--norc", "-e", "-o", "pipefail", str(script)],
            cwd=self.workspace, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def outputs_of(self, step_id: str) -> dict[str, str]:
        return dict(parse_env_file((self.files / f"set_output_{step_id}").read_bytes()))

    def install(self) -> tuple[str, str]:
        proc = self.start(_step("install"), {}, {})
        out, err = proc.communicate(timeout=INSTALL_TIMEOUT)
        assert proc.returncode == 0, out + err
        return self.outputs_of("install")["python"], err

    def run_action(
        self, inputs: Mapping[str, str], timeout: float = 300
    ) -> tuple[int, str, str, dict[str, str]]:
        """Both steps; returns the action's exit code, stdout, stderr and outputs (``outputs.*.value``)."""
        python, _ = self.install()
        proc = self.start(_step("run"), inputs, {"install": {"python": python}})
        out, err = proc.communicate(timeout=timeout)
        steps = {"run": self.outputs_of("run")}
        outputs = {
            name: self.evaluate(spec["value"], inputs, steps) for name, spec in HOST_ACTION["outputs"].items()
        }
        return proc.returncode, out, err, outputs


def _job_env(runner_temp: Path, workspace: Path, files: Path, path: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("INPUT_", "GITHUB_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(
        PATH=path, GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(workspace), RUNNER_TEMP=str(runner_temp),
        GITHUB_STEP_SUMMARY=str(files / "step_summary"), **extra,
    )  # fmt: skip
    return env


@pytest.fixture(scope="module")
def shared_runner_temp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One RUNNER_TEMP for the module: the first install is cold, later ones reuse the venv."""
    return tmp_path_factory.mktemp("runner_temp")


@pytest.fixture
def job(tmp_path: Path, pythons: Pythons, shared_runner_temp: Path) -> Job:
    """A job whose `python3`/`python` is the old Python and which also has the new one as python3.X."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    make_check_repo(workspace)
    bin_dir = job_bin(tmp_path / "job-bin", {
        "python3": pythons.old, "python": pythons.old, pythons.new_name: pythons.new,
    })  # fmt: skip
    files = tmp_path / "file_commands"
    files.mkdir()
    (files / "step_summary").write_text("")
    env = _job_env(
        shared_runner_temp, workspace, files, f"{bin_dir}:/usr/bin:/bin", HOST_TEST_MARK=uuid.uuid4().hex
    )
    return Job(workspace, shared_runner_temp, files, env)


def _marked(mark: str) -> list[int]:
    """Live processes carrying ``HOST_TEST_MARK=<mark>`` (every process of one job)."""
    needle = f"HOST_TEST_MARK={mark}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------------
# For real


PRINT_PYTHON = (
    "import os, sys; print('hypothesis-python', sys.version.split()[0], os.path.realpath(sys.executable))"
)


def test_hypotheses_run_the_jobs_python_and_the_runner_its_own(job: Job, pythons: Pythons) -> None:
    hypotheses = [
        {"name": "main", "ref": "main"},
        {"name": "broken", "ref": "broken"},
        {"name": "which-python", "ref": "main", "command": ["python", "-c", PRINT_PYTHON]},
        # Nothing of the runner's is importable by the job's Python (the venv is not on its path).
        {"name": "nothing-of-ours", "ref": "main", "command": [
            "python", "-c",
            "import importlib.util as u, sys; "
            "sys.exit(u.find_spec('runner') is not None or 'worktree-runner-host' in sys.prefix)",
        ]},
    ]  # fmt: skip
    code, out, err, outputs = job.run_action(
        {
            "test-command": "python check.py",
            "hypotheses": yaml.safe_dump(hypotheses),
            "succeed-if": "any",
            "max-parallel": "2",
        }
    )
    assert code == 0, out + err
    assert outputs["conclusion"] == "success" and outputs["passed"] == "3" and outputs["failed"] == "1", (
        outputs
    )
    assert outputs["results-file"] == ".worktree-runner/results.json", outputs
    results = json.loads((job.workspace / outputs["results-file"]).read_text())
    status = {r["name"]: r["status"] for r in results["results"]}
    assert status == {
        "main": "passed",
        "broken": "failed",
        "which-python": "passed",
        "nothing-of-ours": "passed",
    }
    tail = next(r["output_tail"] for r in results["results"] if r["name"] == "which-python")
    # The job's python (python3/python on PATH), not the one the runner's venv was made from.
    assert f"hypothesis-python {pythons.old_version} {os.path.realpath(pythons.old)}" in tail, tail
    venvs = list((job.runner_temp / "worktree-runner-host").glob("venv-*"))
    assert len(venvs) == 1
    assert f"version = {pythons.new_version}" in (venvs[0] / "pyvenv.cfg").read_text()
    # Ordinary Docker-action behaviour through the same code path: one ::error per failing hypothesis.
    errors = [c for c in map(parse_command, out.splitlines()) if c is not None and c.command == "error"]
    assert len(errors) == 1 and "broken" in (errors[0].prop("title") or "") + errors[0].data, out
    assert worktree_list(job.workspace).count("worktree ") == 1


def test_bad_input_is_one_error_naming_the_input(job: Job) -> None:
    code, out, err, _ = job.run_action({"max-parallel": "many", "hypotheses": "- {name: a, ref: main}"})
    assert code == 2, out + err
    errors = [c for c in map(parse_command, out.splitlines()) if c is not None and c.command == "error"]
    assert len(errors) == 1 and "max-parallel" in errors[0].data, out
    assert not (job.workspace / ".worktree-runner").exists()


def test_second_use_in_a_job_reuses_the_venv(job: Job) -> None:
    first, _ = job.install()
    second, log = job.install()
    assert first == second
    assert "reused (made earlier in this job)" in log, log


SLEEPER = (
    "import os, pathlib, subprocess, time; "
    "subprocess.Popen(['sleep', '300']); "
    "pathlib.Path(os.environ['MARK_DIR'], os.environ['WORKTREE_RUNNER_HYPOTHESIS']).touch(); "
    "time.sleep(300)"
)


def _start_sleepers(
    job: Job, tmp_path: Path, *, run: str | None = None
) -> tuple[subprocess.Popen[str], Path]:
    marks = tmp_path / "marks"
    marks.mkdir()
    job.env["MARK_DIR"] = str(marks)
    python, _ = job.install()
    hypotheses = [
        {"name": f"sleeper-{i}", "ref": "main", "command": ["python", "-c", SLEEPER]} for i in range(3)
    ]
    proc = job.start(
        _step("run"), {"hypotheses": yaml.safe_dump(hypotheses), "max-parallel": "3", "timeout": "300"},
        {"install": {"python": python}}, run=run,
    )  # fmt: skip
    _wait_for(
        lambda: len(list(marks.iterdir())) == 3 or proc.poll() is not None, 120, "three running hypotheses"
    )
    assert proc.poll() is None, proc.communicate()
    return proc, marks


def test_sigint_to_the_step_process_stops_hypotheses_and_removes_worktrees(job: Job, tmp_path: Path) -> None:
    before = worktree_list(job.workspace)
    proc, _ = _start_sleepers(job, tmp_path)
    mark = job.env["HOST_TEST_MARK"]
    assert len(_marked(mark)) >= 7  # the runner, 3 hypotheses, 3 sleeps
    # As the runner cancels a step: SIGINT to the step's own PID (not its group), 7.5 s, SIGTERM, 2.5 s.
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=7.5)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=2.5)
    assert proc.returncode == 130, out + err
    assert _marked(mark) == []
    assert worktree_list(job.workspace) == before
    assert sorted(p.name for p in job.runner_temp.iterdir()) == ["worktree-runner-host"]
    results = json.loads((job.workspace / ".worktree-runner" / "results.json").read_text())
    assert results["stopped"] == "cancelled by SIGINT"
    assert {r["status"] for r in results["results"]} == {"cancelled"}
    assert job.outputs_of("run")["conclusion"] == "failure"


def test_without_exec_the_signal_would_not_reach_the_runner(job: Job, tmp_path: Path) -> None:
    """Control for the test above: the same step without `exec` leaves everything running."""
    run = _step("run")["run"]
    proc, _ = _start_sleepers(job, tmp_path, run=run.removeprefix("exec "))
    mark = job.env["HOST_TEST_MARK"]
    try:
        proc.send_signal(signal.SIGINT)
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)  # not communicate(): the orphaned runner still holds the pipes open
        assert proc.returncode == -signal.SIGTERM  # bash died; its child never got a signal
        assert len(_marked(mark)) >= 7
    finally:
        # What the runner's job-end orphan cleanup would do, gently: SIGINT to the orphaned runner.
        for pid in _marked(mark):
            if "entrypoint.py" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                os.kill(pid, signal.SIGINT)
        _wait_for(lambda: not _marked(mark), 60, "the orphaned runner to stop")
        proc.communicate(timeout=30)


# --------------------------------------------------------------------------------------------------
# install.sh on its own


def _install(env: Mapping[str, str], timeout: float = INSTALL_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", str(INSTALL_SH)], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def bare_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    runner_temp = tmp_path / "runner_temp"
    runner_temp.mkdir()
    yield {"RUNNER_TEMP": str(runner_temp), "HOME": str(tmp_path)}
    assert list(runner_temp.iterdir()) == []


def _one_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    command = parse_command(lines[0])
    assert command is not None and command.command == "error", lines[0]
    return command.data


def test_a_job_python_older_than_3_11_alone_is_a_clear_error(
    tmp_path: Path, pythons: Pythons, bare_env: dict[str, str]
) -> None:
    bin_dir = job_bin(tmp_path / "bin", {"python3": pythons.old})
    message = _one_error(_install({**bare_env, "PATH": str(bin_dir)}))
    assert f"python3 on PATH ({bin_dir}/python3) is {pythons.old_version}" in message, message
    assert "WORKTREE_RUNNER_PYTHON" in message and "3.11" in message


def test_no_python_at_all_is_a_clear_error(tmp_path: Path, bare_env: dict[str, str]) -> None:
    message = _one_error(_install({**bare_env, "PATH": str(job_bin(tmp_path / "bin", {}))}))
    assert "no python3 on PATH" in message and "actions/setup-python" in message, message


def test_an_explicit_interpreter_must_be_new_enough(pythons: Pythons, bare_env: dict[str, str]) -> None:
    env = {**bare_env, "PATH": "/usr/bin:/bin", "WORKTREE_RUNNER_PYTHON": str(pythons.old)}
    message = _one_error(_install(env))
    assert f"WORKTREE_RUNNER_PYTHON={pythons.old}" in message and "3.11" in message, message


def test_sigint_during_the_install_stops_pip_and_removes_the_venv(
    pythons: Pythons, bare_env: dict[str, str]
) -> None:
    runner_temp = Path(bare_env["RUNNER_TEMP"])
    env = {**bare_env, "PATH": "/usr/bin:/bin", "WORKTREE_RUNNER_PYTHON": str(pythons.new),
           "PIP_NO_CACHE_DIR": "1"}  # fmt: skip
    proc = subprocess.Popen(
        ["/bin/bash", str(INSTALL_SH)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def ours(*words: bytes) -> list[int]:
        """Live processes with this test's RUNNER_TEMP and ``words`` on their command line."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != proc.pid:
                try:
                    cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                except OSError:
                    continue
                if all(w in cmdline for w in (str(runner_temp).encode(), *words)) and pid_alive(int(entry)):
                    found.append(int(entry))
        return found

    # The pip install itself (not the venv's ensurepip, which also runs pip).
    _wait_for(lambda: ours(b"--require-hashes") or proc.poll() is not None, 120, "pip install to start")
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)  # to the script's own PID only, as the runner does
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert "install cancelled by SIGINT" in err
    _wait_for(lambda: not ours(), 10, "pip (sent SIGTERM) to be gone")
    assert list((runner_temp / "worktree-runner-host").iterdir()) == []
    (runner_temp / "worktree-runner-host").rmdir()  # for bare_env's "nothing left" check
