"""The action's entrypoint as a real process with the runner's environment (no Docker needed).

What it writes is read back with re-implementations of the runner's own parsers
(tests/github_parsers.py): the file-command parser for GITHUB_OUTPUT and the workflow-command
processor (with stop-commands) for stdout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from .conftest import PY, REPO_ROOT, git, pid_alive, worktree_list
from .github_parsers import ActionCommand, CommandProcessor, parse_env_file

ENTRYPOINT = REPO_ROOT / "entrypoint.py"


@dataclass
class StepResult:
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    commands: list[ActionCommand]


def _env(workspace: Path, files: Path, inputs: dict[str, str], runner_temp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_"))}
    env.update(
        GITHUB_ACTIONS="true",
        GITHUB_WORKSPACE=str(workspace),
        GITHUB_OUTPUT=str(files / "set_output"),
        GITHUB_STEP_SUMMARY=str(files / "step_summary"),
        RUNNER_TEMP=str(runner_temp),
    )
    # Every declared input arrives, with its default when the workflow does not set it.
    action = yaml.safe_load((REPO_ROOT / "action.yml").read_text())
    for name, spec in action["inputs"].items():
        default = str(spec.get("default", ""))
        env["INPUT_" + name.upper()] = "" if "${{" in default else default
    for name, value in inputs.items():
        env["INPUT_" + name.upper()] = value
    return env


def start_step(
    workspace: Path, tmp_path: Path, inputs: dict[str, str], runner_temp: Path
) -> subprocess.Popen[str]:
    files = tmp_path / "file_commands"
    files.mkdir(exist_ok=True)
    for name in ("set_output", "step_summary"):
        (files / name).write_text("")
    return subprocess.Popen(
        [PY, str(ENTRYPOINT)], cwd=workspace, env=_env(workspace, files, inputs, runner_temp),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish_step(proc: subprocess.Popen[str], tmp_path: Path, timeout: float = 120) -> StepResult:
    out, err = proc.communicate(timeout=timeout)
    files = tmp_path / "file_commands"
    outputs = dict(parse_env_file((files / "set_output").read_bytes()))
    processor = CommandProcessor()
    processor.feed(out)
    return StepResult(
        proc.returncode,
        out,
        err,
        outputs,
        (files / "step_summary").read_text(encoding="utf-8"),
        processor.executed,
    )


def run_step(workspace: Path, tmp_path: Path, inputs: dict[str, str], runner_temp: Path) -> StepResult:
    return finish_step(start_step(workspace, tmp_path, inputs, runner_temp), tmp_path)


def errors(result: StepResult) -> list[ActionCommand]:
    return [c for c in result.commands if c.command == "error"]


INJECTING = (
    "print('::error::pwned'); print('::add-mask::secret'); print('##[error]legacy pwned'); "
    "print('::stop-commands::abc'); print('::warning::still pwned'); print('::abc::'); "
    "print('::set-output name=conclusion::success'); raise SystemExit(1)"
)


def test_outputs_summary_annotations_and_no_injection(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    hypotheses = [
        {"name": "main", "ref": "main"},
        {"name": "broken", "ref": "broken"},
        {"name": "injector", "ref": "main", "command": [PY, "-c", INJECTING]},
        {"name": "pytest-like", "ref": "main",
         "command": [PY, "-c", "print('tests/test_x.py:12: AssertionError'); raise SystemExit(1)"]},
    ]  # fmt: skip
    result = run_step(
        repo, tmp_path,
        {"hypotheses": yaml.safe_dump(hypotheses), "test-command": f"{PY} check.py", "max-parallel": "2",
         "succeed-if": "any"},
        runner_temp,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.outputs
    assert out["conclusion"] == "success" and out["passed"] == "1" and out["failed"] == "3"
    assert out["best"] == "main"
    compact = json.loads(out["results"])
    assert [r["status"] for r in compact["results"]] == ["passed", "failed", "failed", "failed"]
    assert "output_tail" not in compact["results"][0]
    assert out["results-file"] == ".worktree-runner/results.json"
    full = json.loads((repo / out["results-file"]).read_text())
    assert full["results"][0]["log_path"].startswith(".worktree-runner/logs/")
    assert (repo / full["results"][0]["log_path"]).is_file()
    assert (repo / out["junit-file"]).is_file()
    assert git(repo, "status", "--porcelain") == ""  # results dir ignores itself

    # Only our own annotations were executed: none of the injected commands.
    executed = {(c.command, c.data) for c in result.commands}
    assert ("error", "pwned") not in executed and ("add-mask", "secret") not in executed
    assert not [c for c in result.commands if c.command in ("warning", "add-mask", "set-output")]
    titles = sorted(c.prop("title") or "" for c in errors(result))
    assert titles == [
        "hypothesis broken: failed",
        "hypothesis injector: failed",
        "hypothesis pytest-like: failed",
    ]
    pytest_like = next(c for c in errors(result) if "pytest-like" in (c.prop("title") or ""))
    assert pytest_like.prop("file") == "tests/test_x.py" and pytest_like.prop("line") == "12"
    assert "pwned" in result.stdout  # the output is shown, just not obeyed

    summary = result.summary
    assert summary.index("success") < summary.index("| main")  # conclusion first
    assert "<details>" in summary and "broken!" in summary


def test_annotation_budget_overflow_is_counted_in_summary(
    repo: Path, tmp_path: Path, runner_temp: Path
) -> None:
    hypotheses = [{"name": f"fail-{i:02d}", "ref": "broken"} for i in range(13)]
    result = run_step(
        repo,
        tmp_path,
        {"hypotheses": yaml.safe_dump(hypotheses), "test-command": f"{PY} check.py"},
        runner_temp,
    )
    assert result.returncode == 1
    assert len(errors(result)) == 10
    assert "3 more errors were not annotated" in result.summary


@pytest.mark.parametrize(
    ("inputs", "needle"),
    [
        ({"max-parallel": "lots"}, "input 'max-parallel'"),
        ({"fail-fast": "yes"}, "input 'fail-fast'"),
        ({"succeed-if": "most"}, "input 'succeed-if'"),
        ({"isolation": "sandbox"}, "input 'isolation'"),
        ({"mode": "explode"}, "input 'mode'"),
        ({"hypotheses": "- {name: a}"}, "input 'hypotheses': hypotheses[0]"),
        ({"hypotheses": "{not: a list}"}, "input 'hypotheses'"),
        ({"hypotheses": "- {name: a, ref: --orphan}"}, "hypotheses[0].ref"),
        ({"working-directory": "../.."}, "input 'working-directory'"),
        ({"hypotheses": "- {name: p, patch: missing.diff}"}, "hypotheses[0].patch"),
        ({"hypotheses": ""}, "input 'config'"),
    ],
)
def test_bad_input_is_one_error_annotation_exit_2_and_nothing_left(
    repo: Path, tmp_path: Path, runner_temp: Path, inputs: dict[str, str], needle: str
) -> None:
    before = worktree_list(repo)
    base = {"test-command": "true", "hypotheses": "- {name: a, ref: main}"}
    result = run_step(repo, tmp_path, {**base, **inputs}, runner_temp)
    assert result.returncode == 2, result.stdout + result.stderr
    errs = errors(result)
    assert len(errs) == 1 and needle in errs[0].data, errs
    assert result.outputs == {}
    assert not (repo / ".worktree-runner").exists()
    assert list(runner_temp.iterdir()) == []
    assert worktree_list(repo) == before


def test_config_file_error_annotates_the_file(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    (repo / ".github").mkdir()
    (repo / ".github" / "worktree-runner.yml").write_text(
        "command: 'true'\nhypotheses:\n  - {name: a, ref: HEAD, x: 1}\n"
    )
    result = run_step(repo, tmp_path, {}, runner_temp)
    assert result.returncode == 2
    (err,) = errors(result)
    assert err.prop("file") == ".github/worktree-runner.yml"
    assert "hypotheses[0].x: unknown key" in err.data


def test_config_file_with_input_overrides(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    (repo / "ci").mkdir()
    (repo / "ci" / "wr.yml").write_text(
        yaml.safe_dump({"command": "false", "timeout": 1, "hypotheses": [{"name": "a", "ref": "main"}]})
    )
    result = run_step(
        repo, tmp_path, {"config": "ci/wr.yml", "test-command": "true", "timeout": "30"}, runner_temp
    )
    assert result.returncode == 0 and result.outputs["conclusion"] == "success"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files as another uid")
def test_workspace_owned_by_another_uid_is_left_clean(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    subprocess.run(["chown", "-R", "1001:1001", str(repo)], check=True)
    inputs = {"hypotheses": "- {name: a, ref: main}", "test-command": f"{PY} check.py"}
    result = run_step(repo, tmp_path, inputs, runner_temp)
    assert result.returncode == 0, result.stdout + result.stderr
    not_owned = [p for p in repo.rglob("*") if p.lstat().st_uid != 1001]
    assert not_owned == []
    assert (repo / ".worktree-runner" / "results.json").stat().st_uid == 1001


def test_sigint_writes_partial_outputs_and_summary(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    sleeper = (
        f"{PY} -c \"import os, time; open(os.path.join('{pids}', str(os.getpid())), 'w'); time.sleep(60)\""
    )
    hypotheses = "- {name: quick, ref: main, command: 'true'}\n" + "".join(
        f"- {{name: slow-{i}, ref: main}}\n" for i in range(3)
    )
    before = worktree_list(repo)
    inputs = {"hypotheses": hypotheses, "test-command": sleeper, "max-parallel": "3"}
    proc = start_step(repo, tmp_path, inputs, runner_temp)
    deadline = time.monotonic() + 30
    while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(list(pids.iterdir())) >= 2
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    result = finish_step(proc, tmp_path, timeout=30)
    assert time.monotonic() - sent < 5
    assert result.returncode == 130
    assert result.outputs["conclusion"] == "failure"
    statuses = {r["name"]: r["status"] for r in json.loads(result.outputs["results"])["results"]}
    assert statuses["quick"] == "passed" and {statuses[f"slow-{i}"] for i in range(3)} == {"cancelled"}
    assert "cancel" in result.summary.lower()
    assert worktree_list(repo) == before
    assert all(not pid_alive(int(p.name)) for p in pids.iterdir())


def test_entrypoint_is_thin() -> None:
    # One code path, two faces: the entrypoint only hands over to runner.action.
    code = [
        line
        for line in ENTRYPOINT.read_text().splitlines()
        if line.strip() and not line.startswith(('"""', "#"))
    ]
    assert code == ["from runner.action import main", "raise SystemExit(main())"] or len(code) <= 3
    assert sys.executable


def _catches(pid: int, sig: signal.Signals) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught & (1 << (sig - 1)))


def test_sigterm_right_after_start_is_handled(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    """A signal during start-up (before the run) still ends in partial outputs, not a silent drop."""
    before = worktree_list(repo)
    hypotheses = "".join(f"- {{name: slow-{i}, ref: main}}\n" for i in range(4))
    proc = start_step(repo, tmp_path, {"hypotheses": hypotheses, "test-command": "sleep 60"}, runner_temp)
    deadline = time.monotonic() + 20
    while not _catches(proc.pid, signal.SIGTERM) and time.monotonic() < deadline:
        time.sleep(0.001)
    proc.send_signal(signal.SIGTERM)  # as early as the handler exists: typically before any worktree
    result = finish_step(proc, tmp_path, timeout=30)
    assert result.returncode == 143, result.stderr
    statuses = [r["status"] for r in json.loads(result.outputs["results"])["results"]]
    assert statuses == ["cancelled"] * 4
    assert "cancel" in result.summary.lower()
    assert worktree_list(repo) == before
    assert [p.name for p in runner_temp.iterdir() if not p.name.startswith("worktree-runner-logs")] == []


def test_commands_do_not_inherit_tokens_or_inputs(
    repo: Path, tmp_path: Path, runner_temp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENHANDS_API_KEY", "oh-key-value")
    monkeypatch.setenv("ACTIONS_RUNTIME_TOKEN", "runtime-token-value")
    monkeypatch.setenv("VISIBLE_SETTING", "kept")
    probe = (
        "import os, sys; leaked = sorted(k for k in os.environ if k.startswith('INPUT_') or k in "
        "('OPENHANDS_API_KEY', 'ACTIONS_RUNTIME_TOKEN')); print('leaked:', leaked); "
        "sys.exit(1 if leaked or os.environ.get('VISIBLE_SETTING') != 'kept' else 0)"
    )
    hypotheses = [{"name": "probe", "ref": "main", "command": [PY, "-c", probe]}]
    inputs = {"hypotheses": yaml.safe_dump(hypotheses), "github-token": "ghs_token_value"}
    result = run_step(repo, tmp_path, inputs, runner_temp)
    assert result.returncode == 0, result.stdout
    assert result.outputs["passed"] == "1"
    assert "ghs_token_value" not in result.stdout.replace("::add-mask::ghs_token_value", "")
