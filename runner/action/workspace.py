"""What the action's modes share about the workspace: where it is, paths that must stay inside it.

Every path an input names is resolved here, so "outside the workspace" is decided in one place.
"""

from __future__ import annotations

import os
from pathlib import Path

from runner.github import InputError

__all__ = ["DEFAULT_RESULTS_DIR", "inside", "relative", "workspace_dir"]

DEFAULT_RESULTS_DIR = ".worktree-runner"


def workspace_dir() -> Path:
    return Path(os.environ.get("GITHUB_WORKSPACE") or os.getcwd()).resolve()


def inside(workspace: Path, value: str, name: str) -> Path:
    path = (workspace / value).resolve()
    if path != workspace and workspace not in path.parents:
        raise InputError(name, f"{value!r} points outside the workspace {workspace}")
    return path


def relative(path: Path, workspace: Path) -> str:
    try:
        return str(path.relative_to(workspace)) or "."
    except ValueError:
        return str(path)
