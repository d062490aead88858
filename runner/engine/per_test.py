"""Per-test outcomes of one hypothesis: our pytest plugin or a JUnit file, and re-runs of its failures.

Two sources, never console text:

* **pytest** (the default, ``per-test: true``): ``worktree_runner_results.py`` is copied into a directory
  private to the hypothesis and loaded through ``PYTEST_PLUGINS``; only that hypothesis' command sees it
  (:func:`pytest_report_env`). A command that is not pytest ignores the variables and writes nothing, and
  the hypothesis keeps the exit-code-only verdict.
* **JUnit** (``junit: PATH-OR-GLOB``): files the command writes inside its worktree (gotestsum
  ``--junitfile``, jest-junit, nextest). Parsed with ``xml.etree`` after refusing any DOCTYPE (so no
  entity expansion), ids ``classname::name``.

Re-runs (``reruns: K``): each failing id is run again, K times at most, each time in a fresh process with
the command's own environment, in the same worktree. For pytest that is the user's command unchanged plus
``WORKTREE_RUNNER_ONLY`` (the plugin deselects everything else, so the user's ini, options, plugins and
positional paths all apply, and an id that vanished is no usage error). For JUnit the whole command runs
again. An id that passes on any re-run is flaky.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.engine import worktree_runner_results as plugin
from runner.engine.filestamp import Stamp, file_stamp
from runner.engine.process import CommandOutcome

__all__ = [
    "FAILING",
    "PASSING",
    "PLUGIN_MODULE",
    "JUnitError",
    "PerTestCollector",
    "SharedPlugin",
    "TestOutcome",
    "TestRun",
    "install_plugin",
    "junit_files",
    "only_env",
    "pytest_report_env",
    "read_junit",
    "read_pytest_results",
]

PLUGIN_MODULE = "worktree_runner_results"
PASSING = frozenset({"passed", "xfail", "xpass"})  # as SWE-bench: an expected failure is a pass
FAILING = frozenset({"failed", "error"})
_OUTCOMES = PASSING | FAILING | {"skipped"}
_PLUGIN_IMPORT_ERROR = re.compile(rb"Error importing plugin \"?" + PLUGIN_MODULE.encode())


@dataclass
class TestOutcome:
    """One test id's folded outcome in one run (``outcome`` in ``PASSING | FAILING | {"skipped"}``)."""

    __test__ = False

    outcome: str
    file: str | None = None
    line: int | None = None
    message: str | None = None


@dataclass
class TestRun:
    """The per-test result of one hypothesis: outcomes of the first run, and ids that passed on a re-run."""

    __test__ = False

    source: str  # "pytest" | "junit"
    outcomes: dict[str, TestOutcome] = field(default_factory=dict)
    flaky: set[str] = field(default_factory=set)
    reruns_done: int = 0

    def failing_ids(self) -> list[str]:
        return [i for i, o in self.outcomes.items() if o.outcome in FAILING]


class JUnitError(ValueError):
    """A JUnit file we refuse to read (DOCTYPE/entities, not XML)."""


# -- pytest ------------------------------------------------------------------------------------------


def install_plugin(directory: Path) -> Path:
    """Copy the plugin module into ``directory`` (created); returns the directory for ``PYTHONPATH``."""
    directory.mkdir(parents=True, exist_ok=True)
    source = Path(plugin.__file__)
    shutil.copyfile(source, directory / f"{PLUGIN_MODULE}.py")
    return directory


class SharedPlugin:
    """One copy of the plugin for every hypothesis of a run, checked (one ``stat``) before each use.

    Its directory is the run's own: the module in ``plugin/`` (the only part on ``PYTHONPATH``), the
    hypotheses' report files and re-run lists beside it; it is removed when the run ends (the verdicts
    are in the results by then).

    The copy is rewritten when it is not the file we wrote (a command changed or removed it), so a
    hypothesis always loads our plugin as shipped.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.plugin_dir = directory / "plugin"
        self._stamp: Stamp = None

    def ready(self) -> Path:
        target = self.plugin_dir / f"{PLUGIN_MODULE}.py"
        if self._stamp is None or file_stamp(target) != self._stamp:
            install_plugin(self.plugin_dir)
            self._stamp = file_stamp(target)
        return self.plugin_dir


def pytest_report_env(env: Mapping[str, str], plugin_dir: Path, results_file: Path) -> dict[str, str]:
    """``env`` plus what loads our result plugin into pytest: the one place that injects it.

    ``PYTHONPATH`` gets the hypothesis' private plugin directory in front of whatever it had; the module
    is added to ``PYTEST_PLUGINS`` (comma-separated, kept); ``WORKTREE_RUNNER_RESULTS`` is the file.
    """
    out = dict(env)
    path = out.get("PYTHONPATH", "")
    out["PYTHONPATH"] = str(plugin_dir) + (os.pathsep + path if path else "")
    plugins = [p for p in out.get("PYTEST_PLUGINS", "").split(",") if p.strip()]
    if PLUGIN_MODULE not in plugins:
        plugins.append(PLUGIN_MODULE)
    out["PYTEST_PLUGINS"] = ",".join(plugins)
    out[plugin.RESULTS_ENV] = str(results_file)
    out.pop(plugin.ACTIVE_ENV, None)
    out.pop(plugin.ONLY_ENV, None)
    return out


def without_report_env(env: Mapping[str, str], plugin_dir: Path) -> dict[str, str]:
    """``env`` as it was before :func:`pytest_report_env` (the fallback when the plugin cannot load)."""
    out = dict(env)
    parts = out.get("PYTHONPATH", "").split(os.pathsep)
    rest = [p for p in parts if p and p != str(plugin_dir)]
    if rest:
        out["PYTHONPATH"] = os.pathsep.join(rest)
    else:
        out.pop("PYTHONPATH", None)
    plugins = [p for p in out.get("PYTEST_PLUGINS", "").split(",") if p.strip() and p != PLUGIN_MODULE]
    if plugins:
        out["PYTEST_PLUGINS"] = ",".join(plugins)
    else:
        out.pop("PYTEST_PLUGINS", None)
    out.pop(plugin.RESULTS_ENV, None)
    return out


def only_env(env: Mapping[str, str], ids_file: Path) -> dict[str, str]:
    """``env`` for a re-run of the ids listed in ``ids_file``."""
    return {**env, plugin.ONLY_ENV: str(ids_file)}


def plugin_failed_to_load(log_tail: bytes) -> bool:
    """pytest fails with ``Error importing plugin "worktree_runner_results"`` when a tool in between
    (tox, a wrapper) passes ``PYTEST_PLUGINS`` but drops ``PYTHONPATH``."""
    return bool(_PLUGIN_IMPORT_ERROR.search(log_tail))


def read_pytest_results(path: Path) -> dict[str, TestOutcome] | None:
    """The plugin's file as ``{node id: outcome}``; ``None`` when no pytest session wrote it.

    Several sessions (a command running pytest twice) are merged; a later failure of an id wins over a
    pass, so nothing that failed is hidden. Malformed lines (a killed writer) are skipped.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    outcomes: dict[str, TestOutcome] = {}
    sessions = 0
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        if "session" in record:
            sessions += 1
            continue
        node_id, outcome = record.get("id"), record.get("outcome")
        if not isinstance(node_id, str) or outcome not in _OUTCOMES or not node_id:
            continue
        previous = outcomes.get(node_id)
        if previous is not None and previous.outcome in FAILING and outcome not in FAILING:
            continue
        file, line_no, message = record.get("file"), record.get("line"), record.get("message")
        outcomes[node_id] = TestOutcome(
            outcome=outcome,
            file=file if isinstance(file, str) else None,
            line=line_no if isinstance(line_no, int) and not isinstance(line_no, bool) else None,
            message=message if isinstance(message, str) else None,
        )
    return outcomes if sessions else None


# -- JUnit -------------------------------------------------------------------------------------------


def junit_files(worktree: Path, pattern: str) -> list[Path]:
    """Regular files inside ``worktree`` matching ``pattern`` (symlinks out of the worktree excluded)."""
    root = worktree.resolve()
    found: list[Path] = []
    for name in sorted(glob.glob(pattern, root_dir=root, recursive=True)):
        candidate = (root / name).resolve()
        if candidate.is_file() and root in candidate.parents:
            found.append(candidate)
    return found


def remove_junit_files(worktree: Path, pattern: str) -> None:
    """Delete stale reports before a run (a committed or earlier file must not count as this run's)."""
    for path in junit_files(worktree, pattern):
        path.unlink(missing_ok=True)


_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_MAX_JUNIT_BYTES = 256 * 1024 * 1024


def read_junit(paths: Iterable[Path]) -> dict[str, TestOutcome] | None:
    """``{classname::name: outcome}`` from JUnit XML files; ``None`` when there are none.

    A test repeated in a file (gotestsum ``--rerun-fails``, pytest-rerunfailures) is failing if its last
    element failed. Files with a DOCTYPE are refused (:class:`JUnitError`): no entity can expand.
    """
    outcomes: dict[str, TestOutcome] = {}
    seen = False
    for path in paths:
        data = path.read_bytes()[:_MAX_JUNIT_BYTES]
        if _DOCTYPE.search(data):
            raise JUnitError(f"{path.name}: a DOCTYPE or ENTITY declaration is not accepted in JUnit XML")
        try:
            root = ET.fromstring(data)
        except ET.ParseError as exc:
            raise JUnitError(f"{path.name}: not well-formed XML: {exc}") from None
        seen = True
        for case in root.iter("testcase"):
            name = case.get("name") or ""
            classname = case.get("classname") or ""
            if not name:
                continue
            node_id = f"{classname}::{name}" if classname else name
            outcome = "passed"
            message = None
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "failed" if child.tag == "failure" else "error"
                    message = (child.get("message") or "").strip().splitlines()[:1]
                    break
                if child.tag == "skipped":
                    outcome = "xfail" if child.get("type") == "pytest.xfail" else "skipped"
            line = case.get("line")
            outcomes[node_id] = TestOutcome(
                outcome=outcome,
                file=case.get("file"),
                line=int(line) if line and line.isdigit() else None,
                message=message[0][:300] if message else None,
            )
    return outcomes if seen else None


def to_json(run: TestRun) -> dict[str, Any]:
    """The raw material grading needs (and a merge of shards), as plain JSON."""
    return {
        "source": run.source,
        "outcomes": {i: o.outcome for i, o in run.outcomes.items()},
        "locations": {
            i: [o.file, o.line, o.message] for i, o in run.outcomes.items() if o.outcome in FAILING
        },
        "rerun_passed": sorted(run.flaky),
        "reruns": run.reruns_done,
    }


# -- one hypothesis' collection and re-runs ---------------------------------------------------------

RerunCommand = Callable[[dict[str, str], str], Awaitable[CommandOutcome]]


class PerTestCollector:
    """What the executor does around one hypothesis' command to get per-test outcomes.

    ``command_env`` before the command; ``finish`` after it (reads the report, re-runs failing ids
    through ``rerun``, which runs the same command with the given environment and a log label).
    """

    def __init__(
        self,
        *,
        worktree: Path,
        workdir: Path,
        junit: str | None,
        pytest_plugin: bool,
        reruns: int,
        shared_plugin: SharedPlugin | None = None,
    ) -> None:
        self.worktree = worktree
        self.junit = junit
        self.pytest_plugin = pytest_plugin and junit is None
        self.reruns = reruns
        self._shared_plugin = shared_plugin
        if shared_plugin is not None:
            # The run's own directory: nothing of an earlier run can be in it (no stale report to remove).
            self.workdir = shared_plugin.directory / workdir.name
            self.plugin_dir = shared_plugin.plugin_dir
        else:
            self.workdir = workdir
            self.plugin_dir = workdir / "plugin"
        self.results_file = self.workdir.with_name(f"{self.workdir.name}.jsonl")
        self._env: dict[str, str] | None = None

    @property
    def active(self) -> bool:
        return self.junit is not None or self.pytest_plugin

    def command_env(self, env: Mapping[str, str]) -> dict[str, str]:
        if self.junit is not None:
            remove_junit_files(self.worktree, self.junit)
            self._env = dict(env)
        elif self.pytest_plugin:
            if self._shared_plugin is not None:
                self._shared_plugin.ready()
            else:
                install_plugin(self.plugin_dir)
                self.results_file.unlink(missing_ok=True)
            self._env = pytest_report_env(env, self.plugin_dir, self.results_file)
        else:
            self._env = dict(env)
        return self._env

    def fallback_env(self, log_tail: str) -> dict[str, str] | None:
        """The environment without the plugin when the failed command's log says pytest could not import
        it and no session wrote results (else None)."""
        if not self.pytest_plugin or self._env is None or self.results_file.exists():
            return None
        if not plugin_failed_to_load(log_tail.encode("utf-8", "replace")):
            return None
        return without_report_env(self._env, self.plugin_dir)

    def _read(self) -> dict[str, TestOutcome] | None:
        if self.junit is not None:
            return read_junit(junit_files(self.worktree, self.junit))
        if self.pytest_plugin:
            return read_pytest_results(self.results_file)
        return None

    async def finish(self, rerun: RerunCommand, *, time_left: Callable[[], float]) -> TestRun | None:
        """Read the first run's outcomes, then re-run what failed. ``None``: the command wrote no report."""
        try:
            outcomes = self._read()
        except JUnitError:
            return None
        if outcomes is None or self._env is None:
            return None
        run = TestRun(source="junit" if self.junit is not None else "pytest", outcomes=outcomes)
        pending = run.failing_ids()
        for attempt in range(1, self.reruns + 1):
            if not pending or time_left() <= 0:
                break
            passed = await self._rerun_once(rerun, pending, attempt)
            if passed is None:
                break
            run.reruns_done = attempt
            run.flaky.update(passed)
            pending = [i for i in pending if i not in passed]
        return run

    async def _rerun_once(self, rerun: RerunCommand, ids: list[str], attempt: int) -> set[str] | None:
        assert self._env is not None
        label = f"re-run {attempt}/{self.reruns} of {len(ids)} failing test(s)"
        if self.junit is not None:
            remove_junit_files(self.worktree, self.junit)
            outcome = await rerun(self._env, label)
            try:
                again = self._read()
            except JUnitError:
                again = None
        else:
            self.workdir.mkdir(parents=True, exist_ok=True)
            ids_file = self.workdir / f"rerun-{attempt}.txt"
            ids_file.write_text("".join(i + "\n" for i in ids), encoding="utf-8")
            rerun_file = self.workdir / f"rerun-{attempt}.jsonl"
            env = {**only_env(self._env, ids_file), plugin.RESULTS_ENV: str(rerun_file)}
            outcome = await rerun(env, label)
            again = read_pytest_results(rerun_file)
        if outcome.kind != "exited" or again is None:
            return None  # timed out, cancelled, or no report: what it did say is not trustworthy
        return {i for i in ids if i in again and again[i].outcome in PASSING}
