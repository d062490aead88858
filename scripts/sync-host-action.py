#!/usr/bin/env python3
"""Rewrite host/action.yml's inputs, outputs and INPUT_* forwarding from the root action.yml.

The root action.yml is the one source of the action's interface; the host variant repeats it because a
composite action must declare its own inputs and outputs and forward each input itself
(tests/test_host_action.py checks that both stay identical). Run after changing the root's inputs or
outputs: ``python3 scripts/sync-host-action.py`` (``--check`` exits 1 when host/action.yml is stale).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL = re.compile(r"^(?P<key>[a-z]+):", re.MULTILINE)
ENTRY = re.compile(r"^  (?P<name>[a-z0-9-]+):$", re.MULTILINE)
FORWARDED = re.compile(r"^        INPUT_[A-Z0-9-]+: \$\{\{ inputs\.[a-z0-9-]+ \}\}\n", re.MULTILINE)


def section(text: str, key: str) -> tuple[int, int]:
    """Start and end offsets of the top-level ``key:`` block (up to the next top-level key)."""
    starts = {m.group("key"): m.start() for m in TOP_LEVEL.finditer(text)}
    start = starts[key]
    later = [s for s in starts.values() if s > start]
    return start, min(later) if later else len(text)


def synced(root_text: str, host_text: str) -> str:
    i0, i1 = section(root_text, "inputs")
    o0, o1 = section(root_text, "outputs")
    names = ENTRY.findall(root_text[i0:i1])
    entries = list(ENTRY.finditer(root_text[o0:o1]))
    outputs = ["outputs:\n"]
    for k, match in enumerate(entries):
        end = entries[k + 1].start() if k + 1 < len(entries) else o1 - o0
        chunk = root_text[o0:o1][match.start() : end].rstrip("\n") + "\n"
        outputs.append(chunk + f"    value: ${{{{ steps.run.outputs.{match.group('name')} }}}}\n")
    h0, h1 = section(host_text, "inputs")
    host_text = host_text[:h0] + root_text[i0:i1].rstrip("\n") + "\n\n" + host_text[h1:]
    h0, h1 = section(host_text, "outputs")
    host_text = host_text[:h0] + "".join(outputs) + "\n" + host_text[h1:]
    forwarded = "".join(f"        INPUT_{n.upper()}: ${{{{ inputs.{n} }}}}\n" for n in names)
    first = FORWARDED.search(host_text)
    if first is None:
        raise SystemExit("sync-host-action: host/action.yml has no INPUT_* forwarding block to rewrite")
    rest = FORWARDED.sub("", host_text[first.start() :])
    return host_text[: first.start()] + forwarded + rest


def main(argv: list[str]) -> int:
    host = ROOT / "host" / "action.yml"
    new = synced((ROOT / "action.yml").read_text(encoding="utf-8"), host.read_text(encoding="utf-8"))
    if "--check" in argv:
        return 0 if new == host.read_text(encoding="utf-8") else 1
    host.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
