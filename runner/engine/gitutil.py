"""Running git: argument vectors only, a controlled environment, bounded and killable."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from runner.engine.process import CapturedResult, run_captured

# Variables that would point git (ours or a test's) at another repository or index.
_GIT_LOCATION_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)


class GitError(RuntimeError):
    def __init__(self, argv: Sequence[str], result: CapturedResult) -> None:
        self.argv = list(argv)
        self.result = result
        detail = result.output.strip().splitlines()
        reason = detail[-1] if detail else f"exit code {result.returncode}"
        super().__init__(f"git {argv[0] if argv else ''} failed: {reason}")


def git_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: os.environ) made safe for git in a container or CI.

    ``safe.directory=*`` is passed through GIT_CONFIG_* variables rather than written to a
    global gitconfig: inside a Docker action the workspace belongs to another uid, and
    touching ``$HOME/.gitconfig`` would leak into every later step of the job.
    """
    env = dict(os.environ if base is None else base)
    for var in _GIT_LOCATION_VARS:
        env.pop(var, None)
    try:
        count = int(env.get("GIT_CONFIG_COUNT", "0"))
    except ValueError:
        count = 0
    env[f"GIT_CONFIG_KEY_{count}"] = "safe.directory"
    env[f"GIT_CONFIG_VALUE_{count}"] = "*"
    env["GIT_CONFIG_COUNT"] = str(count + 1)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.setdefault("GIT_ADVICE", "0")
    return env


_ENV_CACHE: dict[str, str] | None = None


def _default_env() -> dict[str, str]:
    global _ENV_CACHE
    if _ENV_CACHE is None:
        env = git_env()
        env["LC_ALL"] = "C"  # stable messages, which end up in error results
        _ENV_CACHE = env
    return _ENV_CACHE


async def git(
    *args: str, cwd: str | os.PathLike[str] | None = None, timeout: float = 120.0, check: bool = True
) -> CapturedResult:
    """Run ``git args...`` and capture its (small) output."""
    argv = ["git", *args]
    result = await run_captured(argv, cwd=Path(cwd) if cwd else None, env=_default_env(), timeout=timeout)
    if check and result.returncode != 0:
        raise GitError(list(args), result)
    return result
