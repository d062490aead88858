"""Never trust the agent: run the generated tests ourselves and measure coverage with coverage.py.

The tests run in a fresh worktree at the commit the agent started from (HEAD when that commit is not
in the local repository), so uncommitted files in the workspace cannot make them pass or fail, in a
process group with a deadline like every hypothesis (runner.engine.process).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from runner.config import Hypothesis
from runner.engine.environments import EnvironmentPool, EnvironmentSetupError, HypothesisEnvironment
from runner.engine.process import run_in_group, without_secrets
from runner.engine.worktrees import WorktreeError, WorktreeManager

__all__ = ["Verification", "coverage_include", "verify_generated_tests"]

TAIL_BYTES = 16 * 1024


@dataclass(frozen=True)
class Verification:
    tests_passed: bool
    coverage: float | None  # percent of the module's lines run by the tests
    exit_code: int | None
    output_tail: str
    reason: str | None  # why it does not count as a success; None when it does
    commit: str | None = None


def coverage_include(module_path: str, repo: Path) -> str:
    """The coverage.py option that measures ``module_path``: a file, or a whole package directory
    (``--source``, so that modules the tests never import count as uncovered, not as absent)."""
    if (repo / module_path).is_dir():
        return f"--source={module_path.rstrip('/')}"
    return f"--include={module_path}"


def _tail(path: Path) -> str:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - TAIL_BYTES))
        return f.read().decode("utf-8", "replace")


def _command_env() -> dict[str, str]:
    env = without_secrets(os.environ)  # agent-written code: no tokens, no keys
    env.pop("COVERAGE_PROCESS_START", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


async def _run(
    argv: list[str], *, cwd: Path, log: Path, deadline: float, environment: HypothesisEnvironment
) -> tuple[str, int | None]:
    env = environment.apply(_command_env())
    with log.open("ab") as out:
        outcome = await run_in_group(
            argv, cwd=cwd, env=env, log_fd=out.fileno(), deadline=deadline, grace=2.0,
            token=f"verify-{uuid.uuid4().hex}",
        )  # fmt: skip
    return outcome.kind, outcome.exit_code


async def verify_generated_tests(
    repo: Path,
    *,
    content: bytes,
    module_path: str,
    output_path: str,
    threshold: float,
    base_commit: str | None = None,
    python: str | None = None,
    timeout: float = 600.0,
    setup_command: list[str] | None = None,
) -> Verification:
    """Write ``content`` at ``output_path`` in a fresh worktree of ``repo``, run it under coverage.

    Setup and tests run in an environment of their own, like a hypothesis' (a virtualenv layered over
    the job's ``python3``, runner.engine.environments): the setup's installs never reach the runner's
    interpreter. ``python`` runs coverage instead of the layer's python when given.
    """
    manager = WorktreeManager(repo)
    environments = EnvironmentPool("venv")
    try:
        await manager.open()
        ref = "HEAD"
        if base_commit:
            try:
                await manager.resolve(base_commit)
                ref = base_commit
            except WorktreeError:
                pass  # the agent's commit is not here (e.g. a shallow checkout): verify on HEAD
        hyp = Hypothesis(name="generated-tests", ref=ref)
        async with manager.worktree(hyp, 0) as worktree:
            try:
                async with environments.environment(0, _command_env()) as environment:
                    return await _verify_in(
                        worktree.path, content=content, module_path=module_path, output_path=output_path,
                        threshold=threshold, python=python or environment.python or sys.executable,
                        timeout=timeout, setup_command=setup_command, commit=worktree.commit,
                        environment=environment,
                    )  # fmt: skip
            except EnvironmentSetupError as exc:
                return Verification(False, None, None, "", f"cannot run the tests: {exc}", worktree.commit)
    finally:
        await asyncio.shield(environments.close())
        await asyncio.shield(manager.close())


async def _verify_in(
    tree: Path, *, content: bytes, module_path: str, output_path: str, threshold: float, python: str,
    timeout: float, setup_command: list[str] | None, commit: str | None, environment: HypothesisEnvironment,
) -> Verification:  # fmt: skip
    target = (tree / output_path).resolve()
    if tree.resolve() not in target.parents:
        return Verification(
            False, None, None, "", f"output path {output_path!r} leaves the repository", commit
        )
    if not (tree / module_path).exists():
        return Verification(
            False, None, None, "", f"module {module_path!r} does not exist at the tested commit", commit
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    with tempfile.TemporaryDirectory(prefix="worktree-runner-verify-") as scratch:
        log, data, report = Path(scratch, "log"), Path(scratch, "coverage"), Path(scratch, "coverage.json")
        include = coverage_include(module_path, tree)
        if setup_command:
            kind, code = await _run(
                setup_command, cwd=tree, log=log, deadline=deadline, environment=environment
            )
            if kind != "exited" or code != 0:
                why = "timed out" if kind == "timeout" else f"exit code {code}"
                return Verification(
                    False, None, code, _tail(log), f"the setup command failed ({why})", commit
                )
        started = time.monotonic()
        kind, code = await _run(
            [python, "-m", "coverage", "run", f"--data-file={data}", include,
             "-m", "pytest", "-q", "-p", "no:cacheprovider", output_path],
            cwd=tree, log=log, deadline=deadline, environment=environment,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        if kind == "timeout":
            return Verification(
                False, None, None, _tail(log), f"the generated tests timed out after {elapsed:.0f}s", commit
            )
        if kind != "exited":
            return Verification(False, None, None, _tail(log), f"could not run the tests ({kind})", commit)
        coverage = None
        if data.exists():
            await _run(
                # The data file already holds only the module's files (and, for a package, the
                # files the tests never imported, as unexecuted): report all of it.
                [python, "-m", "coverage", "json", f"--data-file={data}", "-o", str(report)],
                cwd=tree, log=Path(scratch, "coverage-json.log"), deadline=loop.time() + 120,
                environment=environment,
            )  # fmt: skip
            coverage = _percent(report)
        tail = _tail(log)
    passed = code == 0
    if code == 5:
        reason: str | None = "the generated file contains no tests (pytest collected nothing)"
    elif not passed:
        reason = f"the generated tests fail (pytest exit code {code})"
    elif coverage is None:
        reason = f"the tests never imported {module_path}: no coverage was measured"
        coverage = 0.0
    elif coverage < threshold:
        reason = f"coverage {coverage:.1f}% < {threshold:g}% of {module_path}"
    else:
        reason = None
    return Verification(passed, coverage, code, tail, reason, commit)


def _percent(report: Path) -> float | None:
    try:
        totals = json.loads(report.read_text(encoding="utf-8"))["totals"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not totals.get("num_statements"):
        return None
    # Line coverage even if the project's own coverage config turns on branch coverage.
    percent = totals.get("percent_statements_covered", totals["percent_covered"])
    return round(float(percent), 2)
