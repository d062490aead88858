"""Annotation budget and path mapping.

The runner turns at most 10 errors, 10 warnings and 10 notices per step into
annotations (further ones are only logged), and a job shows at most 50.  The
budget emits at most :data:`MAX_ANNOTATIONS_PER_LEVEL` per level, drops exact
duplicates and counts the rest, so the job summary can say how many were not
annotated.
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partialmethod
from typing import Final, Literal, get_args

from runner.github.commands import ActionsLog, truncate_message

__all__ = [
    "LEVELS",
    "MAX_ANNOTATIONS_PER_LEVEL",
    "Annotation",
    "AnnotationBudget",
    "Level",
    "relative_path",
]

#: Per step and per level (error, warning, notice); the runner's own limit.
MAX_ANNOTATIONS_PER_LEVEL: Final = 10

Level = Literal["error", "warning", "notice"]
LEVELS: Final[tuple[Level, ...]] = get_args(Level)


def _normalise(path: str) -> str:
    return posixpath.normpath(path.replace("\\", "/"))


def _inside(path: str, root: str) -> str | None:
    """``path`` relative to ``root`` if strictly inside it, else ``None``."""
    if root == "/":
        rel = path[1:]
    elif path.startswith(root + "/"):
        rel = path[len(root) + 1 :]
    else:
        return None
    return rel or None


def relative_path(path: str, workspace: str | None, worktree_roots: Iterable[str] = ()) -> str | None:
    """Map ``path`` to the repository-relative path GitHub can link to.

    * inside one of ``worktree_roots`` (the innermost wins): relative to that
      worktree, e.g. ``…/worktrees/003-fix-a/src/x.py`` -> ``src/x.py``;
    * else inside ``workspace``: relative to the workspace;
    * a relative path that stays inside its base is returned normalised;
    * anything else (outside every root, or escaping with ``..``): ``None``.
    """
    if not path:
        return None
    norm = _normalise(path)
    if not norm.startswith("/"):
        if norm == "." or norm == ".." or norm.startswith("../"):
            return None
        return norm
    best: str | None = None
    best_len = -1
    for root in worktree_roots:
        if not root:
            continue
        norm_root = _normalise(root)
        rel = _inside(norm, norm_root)
        if rel is not None and len(norm_root) > best_len:
            best, best_len = rel, len(norm_root)
    if best is not None:
        return best
    if workspace:
        return _inside(norm, _normalise(workspace))
    return None


@dataclass(frozen=True)
class Annotation:
    """One annotation as it would be emitted (after path mapping/truncation)."""

    level: Level
    message: str
    file: str | None = None
    line: int | None = None
    end_line: int | None = None
    col: int | None = None
    end_column: int | None = None
    title: str | None = None


class AnnotationBudget:
    """Emits annotations through an :class:`ActionsLog` within the per-step budget.

    ``workspace`` / ``worktree_roots``: absolute ``file`` arguments are mapped
    with :func:`relative_path`; a file outside all of them is left out (and so
    are its line/column numbers).  Thread-safe.
    """

    def __init__(
        self,
        log: ActionsLog | None = None,
        *,
        limit: int = MAX_ANNOTATIONS_PER_LEVEL,
        workspace: str | None = None,
        worktree_roots: Iterable[str] = (),
    ) -> None:
        self.log = log if log is not None else ActionsLog()
        self.limit = limit
        self.workspace = workspace
        self.worktree_roots = tuple(worktree_roots)
        self._emitted: dict[Level, int] = dict.fromkeys(LEVELS, 0)
        self._overflow: dict[Level, int] = dict.fromkeys(LEVELS, 0)
        self._seen: set[Annotation] = set()
        self._lock = threading.Lock()

    @property
    def emitted(self) -> dict[Level, int]:
        """Annotations written so far, per level (a copy)."""
        with self._lock:
            return dict(self._emitted)

    @property
    def overflow(self) -> dict[Level, int]:
        """Distinct annotations not written because the budget was spent, per level."""
        with self._lock:
            return dict(self._overflow)

    @property
    def overflow_total(self) -> int:
        with self._lock:
            return sum(self._overflow.values())

    def annotate(
        self,
        level: Level,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        end_line: int | None = None,
        col: int | None = None,
        end_column: int | None = None,
        title: str | None = None,
    ) -> bool:
        """Emit one annotation; ``False`` if it was a duplicate or over budget."""
        if level not in LEVELS:
            raise ValueError(f"unknown annotation level {level!r}")
        mapped = relative_path(file, self.workspace, self.worktree_roots) if file else None
        if mapped is None:
            line = end_line = col = end_column = None
        note = Annotation(
            level=level,
            message=truncate_message(message),
            file=mapped,
            line=line,
            end_line=end_line,
            col=col,
            end_column=end_column,
            title=title or None,
        )
        with self._lock:
            if note in self._seen:
                return False
            self._seen.add(note)
            if self._emitted[level] >= self.limit:
                self._overflow[level] += 1
                return False
            self._emitted[level] += 1
        self.emit(note)
        return True

    def emit(self, note: Annotation) -> None:
        """Write ``note`` without budget accounting."""
        writer = {"error": self.log.error, "warning": self.log.warning, "notice": self.log.notice}[note.level]
        writer(
            note.message,
            file=note.file,
            line=note.line,
            end_line=note.end_line,
            col=note.col,
            end_column=note.end_column,
            title=note.title,
        )

    error = partialmethod(annotate, "error")
    warning = partialmethod(annotate, "warning")
    notice = partialmethod(annotate, "notice")
