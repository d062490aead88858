"""The action's OpenHands modes: ``submit``, ``status``, ``collect`` and ``generate``.

Inputs -> ``runner.openhands.generation`` (the CLI's code path) -> step outputs, one annotation on failure
and a job summary. The API keys are masked before anything can print them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from runner.action.ownership import restore_ownership
from runner.action.workspace import workspace_dir
from runner.config import split_command
from runner.github import (
    MAX_OUTPUT_BYTES,
    ActionsLog,
    FileCommandWriter,
    InputError,
    get_float_input,
    get_input,
    write_summary,
)
from runner.github.summary import escape_inline, fenced_block
from runner.openhands import OpenHandsError
from runner.openhands.generation import (
    GenerationInputError,
    GenerationOptions,
    collect,
    make_generator,
    status,
    submit,
)
from runner.report.results import write_atomic

__all__ = ["run_openhands_mode"]

def _outputs(log: ActionsLog) -> FileCommandWriter | None:
    if not os.environ.get("GITHUB_OUTPUT"):
        log.warning("GITHUB_OUTPUT is not set: step outputs are not written")
        return None
    return FileCommandWriter.from_env("GITHUB_OUTPUT", max_value_bytes=MAX_OUTPUT_BYTES)


def _summary(lines: list[str]) -> None:
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        write_summary("\n".join(lines) + "\n")


def _options(workspace: Path) -> GenerationOptions:
    directory = get_input("working-directory") or "."
    repo = (workspace / directory).resolve()
    if repo != workspace and workspace not in repo.parents:
        raise InputError("working-directory", f"{directory!r} points outside the workspace {workspace}")
    if not repo.is_dir():
        raise InputError("working-directory", f"{directory!r} is not a directory")
    return GenerationOptions(
        workspace=repo,
        url=get_input("openhands-url") or None,
        api_key=get_input("openhands-api-key") or None,
        backend=get_input("openhands-backend") or None,
        test_timeout=get_float_input("timeout", 600.0, minimum=1),
        setup_command=_setup_command(),
    )


def _setup_command() -> list[str] | None:
    text = get_input("setup-command")
    if not text:
        return None
    try:
        return split_command(text, what="setup-command")
    except ValueError as exc:
        raise InputError("setup-command", str(exc)) from None


def _cell(value: object) -> str:
    return escape_inline("" if value is None else str(value), 300)


def _result_summary(result: dict[str, Any]) -> list[str]:
    ok = result["status"] == "COMPLETED"
    coverage = result.get("coverage")
    lines = [
        f"## OpenHands test generation: {'✅ COMPLETED' if ok else '❌ FAILED'}",
        "",
        "| | |",
        "|---|---|",
        f"| module | {_cell(result['module_path'])} |",
        f"| test file | {_cell(result.get('generated_file') or '(none)')} |",
        f"| tests passed (run here) | {'yes' if result.get('tests_passed') else 'no'} |",
        f"| line coverage (measured here) | {'n/a' if coverage is None else f'{coverage:.1f}%'} "
        f"(threshold {result['threshold']:g}%) |",
        f"| agent status | {_cell(result.get('agent_status'))} |",
        f"| duration since submit | {result['duration_s']:.0f}s |",
    ]
    if result.get("conversation_url"):
        lines.append(f"| conversation | {_cell(result['conversation_url'])} |")
    if result.get("reason"):
        lines += ["", f"**Why it failed:** {_cell(result['reason'])}"]
    if result.get("agent_message"):
        lines += ["", "<details><summary>What the agent said (not trusted)</summary>", "",
                  fenced_block(str(result["agent_message"])[-4000:]), "", "</details>"]  # fmt: skip
    if result.get("test_output"):
        lines += ["", "<details><summary>Output of the generated tests</summary>", "",
                  fenced_block(str(result["test_output"])[-8000:]), "", "</details>"]  # fmt: skip
    return lines


def _write_result(workspace: Path, result: dict[str, Any], outputs: FileCommandWriter | None) -> None:
    results_dir = (workspace / (get_input("results-dir") or ".worktree-runner")).resolve()
    if results_dir != workspace and workspace not in results_dir.parents:
        raise InputError("results-dir", "points outside the workspace")
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / ".gitignore").write_text("*\n", encoding="utf-8")
    path = write_atomic(results_dir / "openhands-result.json", json.dumps(result, indent=2).encode() + b"\n")
    if outputs is not None:
        outputs.write("results-file", str(path.relative_to(workspace)))


def run_openhands_mode(mode: str, log: ActionsLog) -> int:
    for name in ("openhands-api-key",):
        if get_input(name):
            log.add_mask(get_input(name))
    for name in ("OPENHANDS_API_KEY", "OPENHANDS_LLM_API_KEY"):
        if os.environ.get(name):
            log.add_mask(os.environ[name])
    workspace = workspace_dir()
    options = _options(workspace)
    try:
        generator = make_generator(options)
        return _run(mode, log, workspace, options, generator)
    except GenerationInputError as exc:
        name = exc.field if exc.field in ("task-id",) else _input_for(exc)
        raise InputError(name, exc.problem) from None
    finally:
        restore_ownership(workspace, [options.workspace])


def _input_for(exc: GenerationInputError) -> str:
    text = exc.problem
    for needle, name in (("module path", "module-path"), ("output path", "output-path"),
                         ("threshold", "coverage-threshold"), ("URL", "openhands-url"),
                         ("API key", "openhands-api-key"), ("backend", "openhands-backend")):  # fmt: skip
        if needle in text:
            return name
    return exc.field


def _run(mode: str, log: ActionsLog, workspace: Path, options: GenerationOptions, generator: Any) -> int:
    if mode in ("submit", "generate"):
        module, output = get_input("module-path"), get_input("output-path")
        if not module:
            raise InputError("module-path", f"is required in mode {mode}")
        if not output:
            raise InputError("output-path", f"is required in mode {mode}")
        threshold = get_float_input("coverage-threshold", 80.0, minimum=0, maximum=100)
        try:
            task_id = submit(generator, module, output, threshold)
        except OpenHandsError as exc:
            log.error(f"submit failed: {generator.redact(str(exc))}", title="OpenHands")
            return 1
        outputs = _outputs(log)
        if outputs is not None:  # right away: a later failure must not lose the task ID
            outputs.write("task-id", task_id)
            outputs.write("task-status", "QUEUED")
        log.write(f"submitted OpenHands task {task_id}")
        if mode == "submit":
            _summary([
                "## OpenHands test generation submitted",
                "",
                f"Tests for {_cell(module)} into {_cell(output)} (line coverage ≥ {threshold:g}%), "
                f"backend {_cell(generator.settings.backend)}. Collect them in a later step with "
                "`mode: collect` and this step's `task-id` output.",
            ])  # fmt: skip
            return 0
    else:
        task_id = get_input("task-id")
        if not task_id:
            raise InputError("task-id", f"is required in mode {mode} (the task-id output of a submit step)")
        if mode == "status":
            try:
                state = status(generator, task_id)
            except OpenHandsError as exc:
                log.error(f"status failed: {generator.redact(str(exc))}", title="OpenHands")
                return 1
            outputs = _outputs(log)
            if outputs is not None:
                outputs.write("task-status", state["status"])
            reason = f" ({state['reason']})" if state.get("reason") else ""
            # The agent status and reason come from the server: printed with commands stopped.
            log.write_untrusted(
                f"task status: {state['status']}, agent status: {state.get('agent_status')}{reason}"
            )
            return 0
        outputs = _outputs(log)
    wait = get_float_input("wait-timeout", 600.0, minimum=0)
    poll = get_float_input("poll-interval", 5.0, minimum=0.1)
    result = collect(generator, task_id, timeout=wait, poll_interval=poll)
    if outputs is not None:
        outputs.write("task-status", result["status"])
        outputs.write("generated-file", result.get("generated_file") or "")
        coverage = result.get("coverage")
        outputs.write("coverage", "" if coverage is None else f"{coverage:.2f}")
        outputs.write("tests-passed", "true" if result.get("tests_passed") else "false")
    _write_result(workspace, result, outputs)
    _summary(_result_summary(result))
    if result["status"] != "COMPLETED":
        log.error(str(result.get("reason") or "test generation failed"), title="OpenHands test generation")
        return 1
    return 0
