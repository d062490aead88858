"""Submodules in hypothesis worktrees, at the commits each hypothesis records, without a new clone.

``git worktree add`` leaves submodule directories empty, and ``git submodule update --init`` in a
worktree clones each module again from the network. The checkout already has the module repositories
(``actions/checkout`` with ``submodules: true`` puts them in ``.git/modules/<name>``), so each
submodule becomes a worktree of a private repository that borrows that module repository's objects
(``runner.engine.isolation``: no credentials in its config, same as the superproject's):

1. the gitlinks of the worktree's index (``git ls-files --stage``, mode 160000) give path and commit;
   ``.gitmodules`` of that commit gives the module's name, hence ``<git dir>/modules/<name>``;
2. a commit the module repository lacks is fetched from the module's own remote (``origin``, with the
   credentials the checkout gave it), by SHA, at depth 1 when the module repository is shallow, into
   ``refs/worktree-runner/<run>/...`` (deleted at the end); everything else needs no network;
3. ``git worktree add --detach --no-checkout`` + ``git reset --hard`` into the (empty) submodule
   directory; with ``recursive`` the same again inside it.

URLs from ``.gitmodules`` are never used: a hypothesis' ``.gitmodules`` is untrusted (a ``file://``
module can copy files off the machine, CVE-2022-39253), and only the checkout's module repositories,
which the job's checkout step made, are read or fetched into.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path

from runner.engine.fetch import NAMESPACE_ROOT, delete_namespace, delete_namespace_sync
from runner.engine.gitutil import GitError, git
from runner.engine.isolation import make_private_repo, sync_shallow

__all__ = ["ModuleWorktree", "SubmoduleError", "SubmoduleStore"]

_NAME_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class SubmoduleError(RuntimeError):
    """A submodule could not be checked out; the message names it and says why."""


@dataclass(frozen=True)
class ModuleWorktree:
    repo: Path  # the private module repository
    path: Path  # the submodule's directory inside a hypothesis worktree


@dataclass
class SubmoduleStore:
    """The private module repositories of one run (below ``root``) and the refs fetched for them."""

    root: Path
    run_id: str
    recursive: bool
    lock: Callable[[], AbstractAsyncContextManager[None]]
    _private: dict[Path, Path] = field(default_factory=dict)  # source module git dir -> private repo
    _fetched_into: set[Path] = field(default_factory=set)
    _fetch_count: int = 0

    async def checkout(self, worktree: Path, superproject_gitdir: Path) -> list[ModuleWorktree]:
        """Fill every submodule of ``worktree`` (a checked-out worktree of the superproject)."""
        made: list[ModuleWorktree] = []
        try:
            await self._checkout(worktree, superproject_gitdir, made)
        except BaseException:
            await self.remove(made)
            raise
        return made

    async def _checkout(self, worktree: Path, gitdir: Path, made: list[ModuleWorktree]) -> None:
        staged = await git("ls-files", "--stage", "-z", cwd=worktree)
        links: list[tuple[str, str]] = []
        for entry in staged.output.split("\0"):
            meta, _, path = entry.partition("\t")
            parts = meta.split()
            if path and len(parts) == 3 and parts[0] == "160000":
                links.append((path, parts[1]))
        if not links:
            return
        names = await self._names(worktree)
        for path, sha in links:
            name = names.get(path, path)
            source = gitdir / "modules" / name
            if ".." in Path(name).parts or not (source / "objects").is_dir():
                raise SubmoduleError(
                    f"submodule {path!r} (name {name!r}) is not in this checkout: there is no module "
                    f"repository at {source}; check out with actions/checkout `submodules: true`"
                )
            private = await self._private_repo(source)
            await self._ensure_commit(source, private, path, sha)
            target = worktree / path
            async with self.lock():
                try:
                    await git("worktree", "add", "--detach", "--no-checkout", str(target), sha, cwd=private)
                except GitError as exc:
                    raise SubmoduleError(f"submodule {path!r}: {exc}") from None
                made.append(ModuleWorktree(repo=private, path=target))
            try:
                await git("reset", "--hard", "--quiet", cwd=target, timeout=1800)
            except GitError as exc:
                raise SubmoduleError(f"submodule {path!r}: {exc}") from None
            if self.recursive:
                await self._checkout(target, source, made)

    async def _names(self, worktree: Path) -> dict[str, str]:
        """``.gitmodules``: path -> name (the module repository is ``modules/<name>``)."""
        if not (worktree / ".gitmodules").is_file():
            return {}
        listed = await git(
            "config", "--file", ".gitmodules", "--null", "--get-regexp", r"^submodule\..*\.path$",
            cwd=worktree, check=False,
        )  # fmt: skip
        names: dict[str, str] = {}
        for entry in listed.output.split("\0"):
            key, _, value = entry.partition("\n")
            if key.startswith("submodule.") and key.endswith(".path") and value:
                names[value] = key[len("submodule.") : -len(".path")]
        return names

    async def _private_repo(self, source: Path) -> Path:
        source = source.resolve()
        async with self.lock():
            private = self._private.get(source)
            if private is None:
                slug = _NAME_SAFE.sub("-", str(source.relative_to(source.anchor)))[-80:]
                private = self.root / f"{len(self._private):03d}-{slug}.git"
                try:
                    await make_private_repo(source, source, private)
                except (GitError, OSError) as exc:
                    raise SubmoduleError(f"cannot prepare module repository for {source}: {exc}") from None
                self._private[source] = private
            return private

    async def _ensure_commit(self, source: Path, private: Path, path: str, sha: str) -> None:
        present = await git(
            "cat-file", "-e", "--end-of-options", f"{sha}^{{commit}}", cwd=source, check=False
        )
        if present.returncode == 0:
            return
        async with self.lock():  # one fetch at a time per run; a second hypothesis may find it fetched
            present = await git(
                "cat-file", "-e", "--end-of-options", f"{sha}^{{commit}}", cwd=source, check=False
            )
            if present.returncode == 0:
                return
            url = await git("config", "--get", "remote.origin.url", cwd=source, check=False)
            if url.returncode != 0:
                raise SubmoduleError(
                    f"submodule {path!r}: commit {sha} is not in the module repository {source}, which "
                    "has no remote 'origin' to fetch it from"
                )
            shallow = await git("rev-parse", "--is-shallow-repository", cwd=source, check=False)
            self._fetch_count += 1
            slot = f"{NAMESPACE_ROOT}/{self.run_id}/module-{self._fetch_count}"
            result = await git(
                "-c", "gc.auto=0", "-c", "maintenance.auto=false",
                "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--refmap=",
                "--no-recurse-submodules",
                *(["--depth=1"] if shallow.output.strip() == "true" else []),
                "--end-of-options", "origin", f"+{sha}:{slot}",
                cwd=source, check=False, timeout=1800,
            )  # fmt: skip
            self._fetched_into.add(source)
            if result.returncode != 0:
                lines = [line for line in result.output.strip().splitlines() if line.strip()]
                reason = lines[-1] if lines else f"exit code {result.returncode}"
                raise SubmoduleError(
                    f"submodule {path!r}: commit {sha} is not in the checkout and 'git fetch origin {sha}' "
                    f"in its module repository failed: {reason}"
                )
            sync_shallow(source, private)

    async def remove(self, made: list[ModuleWorktree]) -> None:
        """Remove module worktrees, innermost first (they were made outermost first)."""
        for module in reversed(made):
            async with self.lock():
                await git(
                    "worktree", "remove", "--force", "--force", str(module.path), cwd=module.repo, check=False
                )

    async def close(self) -> None:
        for source in self._fetched_into:
            await delete_namespace(source, f"{NAMESPACE_ROOT}/{self.run_id}")
        self._fetched_into.clear()

    def close_sync(self) -> None:
        for source in self._fetched_into:
            delete_namespace_sync(source, f"{NAMESPACE_ROOT}/{self.run_id}")
        self._fetched_into.clear()
