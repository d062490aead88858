"""The template layer of a base interpreter, kept between runs (per user, as pip keeps its cache).

Why: making it costs a Python start (the probe, which also makes the virtualenv) and a few dozen small
files (the console scripts), 60-150 ms per run on the 2-CPU machine (bench/README.md), all of it before
the first hypothesis can start. Kept, it costs a few hundred ``lstat`` calls.

An entry is trusted only when nothing it was made from changed, checked in two steps:

1. its *key* (part of its name), known before anything runs: the code that makes layers, the base
   interpreter as found on PATH (its path; the resolved file's inode, size, mtime and ctime; a
   ``pyvenv.cfg`` beside it), the PATH and every directory on it (a script added or removed changes its
   directory), and the variables that move site directories. A base that is not an executable binary
   (a pyenv shim, a wrapper script) is never cached: what it runs can change with no file changing;
2. what only the probe knew: the entry records the stamps (inode, size, mtime, ctime) of the base's
   scripts directories, its site directories, its user site and every script that was copied, and of
   every file of its own; all must match (so nothing was installed, upgraded or written since).

Entries are never changed once published (a new build is a new entry, named ``<key>-<random>`` and
published by a rename); the ``MAX_ENTRIES`` most recently used are kept. ``WORKTREE_RUNNER_LAYER_CACHE=0``
turns the cache off; ``WORKTREE_RUNNER_LAYER_CACHE=<dir>`` moves it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runner.engine.filestamp import Stamp, file_stamp

__all__ = ["MAX_ENTRIES", "LayerCache", "cache_root"]

logger = logging.getLogger("worktree_runner")

MAX_ENTRIES = 8
_VERSION = 1
_KEEP_IN_USE_S = 3600.0  # an entry used this recently may serve a running run: never removed
# Variables that change which site directories an interpreter has (or where its user site is).
_SITE_VARIABLES = ("PYTHONHOME", "PYTHONUSERBASE", "PYTHONNOUSERSITE", "PYTHONPLATLIBDIR", "HOME")
_ELF = b"\x7fELF"
_RECORD = "record.json"

def cache_root(env: Mapping[str, str]) -> Path | None:
    """Where entries live, or None when the cache is off."""
    name = "WORKTREE_RUNNER_LAYER_CACHE"
    setting = (env.get(name) or os.environ.get(name, "")).strip()
    if setting.lower() in {"0", "false", "no", "off"}:
        return None
    if setting:
        return Path(setting)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "worktree-runner" / f"layers-v{_VERSION}"


def _is_binary(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == _ELF
    except OSError:
        return False


def _tree_stamps(root: Path) -> dict[str, Stamp]:
    stamps: dict[str, Stamp] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            full = os.path.join(dirpath, name)
            stamps[os.path.relpath(full, root)] = file_stamp(full)
    return stamps


class LayerCache:
    """The entries for one (code, base interpreter, PATH, site variables); see the module docstring."""

    def __init__(self, root: Path, key: str) -> None:
        self.root = root
        self.key = key

    @classmethod
    def for_base(cls, python: str, env: Mapping[str, str], code: Iterable[str]) -> LayerCache | None:
        """The cache for this base, or None (cache off, or a base that is not a binary)."""
        root = cache_root(env)
        real = os.path.realpath(python)
        if root is None or not _is_binary(real):
            return None
        bindir = os.path.dirname(python)
        search_path = env.get("PATH") or ""
        material: dict[str, Any] = {
            "version": _VERSION,
            "code": hashlib.sha256("\0".join(code).encode()).hexdigest(),
            "python": python,
            "real": real,
            "real_stamp": file_stamp(real),
            "pyvenv": [file_stamp(os.path.join(d, "pyvenv.cfg")) for d in (bindir, os.path.dirname(bindir))],
            "path": search_path,
            "path_dirs": [file_stamp(d) for d in search_path.split(os.pathsep) if d],
            "variables": {name: env.get(name) for name in _SITE_VARIABLES},
        }
        return cls(root, hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32])

    def load(self) -> tuple[Path, dict[str, Any]] | None:
        """(entry directory, its record) of the newest entry that can be trusted, or None."""
        try:
            candidates = [p for p in self.root.iterdir() if p.name.startswith(self.key + "-")]
        except OSError:
            return None
        candidates.sort(key=lambda p: (file_stamp(p / _RECORD) or [0, 0, 0, 0])[2], reverse=True)
        for entry in candidates:
            record = self._trusted(entry)
            if record is not None:
                with contextlib.suppress(OSError):
                    os.utime(entry / _RECORD)  # recently used
                return entry, record
        return None

    def _trusted(self, entry: Path) -> dict[str, Any] | None:
        try:
            record = json.loads((entry / _RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("key") != self.key:
            return None
        watched, own = record.get("watched"), record.get("own")
        if not isinstance(watched, dict) or not isinstance(own, dict):
            return None
        if any(file_stamp(path) != stamp for path, stamp in watched.items()):
            return None
        if _tree_stamps(entry / "layer") != own:
            return None
        return record

    def publish(self, layer: Path, data: dict[str, Any], watch: Iterable[str]) -> Path | None:
        """Copy ``layer`` (holding ``template/`` and ``scripts/``) in as a new entry; None if that failed.

        ``watch``: the paths whose stamps must stay as they are now for the entry to be trusted.
        """
        staging: Path | None = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
            for part in ("template", "scripts"):
                shutil.copytree(layer / part, staging / "layer" / part, symlinks=True)
            entry = self.root / f"{self.key}-{uuid.uuid4().hex[:8]}"
            os.rename(staging, entry)  # inodes and times stay: the stamps below hold after it
            staging = None
            record = {
                "key": self.key, "data": data, "watched": {p: file_stamp(p) for p in dict.fromkeys(watch)},
                "own": _tree_stamps(entry / "layer"),
            }  # fmt: skip
            (entry / _RECORD).write_text(json.dumps(record), encoding="utf-8")
        except OSError as exc:
            logger.warning("worktree-runner: layer cache %s not written (WORKTREE_RUNNER_LAYER_CACHE): %s",
                           self.root, exc)  # fmt: skip
            return None
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            self._trim()
        return entry

    def _trim(self) -> None:
        """Keep the ``MAX_ENTRIES`` most recently used entries (and any used within the last hour)."""
        now = time.time_ns()
        entries = []
        for child in self.root.iterdir():
            stamp = file_stamp(child / _RECORD) or file_stamp(child)  # a staging directory: its own time
            entries.append((stamp[2] if stamp else 0, child))
        entries.sort(reverse=True)
        for used, child in entries[MAX_ENTRIES:]:
            if now - used > _KEEP_IN_USE_S * 1e9:
                shutil.rmtree(child, ignore_errors=True)
