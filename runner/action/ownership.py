"""Give files we created in the workspace back to the workspace's owner.

A Docker action runs as root while the workspace belongs to the runner user (uid 1001 on hosted
runners); root-owned files left there break later steps and the next checkout
(actions/runner#1282).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path


def restore_ownership(workspace: Path, paths: Iterable[Path]) -> int:
    """chown ``paths`` (recursively) to the owner of ``workspace``; returns how many were changed."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return 0
    try:
        st = workspace.stat()
    except OSError:
        return 0
    uid, gid = st.st_uid, st.st_gid
    changed = 0

    def fix(p: Path) -> None:
        nonlocal changed
        with contextlib.suppress(OSError):
            s = p.lstat()
            if (s.st_uid, s.st_gid) != (uid, gid):
                os.lchown(p, uid, gid)
                changed += 1

    for path in paths:
        if not path.exists() and not path.is_symlink():
            continue
        fix(path)
        if path.is_dir() and not path.is_symlink():
            for root, dirs, files in os.walk(path):
                for name in dirs + files:
                    fix(Path(root) / name)
    return changed
