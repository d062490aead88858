"""Telling whether a hypothesis' directory is still exactly as it was made.

A signature holds (relative path, mode, owner, group, links, inode, size, mtime) of every entry. Every
mtime is set into the past when the directory is made (:func:`backdate`), so a write to a file gives that
file a current mtime, and a creation, removal or rename in a directory gives the directory one (a new
entry in a new subdirectory shows in its parent); chmod and chown show in mode and owner. Equal
signatures mean a later hypothesis cannot tell the directory from a new one.

A rename of the directory itself keeps all of this (inode, links and mtimes; only ctimes move, and they
are not compared), which is what lets a spare layer move between runs (:mod:`runner.engine.spare_layers`).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

__all__ = ["Signature", "backdate", "digest", "signature"]

Signature = tuple[tuple[str, int, int, int, int, int, int, int], ...]
_BACKDATE_NS = 10 * 1_000_000_000


def signature(root: Path, entries: tuple[str, ...] | None = None) -> Signature | None:
    """The signature of the tree at ``root``: of ``entries`` (paths relative to it) or, without them, of
    everything below it, in path order. None: it cannot be read (not reusable)."""
    if entries is None:
        found: list[str] = ["."]
        for dirpath, dirnames, filenames in os.walk(root):
            rel = os.path.relpath(dirpath, root)
            found.extend(os.path.normpath(os.path.join(rel, n)) for n in (*dirnames, *filenames))
        entries = tuple(sorted(found))
    try:
        return tuple(_entry(rel, os.lstat(os.path.join(root, rel))) for rel in entries)
    except OSError:
        return None


def _entry(path: str, st: os.stat_result) -> tuple[str, int, int, int, int, int, int, int]:
    return path, st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_ino, st.st_size, st.st_mtime_ns


def digest(sig: Signature) -> str:
    """A short fixed-length name for ``sig`` (to name a directory by what it must still hold)."""
    return hashlib.sha256(repr(sig).encode()).hexdigest()[:32]


def backdate(root: Path) -> None:
    """Set the mtime of everything below ``root`` (and its own) ten seconds into the past.

    With coarse file-system clocks a write right after the directory was made could otherwise keep the
    mtime it was made with; a past mtime makes any later change visible to :func:`signature`.
    """
    past = time.time_ns() - _BACKDATE_NS
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.utime(os.path.join(dirpath, name), ns=(past, past), follow_symlinks=False)
    os.utime(root, ns=(past, past), follow_symlinks=False)
