#!/usr/bin/env python3
"""Point an action.yml at a prebuilt image: the released action.yml.

    scripts/release-action-yml.py --image ghcr.io/owner/worktree-runner:1.2.3 [--digest sha256:…]
                                  [--action action.yml] [--output FILE]

The development branch keeps ``runs.image: Dockerfile`` (so ``uses: ./`` tests the code at hand); a
release replaces exactly that line with ``image: "docker://<image>[@<digest>]"`` and nothing else: the
file is edited as text (comments, order and quoting stay), then both versions are parsed and compared
so that every other key (inputs, outputs, branding, runs.using …) is provably identical. Any problem
is one line on stderr naming the option or the file, exit code 2, and no file written.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

# registry[:port]/path[/path…]:tag, lower-case repository path (what `docker push` accepts).
IMAGE_RE = re.compile(
    r"(?P<registry>[a-z0-9]+(?:[.-][a-z0-9]+)*(?::[0-9]{1,5})?)"
    r"(?P<path>(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+)"
    r":(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})"
)
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_RUNS_RE = re.compile(r"runs:\s*(#.*)?")
_IMAGE_LINE_RE = re.compile(r"(?P<indent>[ ]+)image:(?P<value>[^#\n]*)(?P<comment>#.*)?")


class ReleaseError(Exception):
    """A bad option or action.yml; the message names which."""


def released_text(text: str, image_ref: str, source: str = "action.yml") -> str:
    """``text`` with ``runs.image`` replaced by ``docker://image_ref``. Raises ReleaseError."""
    lines = text.splitlines(keepends=True)
    runs_at = next((i for i, line in enumerate(lines) if _RUNS_RE.fullmatch(line.rstrip("\r\n"))), None)
    if runs_at is None:
        raise ReleaseError(f"{source}: no top-level 'runs:' block")
    image_at = None
    block_indent: str | None = None
    for i in range(runs_at + 1, len(lines)):
        line = lines[i].rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            break  # the next top-level key: the runs block has ended
        indent = line[: len(line) - len(line.lstrip(" "))]
        if block_indent is None:
            block_indent = indent
        match = _IMAGE_LINE_RE.fullmatch(line)
        if match and match.group("indent") == block_indent:
            image_at = i
            break
    if image_at is None:
        raise ReleaseError(f"{source}: runs.image not found")
    ending = lines[image_at][len(lines[image_at].rstrip("\r\n")) :]
    lines[image_at] = f'{block_indent}image: "docker://{image_ref}"{ending}'
    new_text = "".join(lines)
    _check_only_image_changed(text, new_text, image_ref, source)
    return new_text


def _check_only_image_changed(old_text: str, new_text: str, image_ref: str, source: str) -> None:
    try:
        old: Any = yaml.safe_load(old_text)
        new: Any = yaml.safe_load(new_text)
    except yaml.YAMLError as exc:
        raise ReleaseError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(old, dict) or not isinstance(old.get("runs"), dict):
        raise ReleaseError(f"{source}: runs is not a mapping")
    if old["runs"].get("using") != "docker":
        raise ReleaseError(f"{source}: runs.using is {old['runs'].get('using')!r}, not 'docker'")
    if new["runs"].get("image") != f"docker://{image_ref}":
        raise ReleaseError(f"{source}: runs.image could not be rewritten (unusual layout)")
    old_rest = {**old, "runs": {k: v for k, v in old["runs"].items() if k != "image"}}
    new_rest = {**new, "runs": {k: v for k, v in new["runs"].items() if k != "image"}}
    if old_rest != new_rest:
        raise ReleaseError(f"{source}: rewriting runs.image changed other keys")


def image_reference(image: str, digest: str | None) -> str:
    if image.startswith("docker://"):
        image = image[len("docker://") :]
    if not IMAGE_RE.fullmatch(image):
        raise ReleaseError(
            f"--image: {image!r} is not registry/name:tag (lower-case name, a tag, e.g. "
            "ghcr.io/owner/worktree-runner:1.2.3)"
        )
    if digest is None or digest == "":
        return image
    if not DIGEST_RE.fullmatch(digest):
        raise ReleaseError(f"--digest: {digest!r} is not sha256:<64 hex digits>")
    return f"{image}@{digest}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", required=True, help="registry/name:tag of the pushed image")
    parser.add_argument("--digest", help="the pushed manifest's digest (sha256:…): pins the release")
    parser.add_argument("--action", type=Path, default=Path("action.yml"), help="action.yml to read")
    parser.add_argument("--output", type=Path, help="where to write (default: replace --action)")
    args = parser.parse_args(argv)
    try:
        ref = image_reference(args.image, args.digest)
        try:
            text = args.action.read_text(encoding="utf-8")
        except OSError as exc:
            raise ReleaseError(f"--action: cannot read {args.action}: {exc.strerror}") from None
        new_text = released_text(text, ref, source=str(args.action))
        target: Path = args.output or args.action
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".action.", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(new_text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except ReleaseError as exc:
        print(f"release-action-yml: error: {exc}", file=sys.stderr)
        return 2
    print(f"{target}: runs.image = docker://{ref}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
