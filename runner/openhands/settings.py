"""Where the OpenHands server is and how to talk to it: explicit values, else the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from runner.openhands.task_id import BACKENDS, Backend

__all__ = ["DEFAULT_CLOUD_URL", "OpenHandsSettings"]

DEFAULT_CLOUD_URL = "https://app.all-hands.dev"
_OWNER_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class OpenHandsSettings:
    """Connection and run settings. ``from_env`` reads the documented ``OPENHANDS_*`` variables."""

    backend: Backend = "cloud"
    url: str = DEFAULT_CLOUD_URL
    api_key: str | None = field(default=None, repr=False)
    # agent-server only: the LLM the agent uses (the cloud uses the account's settings).
    llm_model: str | None = None
    llm_base_url: str | None = None
    llm_api_key: str | None = field(default=None, repr=False)
    # agent-server: what the server clones (URL or a path on the server's machine) and at which ref.
    repo_url: str | None = None
    repo_ref: str = "HEAD"
    # agent-server: under which directory on the server the checkouts go.
    server_root: str = "/tmp/worktree-runner-openhands"
    # cloud: "owner/repo" and branch the cloud sandbox clones.
    repository: str | None = None
    branch: str | None = None
    max_iterations: int = 50
    # agent-server: LLM call attempts (litellm counts the first try) and the longest wait between.
    llm_num_retries: int = 3
    llm_retry_max_wait: float = 30.0
    # HTTP behaviour.
    request_timeout: float = 30.0
    connect_timeout: float = 10.0
    retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"OpenHands URL must be an http(s) URL, got {self.url!r}")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("OpenHands URL must not carry credentials, a query or a fragment")
        if self.repository is not None and not _OWNER_REPO.fullmatch(self.repository):
            raise ValueError(f"repository must look like 'owner/repo', got {self.repository!r}")
        if self.repo_ref.startswith("-"):
            raise ValueError(f"repository ref {self.repo_ref!r} starts with '-'")
        if not self.server_root.startswith("/") or ".." in self.server_root.split("/"):
            raise ValueError(f"server root {self.server_root!r} must be an absolute path without '..'")
        if self.max_iterations < 1:
            raise ValueError("max_iterations must be >= 1")
        if self.llm_num_retries < 1 or self.llm_retry_max_wait < 0:
            raise ValueError("OPENHANDS_LLM_NUM_RETRIES must be >= 1 and OPENHANDS_LLM_RETRY_MAX_WAIT >= 0")

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/")

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.api_key, self.llm_api_key) if s)

    def with_overrides(self, **values: object) -> OpenHandsSettings:
        return replace(self, **{k: v for k, v in values.items() if v not in (None, "")})  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> OpenHandsSettings:
        """Settings from ``OPENHANDS_*`` (and GitHub's ``GITHUB_*`` for what to clone); overrides win."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        backend = overrides.get("backend") or env.get("OPENHANDS_BACKEND") or "cloud"
        values["backend"] = backend
        url = overrides.get("url") or env.get("OPENHANDS_API_URL")
        if url:
            values["url"] = url
        elif backend == "agent-server":
            raise ValueError("the agent-server backend needs a URL (OPENHANDS_API_URL or openhands-url)")
        for key, name in (
            ("api_key", "OPENHANDS_API_KEY"),
            ("llm_model", "OPENHANDS_LLM_MODEL"),
            ("llm_base_url", "OPENHANDS_LLM_BASE_URL"),
            ("llm_api_key", "OPENHANDS_LLM_API_KEY"),
            ("server_root", "OPENHANDS_SERVER_ROOT"),
        ):
            if env.get(name):
                values[key] = env[name]
        for key, name, kind in (
            ("max_iterations", "OPENHANDS_MAX_ITERATIONS", int),
            ("llm_num_retries", "OPENHANDS_LLM_NUM_RETRIES", int),
            ("llm_retry_max_wait", "OPENHANDS_LLM_RETRY_MAX_WAIT", float),
        ):
            if env.get(name):
                try:
                    values[key] = kind(env[name])
                except ValueError:
                    raise ValueError(f"{name} must be a number, got {env[name]!r}") from None
        server, repo = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY")
        repo_url = env.get("OPENHANDS_REPO_URL") or (
            f"{server.rstrip('/')}/{repo}.git" if server and repo else None
        )
        if repo_url:
            values["repo_url"] = repo_url
        values["repo_ref"] = env.get("OPENHANDS_REPO_REF") or env.get("GITHUB_SHA") or "HEAD"
        if repo:
            values["repository"] = repo
        branch = env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME")
        if branch:
            values["branch"] = branch
        values.update({k: v for k, v in overrides.items() if v not in (None, "")})
        return cls(**values)  # type: ignore[arg-type]

    def local_repo_url(self, workspace: Path) -> str:
        """The clone source for the agent-server: the configured URL, else the local checkout."""
        return self.repo_url or str(workspace.resolve())
