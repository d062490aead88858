"""A file's stamp: what tells, without reading it, that a file or directory is still the one seen before."""

from __future__ import annotations

import os

__all__ = ["Stamp", "file_stamp"]

Stamp = list[int] | None


def file_stamp(path: str | os.PathLike[str]) -> Stamp:
    """[inode, size, mtime ns, ctime ns] of ``path`` (a last symlink not followed), or None if absent.

    A list, not a tuple, so that a stamp read back from JSON compares equal to a fresh one.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
