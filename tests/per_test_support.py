"""A real project's own suite for per-test verdicts: ``six`` 1.17.0 from its PyPI sdist (tests/data).

``make_six_repo`` builds a git repository from the sdist (``six.py`` + ``test_six.py``, 200 tests, ~1 s)
and the candidate changes of the scenario the issue asks for:

* ``HEAD`` (``main``): a regression in ``six.py``: ``int2byte``, ``byte2int`` and ``indexbytes`` broken,
  so ``test_int2byte``, ``test_byte2int`` and ``test_bytesindex`` fail;
* ``fix/right``: all three restored;
* ``fix/partial``: only ``int2byte`` restored;
* ``fix/breaks-other``: all three restored, but ``unichr`` broken (``test_unichr`` fails);
* ``fix/flaky``: the right fix, plus ``test_unichr`` made to fail on its first run in a worktree only
  (it leaves a marker file and passes once the marker exists), i.e. flaky;
* ``patches/flaky-only.diff``: the regression unchanged, ``test_bytesiter`` flaky the same way.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from .conftest import REPO_ROOT, git

SDIST = REPO_ROOT / "tests" / "data" / "six-1.17.0.tar.gz"
REGRESSED_TESTS = ["test_six.py::test_byte2int", "test_six.py::test_bytesindex", "test_six.py::test_int2byte"]

_GOOD = """    int2byte = struct.Struct(">B").pack
    del struct
    byte2int = operator.itemgetter(0)
    indexbytes = operator.getitem
"""
_INT2BYTE_BROKEN = """    int2byte = struct.Struct(">H").pack
"""
_OTHERS_BROKEN = """    byte2int = operator.itemgetter(-1)
    indexbytes = lambda buf, i: buf[i + 1]  # noqa: E731
"""
_REGRESSED = _INT2BYTE_BROKEN + "    del struct\n" + _OTHERS_BROKEN
_PARTIAL = """    int2byte = struct.Struct(">B").pack
    del struct
""" + _OTHERS_BROKEN


def _first_run_fails(test_name: str) -> tuple[str, str]:
    """(old, new) text turning ``def test_name():`` into a test that fails in a fresh worktree once."""
    old = f"def {test_name}():\n"
    new = (
        f"def {test_name}():\n"
        "    import os\n"
        f"    marker = os.path.join(os.path.dirname(os.path.abspath(__file__)), '.{test_name}-ran')\n"
        "    first = not os.path.exists(marker)\n"
        "    open(marker, 'w').close()\n"
        "    assert not first, 'fails on its first run in this worktree only'\n"
    )
    return old, new


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def make_six_repo(repo: Path) -> Path:
    """The repository described in the module docstring; returns ``repo``."""
    repo.mkdir(parents=True, exist_ok=True)
    with tarfile.open(SDIST) as tar:
        tar.extractall(repo.parent / "sdist", filter="data")
    shutil.copytree(repo.parent / "sdist" / "six-1.17.0", repo, dirs_exist_ok=True)
    (repo / ".gitignore").write_text("__pycache__/\n.pytest_cache/\n.test_*-ran\n", encoding="utf-8")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "six 1.17.0 from its sdist")
    six = repo / "six.py"
    tests = repo / "test_six.py"
    _edit(six, _GOOD, _REGRESSED)
    git(repo, "commit", "-q", "-am", "regression: int2byte, byte2int, indexbytes")

    def branch(name: str, *edits: tuple[Path, str, str]) -> None:
        git(repo, "checkout", "-q", "-b", name, "main")
        for path, old, new in edits:
            _edit(path, old, new)
        git(repo, "commit", "-q", "-am", name)
        git(repo, "checkout", "-q", "main")

    branch("fix/right", (six, _REGRESSED, _GOOD))
    branch("fix/partial", (six, _REGRESSED, _PARTIAL))
    branch("fix/breaks-other", (six, _REGRESSED, _GOOD), (six, "    unichr = chr\n", "    unichr = str\n"))
    branch("fix/flaky", (six, _REGRESSED, _GOOD), (tests, *_first_run_fails("test_unichr")))
    _edit(tests, *_first_run_fails("test_bytesiter"))
    patch = git(repo, "diff")
    git(repo, "checkout", "-q", "--", "test_six.py")
    (repo.parent / "flaky-only.diff").write_text(patch + "\n", encoding="utf-8")
    return repo
