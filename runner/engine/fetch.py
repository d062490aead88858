"""Fetch the commits a checkout lacks, into a private ref namespace, in as few fetches as git allows.

A GitHub job's checkout (``actions/checkout`` with its default ``fetch-depth: 1``) holds one commit:
no parents, no tags, no other branches, no pull-request refs. Before any worktree is made, every
hypothesis ref that does not resolve locally is looked up on the remote and fetched:

* names are qualified by us (``refs/heads/x``, then ``refs/tags/x``; ``origin/x`` -> ``refs/heads/x``;
  ``pull/N/head`` -> ``refs/pull/N/head``), checked with **one** ``git ls-remote`` (``git fetch`` of a
  missing name aborts the whole fetch and would let a tag silently win over a branch);
* a full SHA is fetched as it is; ``x~N`` / ``x^`` are fetched (or deepened) to depth N+1;
* commits the remote names but that are already here are not fetched at all (``--depth`` on a commit
  that is present would truncate the user's history);
* everything else goes into **one** ``git fetch`` per distinct depth (``--depth`` applies to a whole
  fetch; in a full clone no ``--depth`` is passed at all, so it is one fetch), into
  ``refs/worktree-runner/<run>/<i>``, with ``--refmap=`` (no remote-tracking ref updated),
  ``--no-tags`` and ``--no-write-fetch-head``: the user's refs, tags, ``FETCH_HEAD`` and config stay as
  they were. :func:`delete_namespace` removes the refs; objects (and ``.git/shallow`` lines) stay.

Refs were validated before (no leading ``-``, no whitespace or control characters) and only reach git
after ``--end-of-options`` or inside refspecs we build (``+<refs/...|sha>:<our ref>``).
Credentials are whatever the repository's config holds (``actions/checkout`` persists its token
there); git uses them, we never read or print them.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runner.engine.gitutil import git, git_env

__all__ = [
    "NAMESPACE_ROOT",
    "FetchOutcome",
    "FetchSettings",
    "delete_namespace",
    "delete_namespace_sync",
    "fetch_missing",
]

NAMESPACE_ROOT = "refs/worktree-runner"

_HEX = re.compile(r"[0-9a-fA-F]+")
_FULL_SHA_LEN = (40, 64)
# ``x~3^2~`` -> base ``x``, steps ``~3^2~``. Other revision syntax (``@{u}``, ``^{tree}``, ``:/text``) is
# left to the local resolution, as before.
_STEPS = re.compile(r"^(?P<base>.+?)(?P<steps>(?:~[0-9]*|\^[0-9]*)*)$")
_STEP = re.compile(r"([~^])([0-9]*)")
# What git prints when a remote needs credentials it was not given.
_AUTH_FAILURE = re.compile(
    r"Authentication failed|could not read Username|could not read Password|terminal prompts disabled"
    r"|HTTP 401|HTTP 403|returned error: 40[13]|Permission denied \(publickey",
    re.IGNORECASE,
)
_FETCH_TIMEOUT = 1800.0


@dataclass(frozen=True)
class FetchSettings:
    """``remote``: where missing refs come from; ``enabled``: ``fetch: false`` turns fetching off."""

    remote: str = "origin"
    enabled: bool = True


@dataclass
class FetchOutcome:
    """What :func:`fetch_missing` did. ``commits``/``errors`` are keyed by the hypothesis ref."""

    commits: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # The refs that needed the network, as the user wrote them (for the job summary).
    fetched: list[str] = field(default_factory=list)
    fetch_commands: int = 0
    namespace: str | None = None


@dataclass
class _Missing:
    ref: str
    base: str
    steps: str
    ancestry: int  # how many parent steps below the base commit
    candidates: list[str] = field(default_factory=list)  # fully qualified names to look up
    source: str | None = None  # what goes left of ':' in the refspec (a qualified ref or a SHA)
    depth: int | None = None
    slot: str | None = None  # our ref, right of ':'
    tried: str = ""


def _split_steps(ref: str) -> tuple[str, str, int]:
    match = _STEPS.match(ref)
    if match is None:  # cannot happen for a non-empty ref; be safe
        return ref, "", 0
    steps = match.group("steps")
    ancestry = 0
    for kind, number in _STEP.findall(steps):
        count = int(number) if number else 1
        # ``^0`` is the commit itself; ``^N`` is one step (to parent N); ``~N`` is N steps.
        ancestry += (1 if count else 0) if kind == "^" else count
    return match.group("base"), steps, ancestry


def _is_full_sha(text: str) -> bool:
    return len(text) in _FULL_SHA_LEN and _HEX.fullmatch(text) is not None


def _candidates(base: str, remote: str) -> list[str]:
    if base.startswith("refs/"):
        return [base]
    if base.startswith(f"{remote}/"):
        # ``origin/x`` is the remote's branch ``x`` (a remote-tracking ref the checkout did not create).
        return [f"refs/heads/{base[len(remote) + 1 :]}"]
    names = [f"refs/heads/{base}", f"refs/tags/{base}"]
    if base.startswith("pull/"):
        names.append(f"refs/{base}")
    return names


async def _resolves(repo: Path, rev: str) -> str | None:
    result = await git(
        "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", cwd=repo, check=False
    )  # fmt: skip
    sha = result.output.strip()
    return sha if result.returncode == 0 and len(sha) in _FULL_SHA_LEN else None


async def _has_commit(repo: Path, sha: str) -> bool:
    result = await git("cat-file", "-e", "--end-of-options", f"{sha}^{{commit}}", cwd=repo, check=False)
    return result.returncode == 0


async def _checkout_description(repo: Path) -> tuple[bool, str]:
    shallow = (await git("rev-parse", "--is-shallow-repository", cwd=repo, check=False)).output.strip()
    if shallow != "true":
        return False, "full history"
    count = await git("rev-list", "--count", "HEAD", cwd=repo, check=False)
    depth = count.output.strip()
    return True, f"shallow, depth {depth}" if count.returncode == 0 and depth.isdigit() else "shallow"


def _git_reason(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return (fatal or lines or ["no output"])[-1]


def _network_failure(remote: str, command: str, output: str) -> str:
    reason = _git_reason(output)
    if _AUTH_FAILURE.search(output):
        return (
            f"'{command}' needs credentials for {remote} and none were configured or they were refused "
            f"(git: {reason}); check out with persist-credentials, or make the remote readable"
        )
    return f"'{command}' failed: {reason}"


async def fetch_missing(
    repo: Path, refs: Sequence[str], settings: FetchSettings, *, run_id: str
) -> FetchOutcome:
    """Make every ref in ``refs`` resolvable, fetching what is missing from ``settings.remote``.

    Returns the commits of refs that needed work and an error message for each ref that could not be
    found; refs that already resolve are not in the outcome. Never raises for a missing ref.
    """
    outcome = FetchOutcome()
    pending: list[_Missing] = []
    for ref in dict.fromkeys(refs):
        if ref.startswith("-") or await _resolves(repo, ref) is not None:
            continue  # a leading '-' is refused by the worktree manager with its own message
        base, steps, ancestry = _split_steps(ref)
        pending.append(_Missing(ref=ref, base=base, steps=steps, ancestry=ancestry))
    if not pending or not settings.enabled:
        return outcome
    remote = settings.remote
    url = await git("config", "--get", f"remote.{remote}.url", cwd=repo, check=False)
    if url.returncode != 0 or not url.output.strip():
        for item in pending:
            outcome.errors[item.ref] = (
                f"ref {item.ref!r} does not name a commit in {repo}, and there is no remote {remote!r} "
                "to fetch it from"
            )
        return outcome
    shallow, description = await _checkout_description(repo)
    outcome.namespace = f"{NAMESPACE_ROOT}/{run_id}"

    def not_here(item: _Missing) -> str:
        return f"ref {item.ref!r} is not in this checkout ({description})"

    # 1. What is each missing ref's base? Here already (deepen it), a SHA (fetch it), or a name to look up.
    lookups: list[_Missing] = []
    for item in pending:
        local_base = await _resolves(repo, item.base) if item.steps else None
        if local_base is not None:
            if not shallow:
                outcome.errors[item.ref] = (
                    f"{not_here(item)}: {item.base!r} has fewer than {item.ancestry} ancestors here, and the "
                    "history is complete, so there is nothing to fetch"
                )
                continue
            item.source, item.tried = (
                local_base,
                f"git fetch --depth={item.ancestry + 1} {remote} {local_base}",
            )
        elif _is_full_sha(item.base):
            item.source, item.tried = item.base.lower(), f"git fetch {remote} {item.base}"
        else:
            item.candidates = _candidates(item.base, remote)
            lookups.append(item)
    # 2. One ls-remote for every name.
    if lookups:
        names = list(dict.fromkeys(name for item in lookups for name in item.candidates))
        listed = await git(
            "ls-remote", "--end-of-options", remote, *names, cwd=repo, check=False, timeout=_FETCH_TIMEOUT
        )  # fmt: skip
        if listed.returncode != 0:
            failure = _network_failure(remote, f"git ls-remote {remote}", listed.output)
            for item in lookups:
                outcome.errors[item.ref] = f"{not_here(item)} and {failure}"
            lookups = []
        advertised: dict[str, str] = {}
        for line in listed.output.splitlines() if listed.returncode == 0 else []:
            sha, _, name = line.partition("\t")
            if name and _is_full_sha(sha):
                advertised[name] = sha.lower()
        for item in lookups:
            found = next((name for name in item.candidates if name in advertised), None)
            shown = (
                item.base if len(item.candidates) > 1 or item.base.startswith("refs/") else item.candidates[0]
            )
            if found is None:
                tried = ", ".join(item.candidates)
                hint = (
                    "; an abbreviated SHA can only be resolved locally, give all 40 hex digits"
                    if 4 <= len(item.base) < 40 and _HEX.fullmatch(item.base)
                    else ""
                )
                outcome.errors[item.ref] = (
                    f"{not_here(item)} and 'git fetch {remote} {shown}' found no such ref on {remote} "
                    f"(tried {tried}){hint}"
                )
                continue
            item.tried = f"git fetch {remote} {found}"
            sha = advertised[found]
            if await _has_commit(repo, sha) and (
                not item.steps or await _resolves(repo, f"{sha}{item.steps}") is not None
            ):
                # Named only on the remote, but the commit (and the ancestry asked for) is here.
                commit = await _resolves(repo, f"{sha}{item.steps}")
                if commit is not None:
                    outcome.commits[item.ref] = commit
                    continue
            item.source = found
    # 3. Fetch: one command per depth (``--depth`` is per fetch); no ``--depth`` in a full clone.
    to_fetch = [item for item in pending if item.source is not None and item.ref not in outcome.errors]
    for i, item in enumerate(to_fetch):
        item.slot = f"{outcome.namespace}/{i}"
        item.depth = item.ancestry + 1 if shallow else None
    groups: dict[int | None, list[_Missing]] = {}
    for item in to_fetch:
        groups.setdefault(item.depth, []).append(item)
    for depth, items in sorted(groups.items(), key=lambda kv: kv[0] or 0):
        failed = await _fetch(repo, remote, depth, items, outcome)
        if failed is not None and len(items) > 1:
            # All-or-nothing: one bad refspec (a SHA the server does not have) fails them all. Find out
            # which, so the others still run (extra fetches only on this error path).
            for item in items:
                one = await _fetch(repo, remote, depth, [item], outcome)
                if one is not None:
                    outcome.errors[item.ref] = f"{not_here(item)} and '{item.tried}' failed: {one}"
        elif failed is not None:
            outcome.errors[items[0].ref] = f"{not_here(items[0])} and '{items[0].tried}' failed: {failed}"
    # 4. Resolve what arrived.
    for item in to_fetch:
        if item.ref in outcome.errors:
            continue
        commit = await _resolves(repo, f"{item.slot}{item.steps}")
        if commit is None:
            outcome.errors[item.ref] = (
                f"{not_here(item)}, and after '{item.tried}' it still does not name a commit"
            )
            continue
        outcome.commits[item.ref] = commit
        outcome.fetched.append(item.ref)
    return outcome


async def _fetch(
    repo: Path, remote: str, depth: int | None, items: Sequence[_Missing], outcome: FetchOutcome
) -> str | None:
    """One ``git fetch`` of ``items`` into their slots; None on success, else git's reason."""
    refspecs = [f"+{item.source}:{item.slot}" for item in items]
    argv = [
        # No auto-gc or maintenance in the user's repository because of us.
        "-c", "gc.auto=0", "-c", "maintenance.auto=false",
        "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--refmap=", "--no-recurse-submodules",
        *([f"--depth={depth}"] if depth is not None else []),
        "--end-of-options", remote, *refspecs,
    ]  # fmt: skip
    outcome.fetch_commands += 1
    result = await git(*argv, cwd=repo, check=False, timeout=_FETCH_TIMEOUT)
    if result.returncode == 0:
        return None
    failure = _network_failure(remote, f"git fetch {remote}", result.output)
    return (
        failure.split("failed: ", 1)[1] if failure.startswith(f"'git fetch {remote}' failed: ") else failure
    )


async def delete_namespace(repo: Path, namespace: str | None) -> None:
    """Delete every ref below ``namespace`` (ours); the user's refs are never touched.

    Two git commands whatever the number of refs (``update-ref --stdin`` needs stdin, hence a thread)."""
    await asyncio.to_thread(delete_namespace_sync, repo, namespace)


def delete_namespace_sync(repo: Path, namespace: str | None) -> None:
    """:func:`delete_namespace` without an event loop (atexit, after a crash)."""
    if not namespace or not namespace.startswith(f"{NAMESPACE_ROOT}/"):
        return
    env = git_env()
    listed = subprocess.run(
        ["git", "for-each-ref", "--format=delete %(refname)", f"{namespace}/"],
        cwd=repo, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if listed.returncode == 0 and listed.stdout:
        subprocess.run(
            ["git", "update-ref", "--stdin"], cwd=repo, env=env, input=listed.stdout, capture_output=True,
            text=True, check=False,
        )  # fmt: skip
