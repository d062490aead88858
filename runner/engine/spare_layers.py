"""Pristine hypothesis layers kept between runs, beside their template in the layer cache.

Why: a layer is a dozen small files, and on a slow disk each costs up to a millisecond to create; a run's
first wave makes one per slot before its command can start (8 at ``max-parallel: 8``: 25-80 ms on this
machine, bench/README.md), every run. A layer that a hypothesis left exactly as it was made is, byte for
byte, what a new one would be, so instead of being removed at the end of the run it is moved into the
template's cache entry (``<entry>/spares/``), and the next run's first wave takes it from there.

Trust: a spare is named by the digest of its signature (:mod:`runner.engine.layer_signature`: every
entry's mode, owner, links, inode, size and backdated mtime). A run takes one by renaming it into its own
scratch directory (atomic: two runs never get the same one), then takes its signature again; only an
exact match, owned by this user, is used. Anything else (a file written into it while it waited, a
changed mode) is removed. Only layers that hold no path of their own are kept (they are moved, so they
must not mention where they were made). With the layer cache off there are no spares.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import uuid
from pathlib import Path

from runner.engine import layer_signature
from runner.engine.layer_signature import Signature

__all__ = ["MAX_SPARES", "SpareLayers"]

MAX_SPARES = 16  # per template entry; more than any first wave needs, a few hundred inodes at most
_NAME = re.compile(r"^([0-9a-f]{32})-[0-9a-f]{8}$")


class SpareLayers:
    """The spares of one template entry (``directory``: ``<entry>/spares``)."""

    def __init__(self, directory: Path, limit: int = MAX_SPARES) -> None:
        self.directory = directory
        self.limit = limit
        self._candidates: collections.deque[str] | None = None
        self._room: int | None = None  # how many more it takes (counted at the first keep)

    def _names(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.directory) if _NAME.match(n)]
        except OSError:
            return []

    def claim(self, dest: Path, names: tuple[str, ...]) -> Signature | None:
        """Move a spare to ``dest`` (which must not exist) and return its signature; None when no spare
        that can be trusted is left (then ``dest`` does not exist).

        ``names``: the entries a new layer has, in signature order. Only they are looked at: an entry
        added anywhere shows in its directory's mtime, which is part of the signature.
        """
        if self._candidates is None:  # listed once per run; another run may take some meanwhile
            self._candidates = collections.deque(self._names())
        while self._candidates:
            name = self._candidates.popleft()
            try:
                os.rename(self.directory / name, dest)
            except OSError:
                continue  # taken by another run, or gone
            sig = layer_signature.signature(dest, names)
            match = _NAME.match(name)
            if (
                sig is not None
                and match is not None
                and layer_signature.digest(sig) == match.group(1)
                and all(entry[2] == os.geteuid() for entry in sig)
            ):
                return sig
            shutil.rmtree(dest, ignore_errors=True)  # what remains goes with the run's scratch directory
        return None

    def keep(self, home: Path, made: Signature) -> bool:
        """Move ``home`` in as a spare if it still matches ``made`` (its signature when it was made) and
        there is room; False: it stays where it is (the caller removes it)."""
        if layer_signature.signature(home, tuple(entry[0] for entry in made)) != made:
            return False
        if self._room is None:
            self._room = self.limit - len(self._names())
        if self._room <= 0:
            return False
        try:
            self.directory.mkdir(mode=0o700, exist_ok=True)
            os.rename(home, self.directory / f"{layer_signature.digest(made)}-{uuid.uuid4().hex[:8]}")
        except OSError:
            return False  # another file system (EXDEV), an unwritable cache: not kept
        self._room -= 1
        return True
