"""A private repository for the hypotheses' worktrees, whose config carries no credentials.

``actions/checkout`` (``persist-credentials: true``, its default) writes the job's token into the
checkout's ``.git/config`` (v4/v5: ``http.https://github.com/.extraheader``; v6+: an ``includeIf`` to a
file under ``$RUNNER_TEMP``), and that config is common to every worktree of the repository: any
hypothesis could read the token with ``git config --get-regexp extraheader``. So the worktrees are not
made from the checkout but from a repository of our own, below the run's private directory:

* ``git init --bare`` with the checkout's object format and no template (no hooks);
* ``objects/info/alternates`` naming the checkout's object store: no object is copied (``git clone
  --shared`` does the same), and the runner's own fetches, made in the checkout with the checkout's
  credentials, are visible at once;
* the checkout's ``shallow`` file (copied after fetching), so history ends where it ends there;
* the checkout's refs (branches, tags, remote-tracking refs; not ours) as a ``packed-refs`` file, so
  ``git describe`` or setuptools-scm in a hypothesis see what they would have seen;
* the checkout's local config **without** the sections that hold or point at credentials or at other
  repositories (``http``, ``credential``, ``include``, ``includeIf``, ``url``, ``remote``, ...), and
  ``lfs.storage`` pointing at the checkout's LFS objects when it has some.

Worktrees are created and removed with the same two-phase scheme as before, in this repository; the
checkout's ``git worktree list`` is never touched. The whole thing is deleted with the run's directory.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from runner.engine.gitutil import git

__all__ = ["credential_keys", "make_private_repo", "sync_shallow"]

# Config sections (and single keys) that are never copied: credentials, includes (the v6 token file),
# URL rewrites, remotes (URLs may embed a token), and what only describes the checkout itself.
_DENIED_SECTIONS = frozenset({
    "http", "credential", "include", "includeif", "url", "remote", "branch", "submodule", "gc",
    "maintenance", "extensions", "safe", "lfs", "pack", "fetch", "protocol", "uploadpack",
})  # fmt: skip
_DENIED_KEYS = frozenset({
    "core.bare", "core.worktree", "core.repositoryformatversion", "core.hookspath", "core.sparsecheckout",
    "core.sparsecheckoutcone", "core.sshcommand", "core.askpass", "core.gitproxy",
})  # fmt: skip
# A value that looks like a credential is dropped whatever its key.
_SECRET_VALUE = re.compile(r"authorization:|x-access-token|://[^/@\s]+:[^/@\s]+@", re.IGNORECASE)
NAMESPACE_PREFIX = "refs/worktree-runner/"


def _copyable(key: str, value: str) -> bool:
    lowered = key.lower()
    section = lowered.split(".", 1)[0]
    return section not in _DENIED_SECTIONS and lowered not in _DENIED_KEYS and not _SECRET_VALUE.search(value)


async def make_private_repo(source: Path, common_dir: Path, dest: Path) -> None:
    """Create the private repository ``dest`` (see the module docstring) for checkout ``source``."""
    fmt = await git("rev-parse", "--show-object-format", cwd=source, check=False)
    object_format = fmt.output.strip() if fmt.returncode == 0 and fmt.output.strip() else "sha1"
    await git(
        "init", "--quiet", "--bare", "--template=", f"--object-format={object_format}", str(dest), cwd=source
    )  # fmt: skip
    info = dest / "objects" / "info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "alternates").write_text(f"{(common_dir / 'objects').resolve()}\n", encoding="utf-8")
    sync_shallow(common_dir, dest)
    listed = await git("config", "--local", "--list", "-z", cwd=source, check=False)
    entries = [entry.split("\n", 1) for entry in listed.output.split("\0") if "\n" in entry]
    for key, value in entries:
        if _copyable(key, value):
            await git("config", "--file", str(dest / "config"), "--add", key, value, cwd=dest, check=False)
    await _copy_promisor(source, dest)
    if (common_dir / "lfs" / "objects").is_dir():
        # LFS content the checkout downloaded (actions/checkout `lfs: true`) is smudged from there.
        lfs = str((common_dir / "lfs").resolve())
        await git("config", "--file", str(dest / "config"), "lfs.storage", lfs, cwd=dest, check=False)
    refs = await git("for-each-ref", "--format=%(objectname) %(refname)", cwd=source, check=False)
    lines = [
        line
        for line in refs.output.splitlines()
        if " " in line and not line.split(" ", 1)[1].startswith(NAMESPACE_PREFIX)
    ]
    if lines:
        (dest / "packed-refs").write_text("".join(f"{line}\n" for line in sorted(lines, key=_refname)))
    head = await git("rev-parse", "--verify", "--quiet", "HEAD", cwd=source, check=False)
    if head.returncode == 0 and head.output.strip():
        (dest / "HEAD").write_text(head.output.strip() + "\n", encoding="utf-8")


async def _copy_promisor(source: Path, dest: Path) -> None:
    """A partial clone (actions/checkout ``filter:`` / ``sparse-checkout:``) fetches missing blobs lazily
    from its promisor remote. Keep that remote's URL (without credentials: a public repository needs
    none; a private one then fails with git's message), so worktrees can still be checked out."""
    listed = await git("config", "--local", "--list", "-z", cwd=source, check=False)
    entries = dict(entry.split("\n", 1) for entry in listed.output.split("\0") if "\n" in entry)
    remotes = {
        key[len("remote.") : -len(".promisor")]
        for key, value in entries.items()
        if key.startswith("remote.") and key.endswith(".promisor") and value.lower() == "true"
    }
    if entries.get("extensions.partialclone"):
        remotes.add(entries["extensions.partialclone"])
    target = str(dest / "config")
    for remote in sorted(remotes):
        url = entries.get(f"remote.{remote}.url", "")
        if not url or _SECRET_VALUE.search(url):
            continue
        for key in ("url", "promisor", "partialclonefilter"):
            value = entries.get(f"remote.{remote}.{key}")
            if value is not None:
                await git("config", "--file", target, f"remote.{remote}.{key}", value, cwd=dest, check=False)
        if entries.get("extensions.partialclone") == remote:
            await git("config", "--file", target, "extensions.partialclone", remote, cwd=dest, check=False)


def _refname(line: str) -> str:
    return line.split(" ", 1)[1]


def sync_shallow(common_dir: Path, dest: Path) -> None:
    """Copy the checkout's ``shallow`` file (it grows when the runner fetches at a depth)."""
    shallow = common_dir / "shallow"
    target = dest / "shallow"
    if shallow.is_file():
        tmp = dest / "shallow.worktree-runner.tmp"
        shutil.copyfile(shallow, tmp)
        os.replace(tmp, target)
    elif target.exists():
        target.unlink()


async def credential_keys(source: Path) -> list[str]:
    """Names (never values) of the credential settings in the checkout's own config.

    These stay readable on disk by anything that can read the checkout's ``.git/config`` (the
    workspace, in the Docker action); the worktrees do not see them through git.
    """
    listed = await git("config", "--local", "--name-only", "--list", cwd=source, check=False)
    found: list[str] = []
    for key in listed.output.splitlines():
        lowered = key.lower()
        if lowered.startswith("http.") and lowered.endswith(".extraheader"):
            found.append(key)
        elif lowered.startswith("includeif.") and lowered.endswith(".path"):
            target = await git("config", "--local", "--get-all", key, cwd=source, check=False)
            if "credentials" in target.output:
                found.append(key)
        elif lowered.startswith("credential.") or lowered == "core.askpass":
            found.append(key)
    return list(dict.fromkeys(found))
