"""The small project the OpenHands tests generate tests for: ``calc.py`` and candidate test files."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import git

CALC = """\
def add(a, b):
    return a + b


def div(a, b):
    if b == 0:
        raise ZeroDivisionError('b')
    return a / b
"""
FULL = """\
from calc import add, div
import pytest

def test_add():
    assert add(1, 2) == 3

def test_div():
    assert div(6, 3) == 2
    with pytest.raises(ZeroDivisionError):
        div(1, 0)
"""
PARTIAL = "from calc import add\n\ndef test_add():\n    assert add(1, 2) == 3\n"
FAILING = "from calc import add\n\ndef test_add():\n    assert add(1, 2) == 4\n"


def make_calc_repo(path: Path) -> Path:
    """A git repository at ``path`` with ``calc.py`` committed on ``main``."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "calc.py").write_text(CALC)
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "calc")
    return path
