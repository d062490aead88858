"""Shared fixtures: real git repositories in temporary directories."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.openhands_support.fixtures"]

REPO_ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}  # fmt: skip
    out = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def worktree_list(repo: Path) -> str:
    return git(repo, "worktree", "list", "--porcelain")


def make_check_repo(r: Path) -> None:
    """In the existing directory ``r``: ``check.py`` exits 0 on ``main`` and 1 on ``broken``."""
    git(r, "init", "-q", "-b", "main")
    (r / "check.py").write_text("import sys\nprint('checking')\nsys.exit(0)\n")
    (r / "data.txt").write_text("one\ntwo\nthree\n")
    git(r, "add", ".")
    git(r, "commit", "-q", "-m", "base")
    git(r, "checkout", "-q", "-b", "broken")
    (r / "check.py").write_text("import sys\nprint('broken!')\nsys.exit(1)\n")
    git(r, "commit", "-q", "-am", "break it")
    git(r, "checkout", "-q", "main")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with a passing test script on main and a few branches.

    - main: ``check.py`` exits 0
    - ``broken``: ``check.py`` exits 1
    - ``feature``: adds ``feature.txt``
    """
    r = tmp_path / "repo"
    r.mkdir()
    make_check_repo(r)
    git(r, "checkout", "-q", "-b", "feature")
    (r / "feature.txt").write_text("feature\n")
    git(r, "add", "feature.txt")
    git(r, "commit", "-q", "-m", "feature")
    git(r, "checkout", "-q", "main")
    return r


@pytest.fixture
def runner_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An isolated $RUNNER_TEMP so tests can check that nothing is left behind in it."""
    rt = tmp_path / "runner_temp"
    rt.mkdir()
    monkeypatch.setenv("RUNNER_TEMP", str(rt))
    yield rt


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes (it only waits to be reaped by its parent).
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(autouse=True, scope="session")
def _private_layer_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The tests' layer cache (runner/engine/layer_cache.py) is theirs, never the user's ~/.cache."""
    saved = os.environ.get("WORKTREE_RUNNER_LAYER_CACHE")
    os.environ["WORKTREE_RUNNER_LAYER_CACHE"] = str(tmp_path_factory.mktemp("layer-cache"))
    yield
    if saved is None:
        os.environ.pop("WORKTREE_RUNNER_LAYER_CACHE", None)
    else:
        os.environ["WORKTREE_RUNNER_LAYER_CACHE"] = saved


@pytest.fixture(autouse=True)
def _restore_signal_handlers() -> Iterator[None]:
    """The CLI installs process-wide SIGINT/SIGTERM handlers; keep them out of other tests."""
    import signal

    from runner.engine import signals

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    signals._received.clear()
    signals._installed = False
