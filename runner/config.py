"""Configuration and result models.

The YAML file, the action's inputs and the Python API all end up in these pydantic models, so there
is exactly one place that decides what is valid. Errors are reported as ``ConfigError`` with the
source (file or input), the location (``hypotheses[2].ref``) and the reason.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "ConfigError",
    "ExecutionSettings",
    "Hypothesis",
    "RunnerConfig",
    "Status",
    "TestExecutionResult",
    "load_config",
    "parse_config",
    "split_command",
]

# Characters that never belong in a ref, a name or an env key: they only serve to hide or inject text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REMOTE_NAME = re.compile(r"[A-Za-z0-9._/-]+")


class ConfigError(ValueError):
    """Bad input. ``str(err)`` is one line that names the source, the field and the problem."""

    def __init__(self, message: str, *, source: str | None = None, location: str | None = None) -> None:
        self.source = source
        self.location = location
        self.reason = message
        prefix = ""
        if source:
            prefix += f"{source}: "
        if location:
            prefix += f"{location}: "
        super().__init__(prefix + message)


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    ERROR = "error"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


CommandSpec = str | list[str]


def split_command(command: CommandSpec, *, what: str = "command") -> list[str]:
    """A command as an argument vector. Strings are split with shlex; a shell never sees them."""
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as exc:  # unbalanced quotes
            raise ValueError(f"{what} cannot be split into arguments: {exc}") from None
    else:
        argv = list(command)
    if not argv or not argv[0]:
        raise ValueError(f"{what} is empty")
    for arg in argv:
        if "\x00" in arg:
            raise ValueError(f"{what} contains a NUL byte")
    return argv


def _check_command(value: CommandSpec | None, what: str) -> CommandSpec | None:
    if value is not None:
        split_command(value, what=what)
    return value


def _check_env(env: dict[str, str]) -> dict[str, str]:
    for key, value in env.items():
        if not _ENV_KEY.match(key):
            raise ValueError(f"env key {key!r} is not a valid variable name")
        if "\x00" in value:
            raise ValueError(f"env value of {key} contains a NUL byte")
    return env


def _check_junit_path(pattern: str) -> str:
    from pathlib import PurePosixPath

    if not pattern.strip() or "\x00" in pattern:
        raise ValueError("junit path is empty")
    posix = PurePosixPath(pattern)
    if posix.is_absolute() or pattern.startswith("\\") or ".." in posix.parts:
        raise ValueError(f"junit path {pattern!r} must be relative to the worktree and stay inside it")
    return pattern


EnvMapping = dict[str, Annotated[str, Field(coerce_numbers_to_str=True)]]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class _CommandFields(_Model):
    """What both the top level and a hypothesis may set: how to run, with which environment."""

    command: CommandSpec | None = None
    setup: CommandSpec | None = None
    env: EnvMapping = Field(default_factory=dict)

    @field_validator("command")
    @classmethod
    def _command(cls, v: CommandSpec | None) -> CommandSpec | None:
        return _check_command(v, "command")

    @field_validator("setup")
    @classmethod
    def _setup(cls, v: CommandSpec | None) -> CommandSpec | None:
        return _check_command(v, "setup")

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_env(v)

    # Per-test outcomes from JUnit XML the command writes (a path or glob inside the worktree) instead
    # of the injected pytest plugin.
    junit: str | None = None

    @field_validator("junit")
    @classmethod
    def _junit(cls, v: str | None) -> str | None:
        return None if v is None else _check_junit_path(v)


class Hypothesis(_CommandFields):
    """One candidate change: a git ref, or a patch applied on top of ``base``."""

    name: str = Field(min_length=1, max_length=1000)
    ref: str | None = None
    patch: str | None = None
    base: str | None = None
    timeout: float | None = Field(default=None, gt=0)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("name is blank")
        if "\x00" in v:
            raise ValueError("name contains a NUL byte")
        return v

    @field_validator("ref", "base")
    @classmethod
    def _ref(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.strip():
            raise ValueError("ref is empty")
        if v.startswith("-"):
            # git would parse it as an option (`--orphan`, `-bevil` creates a branch).
            raise ValueError(f"ref {v!r} starts with '-'; refs may not look like options")
        if _CONTROL.search(v) or " " in v:
            raise ValueError(f"ref {v!r} contains whitespace or control characters")
        return v

    @field_validator("patch")
    @classmethod
    def _patch(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or "\x00" in v):
            raise ValueError("patch path is empty")
        return v

    @model_validator(mode="after")
    def _ref_xor_patch(self) -> Hypothesis:
        if (self.ref is None) == (self.patch is None):
            raise ValueError("exactly one of 'ref' or 'patch' is required")
        if self.base is not None and self.patch is None:
            raise ValueError("'base' only applies to a 'patch' hypothesis")
        return self

    @property
    def source_ref(self) -> str:
        """The commit-ish the worktree is checked out at."""
        return self.ref if self.ref is not None else (self.base or "HEAD")


class ExecutionSettings(_CommandFields):
    """How hypotheses are run. ``RunnerConfig`` adds the hypotheses themselves."""

    timeout: float = Field(default=600.0, gt=0)
    max_parallel: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, le=1024, alias="max-parallel"
    )
    fail_fast: bool = Field(default=False, alias="fail-fast")
    succeed_if: Literal["all", "any"] = Field(default="all", alias="succeed-if")
    # Seconds between SIGTERM and SIGKILL when a hypothesis is stopped. Short, because on GitHub the
    # whole cancellation (children, worktrees, partial outputs) must fit in the runner's 7.5 s.
    kill_grace: float = Field(default=2.0, ge=0, le=60, alias="kill-grace")
    # `venv`: each hypothesis' setup and command run in a virtualenv layered over the job's Python, with
    # a TMPDIR of its own (runner.engine.environments); `none`: in the job's environment, as before.
    isolation: Literal["venv", "none"] = "venv"
    # Refs the checkout lacks (a shallow actions/checkout has one commit) are fetched from `remote`
    # into a private namespace before the worktrees are made; `fetch: false` turns that off.
    remote: str = Field(default="origin", min_length=1, max_length=200)
    fetch: bool = True
    # actions/checkout's spellings: false | true | recursive.
    submodules: bool | Literal["recursive"] = False

    @field_validator("remote")
    @classmethod
    def _remote(cls, v: str) -> str:
        if v.startswith("-") or not _REMOTE_NAME.fullmatch(v):
            raise ValueError(f"remote {v!r} is not a remote name (letters, digits, '.', '_', '-', '/')")
        return v

    @field_validator("submodules", mode="before")
    @classmethod
    def _submodules(cls, v: Any) -> Any:
        spelled = {"true": True, "false": False, "recursive": "recursive"}
        if isinstance(v, str) and v.strip().lower() in spelled:
            return spelled[v.strip().lower()]
        if isinstance(v, bool) or v == "recursive":
            return v
        raise ValueError(f"expected false, true or recursive, got {v!r}")
    # Per-test verdicts (runner.engine.per_test, runner.report.grading): the hypothesis the others are
    # compared with (default: the first whose ref is HEAD), re-runs of each failing test id in fresh
    # processes, and whether our pytest result plugin is loaded into the commands at all.
    baseline: str | None = None
    reruns: int = Field(default=2, ge=0, le=20)
    per_test: bool = Field(default=True, alias="per-test")

    def junit_for(self, hypothesis: Hypothesis) -> str | None:
        return hypothesis.junit if hypothesis.junit is not None else self.junit

    def command_for(self, hypothesis: Hypothesis) -> list[str]:
        spec = hypothesis.command if hypothesis.command is not None else self.command
        if spec is None:
            raise ValueError(f"hypothesis {hypothesis.name!r} has no command and there is no default command")
        return split_command(spec)

    def setup_for(self, hypothesis: Hypothesis) -> list[str] | None:
        spec = hypothesis.setup if hypothesis.setup is not None else self.setup
        return None if spec is None else split_command(spec, what="setup")

    def timeout_for(self, hypothesis: Hypothesis) -> float:
        return hypothesis.timeout if hypothesis.timeout is not None else self.timeout


class RunnerConfig(ExecutionSettings):
    hypotheses: list[Hypothesis] = Field(min_length=1)

    @model_validator(mode="after")
    def _whole(self) -> RunnerConfig:
        seen: dict[str, int] = {}
        for i, hyp in enumerate(self.hypotheses):
            if hyp.name in seen:
                raise _LocatedError(
                    f"hypotheses[{i}].name",
                    f"duplicate name {hyp.name!r} (also hypotheses[{seen[hyp.name]}].name)",
                )
            seen[hyp.name] = i
            if hyp.command is None and self.command is None:
                raise _LocatedError(
                    f"hypotheses[{i}].command", "no command here and no top-level 'command' to inherit"
                )
        if self.baseline is not None and self.baseline not in seen:
            raise _LocatedError("baseline", f"no hypothesis is named {self.baseline!r}")
        return self

    def baseline_name(self) -> str | None:
        """``baseline``, else the first hypothesis whose ref is ``HEAD``, else None."""
        if self.baseline is not None:
            return self.baseline
        return next((h.name for h in self.hypotheses if h.ref == "HEAD"), None)


class _LocatedError(ValueError):
    """A whole-model check that knows which field it is about."""

    def __init__(self, location: str, message: str) -> None:
        self.location = location
        self.message = message
        super().__init__(message)


def _format_location(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _from_validation_error(exc: ValidationError, source: str) -> ConfigError:
    errors = exc.errors(include_url=False)
    err = errors[0]
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _LocatedError):
        return ConfigError(ctx_error.message, source=source, location=ctx_error.location)

    def where(e: Any) -> list[int | str]:
        # Drop pydantic's internal union/type tags (e.g. 'str', 'list[str]', 'function-after[...]').
        return [p for p in e["loc"] if isinstance(p, int) or not _is_internal_tag(p)]

    loc = where(err)
    same_place = [e for e in errors if where(e) == loc]
    message = err["msg"]
    if len(same_place) > 1 and all(e["type"] in ("string_type", "list_type") for e in same_place):
        # A union (a command is a string or a list): one message instead of one per member.
        err = {
            **err,
            "type": "union",
            "msg": f"expected a string or a list of strings, got {type(err['input']).__name__}",
        }
        message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif err["type"] == "missing":
        message = "required key is missing"
    location = _format_location(loc) or None
    places = {tuple(where(e)) for e in errors}
    extra = f"; {len(places)} problems in all" if len(places) > 1 else ""
    return ConfigError(message + extra, source=source, location=location)


def _is_internal_tag(part: str) -> bool:
    return part in {"str", "list[str]", "int", "float", "bool"} or "[" in part


def parse_config(data: Any, *, source: str = "config") -> RunnerConfig:
    """Validate already-loaded YAML/JSON data."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping at the top level, got {type(data).__name__}", source=source)
    try:
        return RunnerConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise _from_validation_error(exc, source) from None


def parse_hypotheses(data: Any, *, source: str) -> list[Hypothesis]:
    """Validate a bare YAML list of hypotheses (the action's inline ``hypotheses`` input)."""
    if not isinstance(data, list):
        raise ConfigError(f"expected a YAML list of hypotheses, got {type(data).__name__}", source=source)
    out: list[Hypothesis] = []
    for i, item in enumerate(data):
        try:
            out.append(Hypothesis.model_validate(item))
        except ValidationError as exc:
            err = _from_validation_error(exc, source)
            location = f"hypotheses[{i}]" + (f".{err.location}" if err.location else "")
            raise ConfigError(err.reason, source=source, location=location) from None
    return out


def load_yaml(text: str, *, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML: {where}{problem}", source=source) from None


def load_config(path: str | os.PathLike[str]) -> RunnerConfig:
    """Read and validate a YAML configuration file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", source=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", source=str(p)) from None
    return parse_config(load_yaml(text, source=str(p)), source=str(p))


class TestExecutionResult(BaseModel):
    """What happened to one hypothesis. Field names match the results JSON."""

    __test__ = False  # not a pytest test class, despite the name

    model_config = ConfigDict(extra="forbid")

    name: str
    status: Status
    exit_code: int | None = None
    duration_s: float = 0.0
    ref: str | None = None
    commit: str | None = None
    log_path: str | None = None
    output_tail: str = ""
    error: str | None = None
    # When the commands started (ISO 8601 UTC, after the checkout, like ``duration_s``); None when
    # they never started or the result did not come through ``runner.run``.
    started_at: str | None = None
    # Per-test outcomes and their grading against the baseline (absent without per-test data).
    tests: dict[str, Any] | None = None
    # True when the result came from the result cache (``cache-dir``) instead of a run.
    cached: bool | None = None

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    @property
    def success(self) -> bool:  # older callers asked ``result.success``
        return self.passed
