"""Helpers shared by the benchmark scripts (imported as a sibling module: run them as scripts)."""

from __future__ import annotations

import math
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


def busy_cpu_s() -> float | None:
    """CPU seconds the whole machine has been busy (all CPUs; steal counts as busy: not ours to use)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cell(x: float | None, digits: int = 3) -> str:
    """A table cell: ``-`` for a missing or NaN value."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}"


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
