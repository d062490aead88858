"""An opt-in cache of hypothesis results, keyed by what decides the result.

Key (SHA-256 of a JSON document): the **tree id** of the worktree after its patch, taken before anything
runs (a copy of the worktree's index, ``git add -A``, ``git write-tree``: untracked files count, ignored
ones do not, the real index is untouched), the command and setup argv, the environment settings (the
hypothesis' effective ``env``, ``timeout``, ``junit``, ``per-test``, ``reruns``), the Python that runs
worktree-runner and worktree-runner's version. Not in the key: the hypothesis' name (two hypotheses with
the same tree share a result) and anything outside the tree a command reads (files in ``$HOME``, the
network, installed packages): a user who depends on those changes ``cache-dir`` or runs ``--no-cache``.

Only ``passed`` and ``failed`` results are stored; ``error``, ``timeout`` and ``cancelled`` never are.
One JSON file per key under ``<cache-dir>/v1/``, written atomically; an unreadable entry is a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from runner.engine.gitutil import git_env
from runner.engine.process import run_captured

__all__ = ["CACHEABLE", "ResultCache", "tree_id"]

CACHEABLE = frozenset({"passed", "failed"})
_FORMAT = "v1"


async def tree_id(worktree: Path) -> str | None:
    """The tree object of ``worktree``'s files as they are now (None if git cannot say)."""
    env = {**git_env(), "LC_ALL": "C"}
    where = ["git", "rev-parse", "--path-format=absolute", "--git-path", "index"]
    found = await run_captured(where, cwd=worktree, env=env, timeout=60)
    if found.returncode != 0:
        return None
    index = Path(found.output.strip())
    with tempfile.TemporaryDirectory(prefix="worktree-runner-index-") as tmp:
        temp_index = Path(tmp) / "index"
        with contextlib.suppress(FileNotFoundError):
            shutil.copyfile(index, temp_index)  # a copy keeps the stat cache: only changed files are hashed
        env["GIT_INDEX_FILE"] = str(temp_index)
        added = await run_captured(["git", "add", "-A"], cwd=worktree, env=env, timeout=600)
        if added.returncode != 0:
            return None
        written = await run_captured(["git", "write-tree"], cwd=worktree, env=env, timeout=120)
    tree = written.output.strip()
    return tree if written.returncode == 0 and len(tree) in (40, 64) else None


class ResultCache:
    """Results stored under ``directory`` (created on first write)."""

    def __init__(self, directory: Path, *, runner_version: str) -> None:
        self.directory = directory
        self.runner_version = runner_version

    def key(
        self,
        tree: str,
        *,
        command: Sequence[str],
        setup: Sequence[str] | None,
        settings: Mapping[str, Any],
    ) -> str:
        document = {
            "format": _FORMAT,
            "tree": tree,
            "command": list(command),
            "setup": list(setup) if setup is not None else None,
            "settings": dict(settings),
            "runner": self.runner_version,
            "python": [sys.version, platform.machine()],
        }
        text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / _FORMAT / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("key") != key or data.get("status") not in CACHEABLE:
            return None
        result = data.get("result")
        return result if isinstance(result, dict) else None

    def put(self, key: str, result: Mapping[str, Any]) -> None:
        status = result.get("status")
        if status not in CACHEABLE:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"key": key, "status": status, "result": dict(result)}, ensure_ascii=False)
        fd, tmp = tempfile.mkstemp(prefix=".entry-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
