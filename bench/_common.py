"""Helpers shared by the benchmark scripts (imported as a sibling module: run them as scripts)."""

from __future__ import annotations

import os
from pathlib import Path


def fs_type(path: str | Path) -> str:
    """The file system type of the mount holding ``path`` (from /proc/self/mounts), or "unknown"."""
    best, fstype = "", "unknown"
    target = os.path.realpath(path)
    try:
        with open("/proc/self/mounts", encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount = parts[1]
                inside = target == mount or target.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, fstype = mount, parts[2]
    except OSError:
        pass
    return fstype
