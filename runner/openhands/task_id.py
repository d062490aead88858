"""Task IDs: everything a later step needs to collect a task, in one validated string.

A task ID looks like ``oh1.agent-server.<conversation uuid>.<payload>`` or
``oh1.cloud.<start task id>.<payload>``, where the payload is base64url-encoded compact JSON with the
request (module, output path, threshold), the commit the agent started from, the server-side
directory of the repository and the submit time. The ID is untrusted input when it comes back (a
workflow input, a job output someone may edit), so ``TaskRef.parse`` checks every field before any
of it goes into a URL or a path; the server URL and the API key are deliberately NOT part of it, so
a crafted ID can never send the key elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

from runner.openhands.errors import InvalidTaskIdError

__all__ = ["BACKENDS", "Backend", "TaskRef", "check_relative_path"]

Backend = Literal["cloud", "agent-server"]
BACKENDS: tuple[Backend, ...] = ("cloud", "agent-server")
MAX_TASK_ID_CHARS = 4096

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SHAPE = re.compile(r"oh1\.(cloud|agent-server)\.([0-9a-f-]{32,36})\.([A-Za-z0-9_-]{1,3800})")
# Paths we hand to a server or join to a checkout: plain relative POSIX paths.
_PATH_CHARS = re.compile(r"[A-Za-z0-9._+@=,/ -]+")
_ABS_DIR = re.compile(r"/[A-Za-z0-9._+@=,/-]*")


def check_relative_path(value: str, what: str) -> str:
    """``value`` as a normalised relative path inside a repository, or ValueError naming ``what``."""
    if not value or not value.strip():
        raise ValueError(f"{what} is empty")
    if len(value) > 512:
        raise ValueError(f"{what} is longer than 512 characters")
    if not _PATH_CHARS.fullmatch(value):
        raise ValueError(f"{what} {value!r} may only contain letters, digits, spaces and ._+@=,/-")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or value.startswith("-"):
        raise ValueError(f"{what} {value!r} must be a relative path inside the repository, without '..'")
    normal = str(path)
    if normal in ("", "."):
        raise ValueError(f"{what} {value!r} names the repository root, not a file or package")
    return normal


@dataclass(frozen=True)
class TaskRef:
    backend: Backend
    # agent-server: the conversation UUID; cloud: the start-task id (32 hex).
    id: str
    module_path: str
    output_path: str
    threshold: float
    # Where the repository is on the server (absolute), for reading the generated file.
    repo_dir: str
    submitted_at: float
    # cloud: the conversation id we asked for (32 hex); agent-server: None.
    conversation_id: str | None = None
    # The commit the agent started from; the generated tests are verified on it.
    base_commit: str | None = None

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:
        if self.backend not in BACKENDS:
            raise InvalidTaskIdError(f"unknown backend {self.backend!r}")
        pattern = _UUID if self.backend == "agent-server" else _HEX32
        if not pattern.fullmatch(self.id):
            raise InvalidTaskIdError(f"malformed {self.backend} id {self.id!r}")
        if self.conversation_id is not None and not _HEX32.fullmatch(self.conversation_id):
            raise InvalidTaskIdError("malformed conversation id")
        if self.base_commit is not None and not _SHA.fullmatch(self.base_commit):
            raise InvalidTaskIdError("malformed base commit")
        try:
            check_relative_path(self.module_path, "module path")
            check_relative_path(self.output_path, "output path")
        except ValueError as exc:
            raise InvalidTaskIdError(str(exc)) from None
        if not 0 <= self.threshold <= 100:
            raise InvalidTaskIdError(f"coverage threshold {self.threshold} is not between 0 and 100")
        if not _ABS_DIR.fullmatch(self.repo_dir) or ".." in PurePosixPath(self.repo_dir).parts:
            raise InvalidTaskIdError(f"malformed server directory {self.repo_dir!r}")

    def encode(self) -> str:
        payload = {k: v for k, v in asdict(self).items() if k not in ("backend", "id") and v is not None}
        raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return f"oh1.{self.backend}.{self.id}.{text}"

    def __str__(self) -> str:
        return self.encode()

    @classmethod
    def parse(cls, text: str) -> TaskRef:
        """The task an ID describes; InvalidTaskIdError for anything this client did not make."""
        text = text.strip()
        if len(text) > MAX_TASK_ID_CHARS:
            raise InvalidTaskIdError(f"task ID is longer than {MAX_TASK_ID_CHARS} characters")
        match = _SHAPE.fullmatch(text)
        if match is None:
            raise InvalidTaskIdError(
                "not a worktree-runner task ID (expected 'oh1.<cloud|agent-server>.<id>.<payload>', "
                "as printed by submit)"
            )
        backend, ident, payload = match.groups()
        try:
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            data: Any = json.loads(raw)
        except (binascii.Error, ValueError):
            raise InvalidTaskIdError("the task ID's payload is damaged (not base64url JSON)") from None
        if not isinstance(data, dict):
            raise InvalidTaskIdError("the task ID's payload is not an object")
        allowed = {"module_path", "output_path", "threshold", "repo_dir", "submitted_at",
                   "conversation_id", "base_commit"}  # fmt: skip
        unknown = set(data) - allowed
        if unknown:
            raise InvalidTaskIdError(f"the task ID has unknown fields: {', '.join(sorted(unknown))}")
        return cls(
            backend=backend,  # type: ignore[arg-type]
            id=ident,
            module_path=_typed(data, "module_path", str),
            output_path=_typed(data, "output_path", str),
            threshold=float(_typed(data, "threshold", (int, float))),
            repo_dir=_typed(data, "repo_dir", str),
            submitted_at=float(_typed(data, "submitted_at", (int, float))),
            conversation_id=_typed(data, "conversation_id", str, optional=True),
            base_commit=_typed(data, "base_commit", str, optional=True),
        )


def _typed(data: dict[str, Any], key: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    if key not in data:
        if optional:
            return None
        raise InvalidTaskIdError(f"the task ID has no {key}")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InvalidTaskIdError(f"the task ID's {key} has the wrong type")
    return value
