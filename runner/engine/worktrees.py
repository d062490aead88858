"""One git worktree per hypothesis, created race-free and always removed.

Concurrent ``git worktree add`` is racy (git 2.39 fails 6-33% of adds at 8-32-way concurrency:
"failed to read .git/worktrees/<id>/commondir"). Creation is therefore split in two phases:

1. ``git worktree add --detach --no-checkout <dir> <sha>`` — touches the shared
   ``.git/worktrees``; a few milliseconds; serialised by a lock (an asyncio lock inside this
   process, ``flock`` on the private repository's git dir).
2. ``git reset --hard`` inside the new worktree — the actual checkout, which only touches that
   worktree's own index, so it runs concurrently.

Removal touches ``.git/worktrees`` too and takes the same lock.

The worktrees belong to a private repository below the run's directory that borrows the checkout's
objects (``runner.engine.isolation``): its config has no credentials, so a hypothesis cannot read
the job's token through git, and the checkout's own ``git worktree list`` is never touched.

Refs never reach ``worktree add``: they are resolved with ``rev-parse --verify --end-of-options
<ref>^{commit}`` and only the SHA is passed on, so ``--orphan`` or ``-bevil`` can never be parsed as options.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from runner.config import Hypothesis
from runner.engine.fetch import (
    NAMESPACE_ROOT,
    FetchOutcome,
    FetchSettings,
    delete_namespace,
    delete_namespace_sync,
    fetch_missing,
)
from runner.engine.gitutil import GitError, git
from runner.engine.isolation import make_private_repo, sync_shallow
from runner.engine.naming import safe_name
from runner.engine.submodules import ModuleWorktree, SubmoduleError, SubmoduleStore

__all__ = ["Worktree", "WorktreeError", "WorktreeManager", "default_worktree_base"]

_SHA_LEN = (40, 64)  # sha1 and sha256 repositories


class WorktreeError(RuntimeError):
    """A worktree for one hypothesis could not be prepared; the message says why."""


@dataclass(frozen=True)
class Worktree:
    path: Path
    commit: str | None = None
    name: str | None = None


def default_worktree_base() -> Path:
    """``$RUNNER_TEMP`` on GitHub (a mount shared with the host, outside the workspace), else tmp."""
    runner_temp = os.environ.get("RUNNER_TEMP")
    if runner_temp and Path(runner_temp).is_dir():
        return Path(runner_temp)
    return Path(tempfile.gettempdir())


class WorktreeManager:
    """Creates and removes the worktrees of one run below a private root directory."""

    def __init__(
        self, repo: str | os.PathLike[str], *, base: Path | None = None, submodules: bool | str = False
    ) -> None:
        self.repo = Path(repo)
        self._base = base
        self.root: Path | None = None
        self.toplevel: Path | None = None
        self.common_dir: Path | None = None
        # The private repository the worktrees are made from (inside ``root``).
        self.worktree_repo: Path | None = None
        self._lock = asyncio.Lock()
        self._live: dict[Path, Worktree] = {}
        self._commits: dict[str, str] = {}
        # Refs that fetch_missing could not find, with the message saying what was tried.
        self._ref_errors: dict[str, str] = {}
        self._fetch_namespace: str | None = None
        # ``submodules``: False, True or "recursive" (actions/checkout's spellings).
        self._submodules = submodules
        self._module_store: SubmoduleStore | None = None
        self._modules: dict[Path, list[ModuleWorktree]] = {}

    async def open(self) -> None:
        """Check the repository and make the run's root directory. Idempotent."""
        if self.root is not None:
            return
        try:
            top = await git("rev-parse", "--show-toplevel", cwd=self.repo)
            common = await git("rev-parse", "--git-common-dir", cwd=self.repo)
        except (GitError, FileNotFoundError, NotADirectoryError) as exc:
            raise WorktreeError(f"{self.repo} is not a git work tree: {exc}") from None
        self.toplevel = Path(top.output.strip()).resolve()
        common_dir = Path(common.output.strip())
        self.common_dir = (common_dir if common_dir.is_absolute() else self.repo / common_dir).resolve()
        base = (self._base or default_worktree_base()).resolve()
        if base == self.toplevel or self.toplevel in base.parents:
            # Worktrees inside the checked-out tree would show up in `git status` and in tests.
            base = Path(tempfile.gettempdir()).resolve()
        self.root = Path(tempfile.mkdtemp(prefix="worktree-runner-", dir=base))
        private = self.root / ".repo.git"
        try:
            await make_private_repo(self.repo, self.common_dir, private)
        except (GitError, OSError) as exc:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
            self.worktree_repo = None
            raise WorktreeError(f"cannot prepare a private repository for the worktrees: {exc}") from None
        self.worktree_repo = private

    async def resolve(self, ref: str) -> str:
        """The commit SHA ``ref`` names, or WorktreeError."""
        if ref.startswith("-"):
            raise WorktreeError(f"ref {ref!r} starts with '-'")
        cached = self._commits.get(ref)
        if cached:
            return cached
        if ref in self._ref_errors:
            raise WorktreeError(self._ref_errors[ref])
        result = await git(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}",
            cwd=self.repo, check=False,
        )  # fmt: skip
        sha = result.output.strip()
        if result.returncode != 0 or len(sha) not in _SHA_LEN:
            raise WorktreeError(f"ref {ref!r} does not name a commit in {self.repo}")
        self._commits[ref] = sha
        return sha

    async def fetch_missing(self, refs: list[str], settings: FetchSettings) -> FetchOutcome:
        """Fetch the refs among ``refs`` that do not resolve here (see ``runner.engine.fetch``), once,
        before any worktree is made. The fetched refs live in a private namespace until ``close``."""
        await self.open()
        assert self.root is not None
        # Known before the fetch starts, so that close() deletes what an interrupted fetch wrote.
        self._fetch_namespace = f"{NAMESPACE_ROOT}/{self.root.name}"
        outcome = await fetch_missing(self.repo, refs, settings, run_id=self.root.name)
        self._commits.update(outcome.commits)
        if outcome.fetched and self.worktree_repo is not None and self.common_dir is not None:
            sync_shallow(self.common_dir, self.worktree_repo)  # a fetch at a depth adds shallow lines
        self._ref_errors.update(outcome.errors)
        return outcome

    @contextlib.asynccontextmanager
    async def _metadata_lock(self) -> AsyncIterator[None]:
        """Serialise changes to ``.git/worktrees`` within and across processes."""
        assert self.worktree_repo is not None
        async with self._lock:
            fd = os.open(self.worktree_repo, os.O_RDONLY)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        await asyncio.sleep(0.01)
                yield
            finally:
                os.close(fd)  # closing releases the flock

    async def create(self, hypothesis: Hypothesis, index: int, *, patch_root: Path | None = None) -> Worktree:
        """Check ``hypothesis`` out into its own worktree (and apply its patch)."""
        await self.open()
        assert self.root is not None
        sha = await self.resolve(hypothesis.source_ref)
        path = self.root / safe_name(index, hypothesis.name)
        async with self._metadata_lock():
            try:
                await git(
                    "worktree", "add", "--detach", "--no-checkout", str(path), sha, cwd=self.worktree_repo
                )
            except GitError as exc:
                raise WorktreeError(str(exc)) from None
            worktree = Worktree(path=path, commit=sha, name=hypothesis.name)
            self._live[path] = worktree
        try:
            await git("reset", "--hard", "--quiet", cwd=path, timeout=1800)
            if self._submodules:
                self._modules[path] = await self._submodule_store().checkout(
                    path, self.common_dir or self.repo
                )
            if hypothesis.patch is not None:
                await self._apply_patch(hypothesis.patch, path, patch_root or self.toplevel or self.repo)
        except (GitError, WorktreeError, SubmoduleError) as exc:
            await asyncio.shield(self.remove(worktree))
            raise WorktreeError(str(exc)) from None
        except BaseException:
            await asyncio.shield(self.remove(worktree))
            raise
        return worktree

    def _submodule_store(self) -> SubmoduleStore:
        if self._module_store is None:
            assert self.root is not None
            self._module_store = SubmoduleStore(
                root=self.root / ".modules",
                run_id=self.root.name,
                recursive=self._submodules == "recursive",
                lock=self._metadata_lock,
            )
        return self._module_store

    async def _apply_patch(self, patch: str, path: Path, patch_root: Path) -> None:
        patch_path = Path(patch)
        if not patch_path.is_absolute():
            patch_path = patch_root / patch_path
        if not patch_path.is_file():
            raise WorktreeError(f"patch {patch!r} not found at {patch_path}")
        result = await git("apply", "--whitespace=nowarn", str(patch_path.resolve()), cwd=path, check=False)
        if result.returncode != 0:
            lines = [line for line in result.output.strip().splitlines() if line]
            detail = "; ".join(lines[-3:]) if lines else f"exit code {result.returncode}"
            raise WorktreeError(f"patch {patch!r} does not apply: {detail}")

    async def remove(self, worktree: Worktree) -> None:
        """Remove one worktree; falls back to deleting the directory if git refuses."""
        modules = self._modules.pop(worktree.path, [])
        if modules and self._module_store is not None:
            await self._module_store.remove(modules)  # git refuses to remove a worktree holding submodules
        if self.worktree_repo is None:  # closed already: the private repository is gone
            self._live.pop(worktree.path, None)
            shutil.rmtree(worktree.path, ignore_errors=True)
            return
        async with self._metadata_lock():
            self._live.pop(worktree.path, None)
            result = await git(
                "worktree",
                "remove",
                "--force",
                "--force",
                str(worktree.path),
                cwd=self.worktree_repo,
                check=False,
            )
        if result.returncode != 0 or worktree.path.exists():
            shutil.rmtree(worktree.path, ignore_errors=True)

    @contextlib.asynccontextmanager
    async def worktree(
        self, hypothesis: Hypothesis, index: int, *, patch_root: Path | None = None
    ) -> AsyncIterator[Worktree]:
        worktree = await self.create(hypothesis, index, patch_root=patch_root)
        try:
            yield worktree
        finally:
            await asyncio.shield(self.remove(worktree))

    async def close(self) -> None:
        """Remove whatever is left, prune git's records, delete the root directory."""
        for worktree in list(self._live.values()):
            await self.remove(worktree)
        if self.root is not None:
            with contextlib.suppress(GitError, OSError):
                async with self._metadata_lock():
                    await git("worktree", "prune", cwd=self.worktree_repo)
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
            self.worktree_repo = None
        if self._fetch_namespace is not None:
            await delete_namespace(self.repo, self._fetch_namespace)
            self._fetch_namespace = None
        if self._module_store is not None:
            await self._module_store.close()
            self._module_store = None

    def close_sync(self) -> None:
        """Last-resort cleanup without an event loop (atexit, after a crash)."""
        import subprocess

        from runner.engine.gitutil import git_env

        for worktree in list(self._live.values()):
            subprocess.run(
                ["git", "worktree", "remove", "--force", "--force", str(worktree.path)],
                cwd=self.worktree_repo, env=git_env(), capture_output=True, check=False,
            )  # fmt: skip
            shutil.rmtree(worktree.path, ignore_errors=True)
        self._live.clear()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
            self.worktree_repo = None
        if self._fetch_namespace is not None:
            delete_namespace_sync(self.repo, self._fetch_namespace)
            self._fetch_namespace = None
        if self._module_store is not None:
            self._module_store.close_sync()
            self._module_store = None
