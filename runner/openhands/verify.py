"""Never trust the agent: run the generated tests ourselves and measure coverage with coverage.py.

The tests run in a fresh worktree at the commit the agent started from (HEAD when that commit is not
in the local repository), so uncommitted files in the workspace cannot make them pass or fail, in a
process group with a deadline like every hypothesis (runner.engine.process).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.config import Hypothesis
from runner.engine.environments import EnvironmentPool, EnvironmentSetupError, HypothesisEnvironment
from runner.engine.process import run_in_group, without_secrets
from runner.engine.worktrees import WorktreeError, WorktreeManager
from runner.openhands.judge import (
    PLUGIN_MODULE,
    PLUGIN_SOURCE,
    REPORT_ENV,
    CoverageData,
    JudgeReport,
    find_candidates,
    judge_tests,
    outcomes_by_key,
    percent,
    prune,
    read_coverage_data,
    read_coverage_json,
    read_items,
)

__all__ = ["Verification", "Verifier", "coverage_include", "verify_generated_tests"]

TAIL_BYTES = 16 * 1024
DEFAULT_RERUNS = 3


@dataclass(frozen=True)
class Verification:
    tests_passed: bool
    coverage: float | None  # percent of the module's lines run by the existing tests + the kept ones
    exit_code: int | None
    output_tail: str
    reason: str | None  # why it does not count as a success; None when it does
    commit: str | None = None
    coverage_before: float = 0.0  # the existing tests alone (0 when none are named)
    tests: list[dict[str, Any]] = field(default_factory=list)  # every test: name, verdict, reason
    funnel: dict[str, int] = field(default_factory=dict)
    content: bytes | None = None  # what to write: the pruned file, or the agent's when nothing was kept

    @property
    def kept_tests(self) -> int:
        return sum(1 for t in self.tests if t.get("verdict") == "kept")


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


class _Clock:
    """One verification's deadline (loop time); the time it waits for a process slot moves it on, so a
    module's timeout counts its own processes, not the other modules' ahead of it."""

    def __init__(self, timeout: float, slots: asyncio.Semaphore | None) -> None:
        self.deadline = asyncio.get_running_loop().time() + timeout
        self.slots = slots
        self.waited = 0.0  # seconds spent waiting for slots

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.slots is None:
            yield
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with self.slots:
            waited = loop.time() - start
            self.deadline += waited
            self.waited += waited
            yield


async def _run(
    argv: list[str], *, cwd: Path, log: Path, clock: _Clock, environment: HypothesisEnvironment,
    extra_env: Mapping[str, str] | None = None, deadline: float | None = None,
) -> tuple[str, int | None]:  # fmt: skip
    """Run ``argv`` in a slot of ``clock``, until ``clock``'s deadline (or ``deadline`` seconds)."""
    env = environment.apply(_command_env())
    for name, value in (extra_env or {}).items():
        if name == "PYTHONPATH":  # ours first, the user's still there
            value = os.pathsep.join(p for p in (value, env.get("PYTHONPATH", "")) if p)
        env[name] = value
    async with clock.slot():
        at = clock.deadline if deadline is None else asyncio.get_running_loop().time() + deadline
        with log.open("ab") as out:
            outcome = await run_in_group(
                argv, cwd=cwd, env=env, log_fd=out.fileno(), deadline=at, grace=2.0,
                token=f"verify-{uuid.uuid4().hex}",
            )  # fmt: skip
    return outcome.kind, outcome.exit_code


class Verifier:
    """What the verifications of one collect share: one private repository (``WorktreeManager``) and one
    ``EnvironmentPool`` (its template layer is built once), each module in a worktree and a layer of its
    own (``index``: a new one per verification, so their directories never clash).

    Use as ``async with Verifier(repo) as verifier: await verifier.verify(...)``; verifications may run
    concurrently. Nothing is made before the first ``verify``. ``processes``: how many test processes
    (setup, coverage and pytest runs) of all its verifications run at once; None: no limit. Each
    verification still runs its own processes one after another; a verification's timeout does not
    count the time it waits for a slot.
    """

    def __init__(self, repo: Path, *, processes: int | None = None) -> None:
        if processes is not None and processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self.repo = Path(repo)
        self._slots = asyncio.Semaphore(processes) if processes is not None else None
        self._manager = WorktreeManager(self.repo)
        self._environments = EnvironmentPool("venv")
        self._open_lock = asyncio.Lock()
        self._next_index = 0

    async def __aenter__(self) -> Verifier:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Remove the environments' scratch directory and the private repository. Safe to call twice."""
        try:
            await asyncio.shield(self._environments.close())
        finally:
            await asyncio.shield(self._manager.close())

    async def verify(
        self,
        *,
        content: bytes,
        module_path: str,
        output_path: str,
        threshold: float,
        base_commit: str | None = None,
        python: str | None = None,
        timeout: float = 600.0,
        setup_command: list[str] | None = None,
        existing_tests: Sequence[str] = (),
        reruns: int = DEFAULT_RERUNS,
    ) -> Verification:
        """See ``verify_generated_tests``."""
        index, self._next_index = self._next_index, self._next_index + 1
        async with self._open_lock:  # open() is idempotent, but not safe to run twice at once
            await self._manager.open()
        ref = "HEAD"
        if base_commit:
            try:
                await self._manager.resolve(base_commit)
                ref = base_commit
            except WorktreeError:
                pass  # the agent's commit is not here (e.g. a shallow checkout): verify on HEAD
        hyp = Hypothesis(name="generated-tests", ref=ref)
        async with self._manager.worktree(hyp, index) as worktree:
            try:
                async with self._environments.environment(index, _command_env()) as environment:
                    return await _verify_in(
                        worktree.path, content=content, module_path=module_path, output_path=output_path,
                        threshold=threshold, python=python or environment.python or sys.executable,
                        timeout=timeout, setup_command=setup_command, commit=worktree.commit,
                        environment=environment, existing_tests=existing_tests, reruns=reruns,
                        slots=self._slots,
                    )  # fmt: skip
            except EnvironmentSetupError as exc:
                return Verification(False, None, None, "", f"cannot run the tests: {exc}", worktree.commit)


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
    existing_tests: Sequence[str] = (),
    reruns: int = DEFAULT_RERUNS,
) -> Verification:
    """Write ``content`` at ``output_path`` in a fresh worktree of ``repo`` and judge each test in it
    (runner.openhands.judge): kept tests pass, pass again in ``reruns`` fresh processes, assert, and add
    coverage beyond ``existing_tests`` and the tests kept before them.

    Setup and tests run in an environment of their own, like a hypothesis' (a virtualenv layered over
    the job's ``python3``, runner.engine.environments): the setup's installs never reach the runner's
    interpreter. ``python`` runs coverage instead of the layer's python when given. Several modules at
    once: one ``Verifier`` for all of them.
    """
    async with Verifier(repo) as verifier:
        return await verifier.verify(
            content=content, module_path=module_path, output_path=output_path, threshold=threshold,
            base_commit=base_commit, python=python, timeout=timeout, setup_command=setup_command,
            existing_tests=existing_tests, reruns=reruns,
        )  # fmt: skip


async def _verify_in(
    tree: Path, *, content: bytes, module_path: str, output_path: str, threshold: float, python: str,
    timeout: float, setup_command: list[str] | None, commit: str | None, environment: HypothesisEnvironment,
    existing_tests: Sequence[str] = (), reruns: int = DEFAULT_RERUNS, slots: asyncio.Semaphore | None = None,
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
    for existing in existing_tests:
        if not (tree / existing).exists() or tree.resolve() not in (tree / existing).resolve().parents:
            missing = f"existing test {existing!r} does not exist at the tested commit"
            return Verification(False, None, None, "", missing, commit)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    clock = _Clock(timeout, slots)
    with tempfile.TemporaryDirectory(prefix="worktree-runner-verify-") as scratch_dir:
        scratch = Path(scratch_dir)
        plugin_dir = scratch / "plugin"
        plugin_dir.mkdir()
        (plugin_dir / f"{PLUGIN_MODULE}.py").write_text(PLUGIN_SOURCE, encoding="utf-8")
        log = scratch / "log"
        include = coverage_include(module_path, tree)
        pytest_args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", PLUGIN_MODULE]

        async def covered_run(
            name: str, paths: Sequence[str], run_log: Path
        ) -> tuple[str, int | None, Path, CoverageData | None]:
            data, items = scratch / f"{name}.coverage", scratch / f"{name}.items.json"
            kind, code = await _run(
                [python, "-m", "coverage", "run", f"--data-file={data}", include, *pytest_args, *paths],
                cwd=tree, log=run_log, clock=clock, environment=environment,
                extra_env=_plugin_env(plugin_dir, items),
            )  # fmt: skip
            if kind != "exited" or not data.exists():
                return kind, code, items, None
            if _same_python(python, environment) and not _coverage_configured(tree):
                # Read it here: one process fewer per run (read_coverage_data checks coverage's version).
                try:
                    return kind, code, items, await asyncio.to_thread(read_coverage_data, data, tree)
                except Exception:  # any trouble: ask the tests' interpreter for the json report instead
                    pass
            report = scratch / f"{name}.json"
            await _run(
                # The data file already holds only the module's files (and, for a package, the
                # files the tests never imported, as unexecuted): report all of it.
                [python, "-m", "coverage", "json", f"--data-file={data}", "--show-contexts",
                 "-o", str(report)],
                cwd=tree, log=scratch / "coverage-json.log", clock=clock, deadline=120,
                environment=environment,
            )  # fmt: skip
            return kind, code, items, read_coverage_json(report)

        if setup_command:
            kind, code = await _run(setup_command, cwd=tree, log=log, clock=clock, environment=environment)
            if kind != "exited" or code != 0:
                why = "timed out" if kind == "timeout" else f"exit code {code}"
                return Verification(
                    False, None, code, _tail(log), f"the setup command failed ({why})", commit
                )
        baseline: set[tuple[str, int]] = set()
        coverage_before = 0.0
        if existing_tests:
            kind, _, _, before = await covered_run("existing", existing_tests, scratch / "existing.log")
            if kind == "timeout":
                return Verification(False, None, None, _tail(scratch / "existing.log"),
                                    "the repository's existing tests timed out", commit)  # fmt: skip
            if before is not None:
                baseline = before.all_lines
                coverage_before = percent(baseline, before.statements)
        started, waited = time.monotonic(), clock.waited
        kind, code, items_file, first_coverage = await covered_run("generated", [output_path], log)
        elapsed = time.monotonic() - started - (clock.waited - waited)
        if kind == "timeout":
            return Verification(
                False, None, None, _tail(log), f"the generated tests timed out after {elapsed:.0f}s", commit,
                coverage_before=coverage_before,
            )  # fmt: skip
        if kind != "exited":
            return Verification(False, None, None, _tail(log), f"could not run the tests ({kind})", commit)
        tail = _tail(log)
        if code == 5:
            return Verification(False, None, code, tail,
                                "the generated file contains no tests (pytest collected nothing)", commit,
                                coverage_before=coverage_before)  # fmt: skip
        try:
            source = content.decode("utf-8")
            find_candidates(source)
        except (UnicodeDecodeError, SyntaxError, ValueError) as exc:
            unparsable = f"the generated file does not parse ({type(exc).__name__}); pytest exit code {code}"
            return Verification(False, None, code, tail, unparsable, commit, coverage_before=coverage_before)

        async def rerun(i: int) -> dict[str, dict[str, str]] | None:
            items = scratch / f"rerun-{i}.items.json"
            kind, _ = await _run(
                [python, *pytest_args, output_path], cwd=tree, log=scratch / "reruns.log",
                clock=clock, environment=environment, extra_env=_plugin_env(plugin_dir, items),
            )  # fmt: skip
            return read_items(items) if kind == "exited" else None

        report = await judge_tests(
            source=source, test_file=target, first_items=read_items(items_file),
            first_coverage=first_coverage, baseline=baseline, coverage_before=coverage_before,
            rerun=rerun, reruns=reruns,
        )  # fmt: skip
        tests, funnel = [v.to_dict() for v in report.verdicts], report.funnel()
        coverage: float | None = coverage_before
        reason: str | None
        if not report.kept:
            if code != 0:
                reason = f"the generated tests fail (pytest exit code {code})"
            elif first_coverage is None:
                reason = f"the tests never imported {module_path}: no coverage was measured"
            else:
                reason = "no generated test was kept (" + _rejections(report) + ")"
            return Verification(
                code == 0, coverage, code, tail, reason, commit, coverage_before, tests, funnel, content
            )
        written = content
        tests_passed = True
        coverage = report.coverage_by_union
        reason = None
        if report.rejected:
            # Prune, then verify the pruned file once more as a whole, with the repository's tests.
            rejected = [c for c in find_candidates(source) if c.shadowed or c.key in set(report.rejected)]
            written = prune(source, rejected).encode("utf-8")
            target.write_bytes(written)
            final_log = scratch / "final.log"
            kind, final_code, final_items, final_data = await covered_run(
                "final", [*existing_tests, output_path], final_log
            )
            tail = _tail(final_log)
            final = outcomes_by_key(read_items(final_items), target)
            coverage = percent(final_data.all_lines, final_data.statements) if final_data else 0.0
            if kind != "exited":
                tests_passed, reason = False, f"the pruned file did not finish ({kind})"
            elif set(final) != set(report.kept):
                tests_passed, reason = False, "pruning changed which tests pytest collects"
            elif any(o != "passed" for runs in final.values() for _, o in runs):
                tests_passed = False
                reason = f"the pruned file fails as a whole (pytest exit code {final_code})"
        if reason is None and coverage is not None and coverage < threshold:
            reason = f"coverage {coverage:.1f}% < {threshold:g}% of {module_path}"
        return Verification(
            tests_passed, coverage, code, tail, reason, commit, coverage_before, tests, funnel, written
        )


def _same_python(python: str, environment: HypothesisEnvironment) -> bool:
    """Is ``python`` this interpreter, or an environment's python of the same Python version? Then this
    process finds the same statements in a module as ``python -m coverage json`` would (both parse it)."""
    if python == sys.executable:
        return True
    if environment.venv is None or python != environment.python:
        return False
    try:
        lines = (environment.venv / "pyvenv.cfg").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    config = {k.strip(): v.strip() for k, sep, v in (line.partition("=") for line in lines) if sep}
    version = config.get("version_info") or config.get("version") or ""
    return version.split(".")[:2] == [str(n) for n in sys.version_info[:2]]


_INI_SECTION = re.compile(r"^\[coverage:", re.MULTILINE)


def _coverage_configured(tree: Path) -> bool:
    """Would ``coverage json`` run in ``tree`` read a configuration (exclusions, report include/omit,
    plugins, relative paths...)? The files and the precedence are coverage.py's; unreadable counts as yes."""
    if "COVERAGE_RCFILE" in _command_env() or (tree / ".coveragerc").exists():
        return True
    for name in ("setup.cfg", "tox.ini", "pyproject.toml"):
        path = tree / name
        if not path.exists():
            continue
        try:
            text = path.read_text(encoding="utf-8")
            if name != "pyproject.toml":
                if _INI_SECTION.search(text):
                    return True
            elif "coverage" in tomllib.loads(text).get("tool", {}):
                return True
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return True
    return False


def _rejections(report: JudgeReport) -> str:
    counts: dict[str, int] = {}
    for verdict in report.verdicts:
        what = verdict.reason.split(":", 1)[0].split(" in ", 1)[0]
        counts[what] = counts.get(what, 0) + 1
    return ", ".join(f"{n} {what}" for what, n in counts.items())


def _plugin_env(plugin_dir: Path, items: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(plugin_dir), REPORT_ENV: str(items)}
