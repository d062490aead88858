"""What the job summary says about the checkout: the refs the run fetched, and credentials on disk."""

from __future__ import annotations

from pathlib import Path

from runner.action.workspace import relative
from runner.engine.aio import run_sync
from runner.engine.isolation import credential_keys
from runner.github import ActionsLog
from runner.report.results import RunReport

__all__ = ["checkout_notes", "git_dir_in_workspace"]


def git_dir_in_workspace(repo: Path, workspace: Path) -> list[Path]:
    """The checkout's ``.git`` directory, if it is inside the workspace: the run's fetches (objects,
    ``shallow``, ``packed-refs``, module repositories) write there as the container's root, and those
    files must go back to the workspace's owner like everything else we create."""
    for candidate in (repo, *repo.parents):
        git_dir = candidate / ".git"
        if git_dir.is_dir():
            return [git_dir] if git_dir.resolve().is_relative_to(workspace.resolve()) else []
        if candidate.resolve() == workspace.resolve():
            break
    return []


def checkout_notes(report: RunReport, repo: Path, workspace: Path, log: ActionsLog) -> list[str]:
    """Summary lines: one naming the fetched refs (a slow first step explained), one warning per
    credential the checkout persisted (the worktrees do not see it; the workspace's files do)."""
    notes: list[str] = []
    fetched = report.extra.get("fetched")
    if isinstance(fetched, dict) and fetched.get("refs"):
        refs = ", ".join(str(ref) for ref in fetched["refs"])
        notes.append(f"Fetched from {fetched.get('remote', 'origin')} (not in the checkout): {refs}")
    keys = run_sync(credential_keys(repo))
    if keys:
        where = f"{relative(repo, workspace)}/.git/config".removeprefix("./")
        message = (
            f"The checkout persisted credentials ({', '.join(keys)} in {where}). The hypotheses' worktrees "
            "do not see them through git, but any command that reads the workspace's files can; for "
            "untrusted hypotheses check out with `persist-credentials: false`."
        )
        log.warning(message, title="worktree-runner")
        notes.append(f"⚠️ {message}")
    return notes
