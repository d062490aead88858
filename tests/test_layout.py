"""The house rules of ``runner/``: imports point down, faces never import each other, modes stay apart.

Every import (module level or inside a function, absolute or relative) of every module is resolved to
the ``runner.*`` module it names, and checked against what the importing room may use.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO_ROOT

RUNNER = REPO_ROOT / "runner"

# Room -> rooms it must never import. A room is the first component under ``runner.``; a top-level
# module (``runner.run``) is its own room.
FACES = ("runner.cli", "runner.action")
ABOVE_THE_EXECUTOR = ("runner.report", "runner.github", "runner.openhands", "runner.run", *FACES)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "runner.config": (
        "runner.engine", "runner.report", "runner.github", "runner.openhands", "runner.run",
        "runner.async_test_executor", "runner.test_executor", *FACES,
    ),
    "runner.engine": (
        "runner.report", "runner.github", "runner.openhands", "runner.run", "runner.async_test_executor",
        "runner.test_executor", *FACES,
    ),
    "runner.report": ("runner.github", "runner.openhands", "runner.run", *FACES),
    "runner.github": ("runner.report", "runner.openhands", "runner.run", *FACES),
    "runner.async_test_executor": ABOVE_THE_EXECUTOR,
    "runner.test_executor": ABOVE_THE_EXECUTOR,
    "runner.run": ("runner.github", "runner.openhands", *FACES),
    "runner.openhands": ("runner.run", "runner.github", *FACES),
    "runner.cli": ("runner.action", "runner.github"),
    "runner.action": ("runner.cli",),
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in ``path``; ``from X import y`` yields X.y too, since
    ``y`` may be a submodule (``from runner.engine import signals``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
    return [(line, mod) for line, mod in found if mod == "runner" or mod.startswith("runner.")]


def room_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def within(module: str, room: str) -> bool:
    return module == room or module.startswith(room + ".")


def all_modules() -> list[Path]:
    return sorted(RUNNER.rglob("*.py"))


def violations() -> list[str]:
    found: list[str] = []
    for path in all_modules():
        name = module_name(path)
        room = room_of(name)
        rel = path.relative_to(REPO_ROOT)
        for line, target in imported_modules(path):
            for banned in FORBIDDEN.get(room, ()):
                if within(target, banned):
                    found.append(f"{rel}:{line}: {room} imports {target} ({banned} is above it or a face)")
            # The action's modes are siblings: none imports another mode or the dispatcher.
            if name.startswith("runner.action.mode_"):
                other_mode = target.startswith("runner.action.mode_") and not within(target, name)
                if other_mode or within(target, "runner.action.dispatch"):
                    found.append(f"{rel}:{line}: the mode {name} imports {target}")
    return found


def test_imports_point_down() -> None:
    assert violations() == []


def test_the_checker_catches_a_forbidden_import() -> None:
    """The rule checker itself: an engine module importing a report, relative or absolute, is caught."""
    bad = RUNNER / "engine" / "_layout_probe.py"
    try:
        bad.write_text("from ..report import results\nfrom runner.action.dispatch import main\n")
        problems = [p for p in violations() if "_layout_probe" in p]
        assert any(":1: runner.engine imports runner.report" in p for p in problems), problems
        assert any(":2: runner.engine imports runner.action" in p for p in problems), problems
        mode = RUNNER / "action" / "mode_layout_probe.py"
        mode.write_text("def f() -> None:\n    from runner.action.mode_test import run_test_mode\n")
        assert any("the mode runner.action.mode_layout_probe imports runner.action.mode_test" in p
                   for p in violations())  # fmt: skip
    finally:
        bad.unlink()
        (RUNNER / "action" / "mode_layout_probe.py").unlink(missing_ok=True)


def test_every_package_says_what_it_is_for() -> None:
    for init in sorted(RUNNER.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        rel = init.relative_to(REPO_ROOT)
        assert doc and len(doc) > 80, f"{rel} needs a docstring saying what the room is"
        assert "never" in doc, f"{rel}: say what the room may not import"


@pytest.mark.parametrize(
    ("module", "attribute"),
    [
        ("runner", "TestExecutor"),
        ("runner", "AsyncTestExecutor"),
        ("runner", "run_config"),
        ("runner", "load_config"),
        ("runner.test_executor", "TestExecutor"),
        ("runner.async_test_executor", "AsyncTestExecutor"),
        ("runner.config", "RunnerConfig"),
        ("runner.openhands", "OpenHandsTestGenerator"),
        ("runner.cli", "main"),
        ("runner.action", "main"),
    ],
)
def test_public_imports_keep_working(module: str, attribute: str) -> None:
    assert callable(getattr(importlib.import_module(module), attribute))


def test_python_dash_m_runner_and_the_console_script_entry_point() -> None:
    argv = [sys.executable, "-m", "runner", "--version"]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("worktree-runner ")
    pyproject = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'worktree-runner = "runner.cli:main"' in pyproject
    entrypoint = (REPO_ROOT / "entrypoint.py").read_text(encoding="utf-8")
    assert entrypoint.count("from runner.action import main") == 1
