"""A pytest plugin worktree-runner loads into a hypothesis' test command: one JSON line per test.

It is **copied** into a directory private to one hypothesis and loaded with ``PYTEST_PLUGINS=
worktree_runner_results`` and that directory on ``PYTHONPATH`` (see ``runner.engine.per_test``), so the
user's command, ini and ``--junitxml`` stay untouched (injecting ``--junitxml`` through ``PYTEST_ADDOPTS``
replaces the user's own report, loses to one on their command line and breaks ``-p no:junitxml``).
Standard library only; it never imports anything from the project under test.

Environment it reads:

* ``WORKTREE_RUNNER_RESULTS``: the file to append to (one line per test at the end of a session, then
  one ``{"session": ...}`` line). Appending lets a command that runs pytest several times report all.
* ``WORKTREE_RUNNER_WORKTREE``: node ids are written relative to it (pytest's are relative to rootdir,
  which may be a subdirectory).
* ``WORKTREE_RUNNER_ONLY``: a file of worktree-relative node ids, one per line; every other collected
  item is deselected. Used for re-runs: unlike node ids on the command line, a missing id is no error
  and positional paths in the user's command do not add the rest of the suite back.

xdist: workers filter but never write; the controller receives every worker's reports and writes once.
A pytest started *inside* a test (pytester, a subprocess) sees ``WORKTREE_RUNNER_RESULTS_ACTIVE`` and
stays inactive, so its tests are not mixed into the hypothesis' own.
"""

from __future__ import annotations

import json
import os
from typing import Any

RESULTS_ENV = "WORKTREE_RUNNER_RESULTS"
ONLY_ENV = "WORKTREE_RUNNER_ONLY"
WORKTREE_ENV = "WORKTREE_RUNNER_WORKTREE"
ACTIVE_ENV = "WORKTREE_RUNNER_RESULTS_ACTIVE"
_MESSAGE_CHARS = 300


def _prefix(config: Any) -> str:
    """The rootdir relative to the worktree, as a node-id prefix (``""`` when they are the same)."""
    worktree = os.environ.get(WORKTREE_ENV)
    rootdir = str(getattr(config, "rootpath", "") or getattr(config, "rootdir", ""))
    if not worktree or not rootdir:
        return ""
    try:
        rel = os.path.relpath(os.path.realpath(rootdir), os.path.realpath(worktree))
    except ValueError:
        return ""
    if rel == "." or rel.startswith(".."):
        return ""
    return rel.replace(os.sep, "/") + "/"


def _message(report: Any) -> str | None:
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    text = getattr(crash, "message", None)
    if not isinstance(text, str):
        longrepr = getattr(report, "longrepr", None)
        text = longrepr[-1] if isinstance(longrepr, tuple) and longrepr else None
    if not isinstance(text, str):
        return None
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:_MESSAGE_CHARS]


class _Only:
    """Deselects every item whose worktree-relative node id is not listed (re-runs)."""

    def __init__(self, prefix: str, wanted: set[str]) -> None:
        self.prefix = prefix
        self.wanted = wanted

    def pytest_collection_modifyitems(self, session: Any, config: Any, items: list[Any]) -> None:
        keep = [item for item in items if self.prefix + item.nodeid in self.wanted]
        dropped = [item for item in items if self.prefix + item.nodeid not in self.wanted]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep


class _Recorder:
    """Folds the setup/call/teardown reports of each node id into one outcome; writes them at the end."""

    def __init__(self, path: str, prefix: str) -> None:
        self.path = path
        self.prefix = prefix
        self.tests: dict[str, dict[str, Any]] = {}

    def _entry(self, report: Any) -> dict[str, Any]:
        node_id = self.prefix + report.nodeid
        entry = self.tests.get(node_id)
        if entry is None:
            location = getattr(report, "location", None) or (None, None, None)
            path, line = location[0], location[1]
            entry = {
                "id": node_id, "outcome": None, "duration": 0.0, "reruns": 0,
                "file": self.prefix + str(path).replace(os.sep, "/") if path else None,
                "line": line + 1 if isinstance(line, int) else None,  # pytest's line is 0-based
            }  # fmt: skip
            self.tests[node_id] = entry
        return entry

    def pytest_runtest_logreport(self, report: Any) -> None:
        entry = self._entry(report)
        entry["duration"] += float(getattr(report, "duration", 0.0) or 0.0)
        outcome = report.outcome
        if outcome == "rerun":  # pytest-rerunfailures: a failed attempt; the last one is reported normally
            entry["reruns"] += 1
            return
        xfail = hasattr(report, "wasxfail")
        if report.when == "setup":
            entry["outcome"] = None  # a new attempt starts
            if outcome == "failed":
                entry["outcome"] = "error"
            elif outcome == "skipped":
                entry["outcome"] = "xfail" if xfail else "skipped"
        elif report.when == "call":
            if outcome == "passed":
                entry["outcome"] = "xpass" if xfail else "passed"
            elif outcome == "failed":
                entry["outcome"] = "failed"
            else:
                entry["outcome"] = "xfail" if xfail else "skipped"
        elif report.when == "teardown" and outcome == "failed" and entry["outcome"] != "failed":
            entry["outcome"] = "error"
        if outcome == "failed" and "message" not in entry:
            entry["message"] = _message(report)

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:  # an import error in a test module: its tests are missing, the module errs
            entry = self._entry(report)
            entry["outcome"] = "error"
            entry["message"] = _message(report)
            entry["collect"] = True

    def pytest_sessionfinish(self, session: Any, exitstatus: Any) -> None:
        lines = [json.dumps(e, ensure_ascii=False) for e in self.tests.values() if e["outcome"] is not None]
        lines.append(json.dumps({"session": {"exitstatus": int(exitstatus), "tests": len(lines)}}))
        data = ("\n".join(lines) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, data)  # one write in append mode: sessions running side by side do not interleave
        finally:
            os.close(fd)


def pytest_configure(config: Any) -> None:
    worker = hasattr(config, "workerinput")  # an xdist worker: the controller records
    if not worker and os.environ.get(ACTIVE_ENV):
        return  # a pytest run inside a test: not the hypothesis' own session
    prefix = _prefix(config)
    only_file = os.environ.get(ONLY_ENV)
    if only_file:
        try:
            with open(only_file, encoding="utf-8") as fh:
                wanted = {line.rstrip("\n") for line in fh if line.strip()}
        except OSError:
            wanted = set()
        config.pluginmanager.register(_Only(prefix, wanted), "worktree_runner_only")
    os.environ[ACTIVE_ENV] = "1"
    path = os.environ.get(RESULTS_ENV)
    if path and not worker:
        config.pluginmanager.register(_Recorder(path, prefix), "worktree_runner_recorder")
        if not only_file:
            _hide_from_children()


def _hide_from_children() -> None:
    """Take this module out of the environment the tests (and their subprocesses) see.

    A test that starts pytest with ``PYTHONPATH`` removed but ``PYTEST_PLUGINS`` kept would otherwise
    fail with "Error importing plugin". xdist workers then do not load us, which is fine: they never
    write. Re-runs (``WORKTREE_RUNNER_ONLY``) keep it, because there the workers must deselect.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    listed = os.environ.get("PYTEST_PLUGINS", "").split(",")
    plugins = [p for p in listed if p.strip() and p.strip() != __name__]
    if plugins:
        os.environ["PYTEST_PLUGINS"] = ",".join(plugins)
    else:
        os.environ.pop("PYTEST_PLUGINS", None)
    entries = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    paths = [p for p in entries if p and os.path.abspath(p) != here]
    if paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    else:
        os.environ.pop("PYTHONPATH", None)
