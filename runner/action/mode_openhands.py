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
    get_int_input,
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
        test_reruns=get_int_input("test-reruns", 3, minimum=0, maximum=20),
        existing_tests=_lines(get_input("existing-tests")),
    )


def _lines(text: str) -> list[str]:
    """A multi-line input: one entry per line, blank lines ignored."""
    return [line.strip() for line in text.splitlines() if line.strip()]


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
    if result.get("funnel"):
        before = _coverage_cell(result.get("coverage_before"))
        lines += ["", f"Coverage before (the repository's named tests alone): {before}", "",
                  _funnel_line(result["funnel"]), "", *_verdict_rows(result)]  # fmt: skip
    if result.get("reason"):
        lines += ["", f"**Why it failed:** {_cell(result['reason'])}"]
    if result.get("agent_message"):
        lines += ["", "<details><summary>What the agent said (not trusted)</summary>", "",
                  fenced_block(str(result["agent_message"])[-4000:]), "", "</details>"]  # fmt: skip
    if result.get("test_output"):
        lines += ["", "<details><summary>Output of the generated tests</summary>", "",
                  fenced_block(str(result["test_output"])[-8000:]), "", "</details>"]  # fmt: skip
    return lines


def _coverage_cell(value: object) -> str:
    return "n/a" if value is None else f"{float(value):.1f}%"  # type: ignore[arg-type]


def _funnel_line(funnel: dict[str, int]) -> str:
    if not funnel:
        return ""
    return (
        f"Generated tests: {funnel.get('generated', 0)} → passing {funnel.get('passing', 0)} → stable "
        f"{funnel.get('stable', 0)} → asserting {funnel.get('asserting', 0)} → adding coverage "
        f"{funnel.get('adding_coverage', 0)} → **kept {funnel.get('kept', 0)}**"
    )


def _verdict_rows(result: dict[str, Any]) -> list[str]:
    tests = result.get("tests") or []
    if not tests:
        return []
    rows = ["| test | verdict | reason |", "|---|---|---|"]
    for t in tests:
        rows.append(f"| {_cell(t.get('name'))} | {_cell(t.get('verdict'))} | {_cell(t.get('reason'))} |")
    return rows


def _batch_summary(result: dict[str, Any]) -> list[str]:
    """One row per module (status, kept/generated tests, coverage, reason), then each module's verdicts."""
    ok = result["status"] == "COMPLETED"
    modules = result.get("modules") or []
    lines = [
        f"## OpenHands test generation: {'✅ COMPLETED' if ok else '❌ FAILED'} ({len(modules)} modules)",
        "",
        "| module | status | kept / generated tests | coverage (before) | test file | reason |",
        "|---|---|---|---|---|---|",
    ]
    for m in modules:
        funnel = m.get("funnel") or {}
        lines.append(
            f"| {_cell(m.get('module_path'))} | {'✅' if m.get('status') == 'COMPLETED' else '❌'} "
            f"{_cell(m.get('status'))} | {funnel.get('kept', 0)} / {funnel.get('generated', 0)} | "
            f"{_coverage_cell(m.get('coverage'))} ({_coverage_cell(m.get('coverage_before'))}) | "
            f"{_cell(m.get('generated_file') or '(none)')} | {_cell(m.get('reason') or '')} |"
        )
    if result.get("funnel"):
        lines += ["", _funnel_line(result["funnel"])]
    for m in modules:
        rows = _verdict_rows(m)
        if rows:
            lines += ["", f"<details><summary>Tests of {_cell(m.get('module_path'))}</summary>", "", *rows,
                      "", "</details>"]  # fmt: skip
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
        modules, output = _lines(get_input("module-path")), get_input("output-path")
        if not modules:
            raise InputError("module-path", f"is required in mode {mode}")
        module: str | list[str] = modules[0] if len(modules) == 1 else modules
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
                f"Tests for {_cell(', '.join(modules))} into {_cell(output)} "
                f"(line coverage ≥ {threshold:g}%), "
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
            for module_state in state.get("modules", []):
                log.write_untrusted(
                    f"{module_state['module_path']}: {module_state['status']}, "
                    f"agent status: {module_state.get('agent_status')}"
                )
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
        files = result.get("generated_files") if result.get("batch") else [result.get("generated_file")]
        outputs.write("generated-file", "\n".join(f for f in files or [] if f))
        coverage = result.get("coverage")
        outputs.write("coverage", "" if coverage is None else f"{coverage:.2f}")
        outputs.write("tests-passed", "true" if result.get("tests_passed") else "false")
    _write_result(workspace, result, outputs)
    _summary(_batch_summary(result) if result.get("batch") else _result_summary(result))
    if result["status"] != "COMPLETED":
        log.error(str(result.get("reason") or "test generation failed"), title="OpenHands test generation")
        return 1
    return 0
