"""The pytest result plugin, run for real: every outcome, ids, and the user's own reporting untouched.

Each case runs ``python -m pytest`` in a subprocess with exactly the environment the executor gives a
hypothesis' command (``pytest_report_env``), and checks the JSON lines against the expected outcomes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner.engine import per_test

PROJECT = {
    "tests/__init__.py": "",
    "tests/test_x.py": '''
import os
import pytest

def test_pass():
    pass

def test_fail():
    assert 1 == 2, "boom"

@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")

def test_setup_error(broken):
    pass

@pytest.fixture
def bad_teardown():
    yield
    raise RuntimeError("teardown broke")

def test_teardown_error(bad_teardown):
    pass

def test_skip():
    pytest.skip("not here")

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False

@pytest.mark.xfail(reason="known")
def test_xpass():
    pass

class TestC:
    @pytest.mark.parametrize("p", ["a b", "x/y", "\\u00fc", "[z]"])
    def test_m(self, p):
        assert p != "x/y"

    class TestInner:
        def test_nested(self):
            pass

def test_first_run_fails():
    marker = os.path.join(os.path.dirname(__file__), ".ran")
    first = not os.path.exists(marker)
    open(marker, "w").close()
    assert not first
''',
    "tests/sub/test_y.py": "def test_y():\n    pass\n",
}

EXPECTED = {
    "tests/test_x.py::test_pass": "passed",
    "tests/test_x.py::test_fail": "failed",
    "tests/test_x.py::test_setup_error": "error",
    "tests/test_x.py::test_teardown_error": "error",
    "tests/test_x.py::test_skip": "skipped",
    "tests/test_x.py::test_xfail": "xfail",
    "tests/test_x.py::test_xpass": "xpass",
    "tests/test_x.py::TestC::test_m[a b]": "passed",
    "tests/test_x.py::TestC::test_m[x/y]": "failed",
    "tests/test_x.py::TestC::test_m[\\xfc]": "passed",  # pytest escapes non-ASCII ids
    "tests/test_x.py::TestC::test_m[[z]]": "passed",
    "tests/test_x.py::TestC::TestInner::test_nested": "passed",
    "tests/test_x.py::test_first_run_fails": "failed",
    "tests/sub/test_y.py::test_y": "passed",
}


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _run(
    tmp_path: Path,
    project: Path,
    *args: str,
    env_extra: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[
    subprocess.CompletedProcess[str], dict[str, per_test.TestOutcome] | None, Path
]:
    plugin_dir = per_test.install_plugin(tmp_path / "plugin")
    results = tmp_path / "results.jsonl"
    results.unlink(missing_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "WORKTREE_RUNNER_"))}
    base.pop("PYTHONPATH", None)
    env = per_test.pytest_report_env({**base, "WORKTREE_RUNNER_WORKTREE": str(project)}, plugin_dir, results)
    env.update(env_extra or {})
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd or project, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return proc, per_test.read_pytest_results(results), results


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "wt"
    _write(root, PROJECT)
    return root


def _outcomes(found: dict[str, per_test.TestOutcome] | None) -> dict[str, str]:
    assert found is not None, "the plugin wrote no session"
    return {i: o.outcome for i, o in found.items()}


def test_every_outcome_and_exact_node_ids(tmp_path: Path, project: Path) -> None:
    proc, found, _ = _run(tmp_path, project)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _outcomes(found) == EXPECTED
    assert found is not None
    fail = found["tests/test_x.py::test_fail"]
    # The failing test's location, 1-based, relative to the worktree (for annotations).
    line = PROJECT["tests/test_x.py"].splitlines().index("def test_fail():") + 1
    assert (fail.file, fail.line) == ("tests/test_x.py", line)
    assert fail.message is not None and "boom" in fail.message


def test_users_junitxml_in_ini_is_still_written(tmp_path: Path, project: Path) -> None:
    (project / "pytest.ini").write_text("[pytest]\naddopts = --junitxml=user.xml\n", encoding="utf-8")
    proc, found, _ = _run(tmp_path, project)
    assert proc.returncode == 1
    assert _outcomes(found) == EXPECTED
    assert (project / "user.xml").is_file()  # PYTEST_ADDOPTS=--junitxml would have replaced it


def test_users_junitxml_on_the_command_line_is_still_written(tmp_path: Path, project: Path) -> None:
    proc, found, _ = _run(tmp_path, project, "--junitxml=mine.xml")
    assert proc.returncode == 1
    assert _outcomes(found) == EXPECTED
    assert (project / "mine.xml").is_file()


def test_junitxml_plugin_disabled_is_no_usage_error(tmp_path: Path, project: Path) -> None:
    proc, found, _ = _run(tmp_path, project, "-p", "no:junitxml")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # not 4 (usage error)
    assert _outcomes(found) == EXPECTED


def test_rootdir_below_the_worktree_gives_worktree_relative_ids(tmp_path: Path, project: Path) -> None:
    (project / "tests" / "sub" / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    proc, found, _ = _run(tmp_path, project, cwd=project / "tests" / "sub")
    assert proc.returncode == 0
    assert _outcomes(found) == {"tests/sub/test_y.py::test_y": "passed"}


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="pytest-xdist is not installed")
def test_xdist_controller_writes_every_workers_tests_once(tmp_path: Path, project: Path) -> None:
    proc, found, results = _run(tmp_path, project, "-n", "2")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _outcomes(found) == EXPECTED
    sessions = [line for line in results.read_text().splitlines() if '"session"' in line]
    assert len(sessions) == 1  # workers do not write


@pytest.mark.skipif(
    importlib.util.find_spec("pytest_rerunfailures") is None, reason="pytest-rerunfailures is not installed"
)
def test_rerunfailures_final_attempt_counts(tmp_path: Path, project: Path) -> None:
    proc, found, results = _run(tmp_path, project, "--reruns", "2")
    assert proc.returncode == 1
    expected = {**EXPECTED, "tests/test_x.py::test_first_run_fails": "passed"}  # passed on its rerun
    assert _outcomes(found) == expected
    records = {r["id"]: r for r in map(json.loads, results.read_text().splitlines()) if "id" in r}
    assert records["tests/test_x.py::test_first_run_fails"]["reruns"] == 1
    assert records["tests/test_x.py::test_fail"]["reruns"] == 2


def test_only_file_runs_the_listed_ids_despite_positional_paths(tmp_path: Path, project: Path) -> None:
    ids = tmp_path / "ids.txt"
    wanted = ["tests/test_x.py::test_fail", "tests/test_x.py::TestC::test_m[a b]", "tests/test_x.py::gone"]
    ids.write_text("\n".join(wanted) + "\n", encoding="utf-8")
    proc, found, _ = _run(tmp_path, project, "tests/", env_extra={per_test.plugin.ONLY_ENV: str(ids)})
    assert proc.returncode == 1, proc.stdout + proc.stderr  # a missing id is no usage error (exit 4)
    assert _outcomes(found) == {
        "tests/test_x.py::test_fail": "failed",
        "tests/test_x.py::TestC::test_m[a b]": "passed",
    }


def test_a_pytest_run_inside_a_test_is_not_recorded(tmp_path: Path, project: Path) -> None:
    inner = project / "inner"
    _write(inner, {"test_inner.py": "def test_inner_secret():\n    assert False\n"})
    _write(project, {"tests/test_outer.py": f'''
import os, subprocess, sys
def test_outer():
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", {str(inner)!r}])
    assert r.returncode == 1

def test_outer_without_pythonpath():
    # A test that drops PYTHONPATH but keeps the rest: our plugin must not be asked for.
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", {str(inner)!r}]
    r = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert "1 failed" in r.stdout, r.stdout + r.stderr  # it ran its test, not "Error importing plugin"
'''})  # fmt: skip
    proc, found, _ = _run(tmp_path, project, "tests/test_outer.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _outcomes(found) == {
        "tests/test_outer.py::test_outer": "passed",
        "tests/test_outer.py::test_outer_without_pythonpath": "passed",
    }


def test_collection_error_is_an_erroring_module(tmp_path: Path, project: Path) -> None:
    _write(project, {"tests/test_broken.py": "import no_such_module_here\n"})
    proc, found, _ = _run(tmp_path, project, "tests/test_broken.py", "tests/sub")
    assert proc.returncode == 2
    assert _outcomes(found) == {"tests/test_broken.py": "error"}


def test_the_runs_one_plugin_copy_is_rewritten_when_a_command_changed_it(tmp_path: Path) -> None:
    from runner.engine import worktree_runner_results
    from runner.engine.per_test import PLUGIN_MODULE, SharedPlugin

    shipped = Path(worktree_runner_results.__file__).read_bytes()
    shared = SharedPlugin(tmp_path / "run")
    module = shared.ready() / f"{PLUGIN_MODULE}.py"
    assert module.read_bytes() == shipped and shared.ready() == module.parent
    module.write_bytes(b"raise SystemExit('planted')\n")  # what a hypothesis' command could do
    shared.ready()
    assert module.read_bytes() == shipped
    module.unlink()
    shared.ready()
    assert module.read_bytes() == shipped
