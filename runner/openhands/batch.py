"""Several modules in one task: one conversation per module, ONE task ID for the batch.

A batch task ID looks like ``ohb1.<backend>.<payload>``: the payload is base64url of zlib-compressed JSON,
the list of the member task IDs (each ``oh1....``, see ``task_id``), so every member is validated exactly
like a single task when the ID comes back. A single-module submit still returns a plain ``oh1`` ID, so
IDs made before batches existed keep parsing and meaning the same.

``output_path`` of a batch is a template with ``{stem}`` (the module's file name without ``.py``, or a
package directory's name), e.g. ``tests/generated/test_{stem}.py``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from runner.openhands.backend import TaskStatus
from runner.openhands.errors import InvalidTaskIdError
from runner.openhands.task_id import MAX_TASK_ID_CHARS, TaskRef

__all__ = [
    "MAX_BATCH_MODULES",
    "BatchRef",
    "batch_reason",
    "batch_result",
    "batch_status",
    "failed_batch_result",
    "failed_module_result",
    "is_batch_id",
    "module_outputs",
    "parse_any",
]

MAX_BATCH_MODULES = 50
MAX_BATCH_ID_CHARS = 64 * 1024
_SHAPE = re.compile(r"ohb1\.(cloud|agent-server)\.([A-Za-z0-9_-]{1,65000})")


def is_batch_id(text: str) -> bool:
    return text.strip().startswith("ohb1.")


def _stem(module_path: str) -> str:
    name = PurePosixPath(module_path.rstrip("/")).name
    return name[:-3] if name.endswith(".py") else name


def module_outputs(module_paths: Sequence[str], output_path: str) -> list[tuple[str, str]]:
    """(module, output path) pairs; ValueError names the problem (duplicates, no ``{stem}``, ...)."""
    modules = [m.strip() for m in module_paths if m and m.strip()]
    if not modules:
        raise ValueError("module path is empty")
    if len(modules) > MAX_BATCH_MODULES:
        raise ValueError(f"module path names {len(modules)} modules; at most {MAX_BATCH_MODULES} per task")
    if len(set(modules)) != len(modules):
        raise ValueError("module path names a module twice")
    if len(modules) > 1 and "{stem}" not in output_path:
        raise ValueError(
            "output path must contain {stem} when several modules are named "
            "(e.g. tests/generated/test_{stem}.py)"
        )
    try:
        pairs = [(m, output_path.replace("{stem}", _stem(m))) for m in modules]
    except ValueError as exc:  # pragma: no cover - replace never raises; kept for clarity
        raise ValueError(str(exc)) from None
    outputs = [out for _, out in pairs]
    if len(set(outputs)) != len(outputs):
        raise ValueError("output path template gives two modules the same file (two modules share a stem)")
    return pairs


@dataclass(frozen=True)
class BatchRef:
    backend: str
    members: tuple[TaskRef, ...]

    def __post_init__(self) -> None:
        if not self.members:
            raise InvalidTaskIdError("a batch task ID names no task")
        if any(m.backend != self.backend for m in self.members):
            raise InvalidTaskIdError("a batch task ID mixes backends")
        if len(self.members) > MAX_BATCH_MODULES:
            raise InvalidTaskIdError(f"a batch task ID names more than {MAX_BATCH_MODULES} tasks")

    def encode(self) -> str:
        raw = json.dumps([m.encode() for m in self.members], separators=(",", ":")).encode()
        text = base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")
        return f"ohb1.{self.backend}.{text}"

    def __str__(self) -> str:
        return self.encode()

    @classmethod
    def parse(cls, text: str) -> BatchRef:
        text = text.strip()
        if len(text) > MAX_BATCH_ID_CHARS:
            raise InvalidTaskIdError(f"batch task ID is longer than {MAX_BATCH_ID_CHARS} characters")
        match = _SHAPE.fullmatch(text)
        if match is None:
            raise InvalidTaskIdError(
                "not a worktree-runner batch task ID (expected 'ohb1.<backend>.<payload>')"
            )
        backend, payload = match.groups()
        try:
            packed = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            # Bounded decompression: a crafted payload must not expand without limit.
            inflater = zlib.decompressobj()
            raw = inflater.decompress(packed, MAX_BATCH_MODULES * MAX_TASK_ID_CHARS + 1024)
            too_large = bool(inflater.unconsumed_tail)
        except (binascii.Error, zlib.error, ValueError):
            raise InvalidTaskIdError("the batch task ID's payload is damaged") from None
        if too_large:
            raise InvalidTaskIdError("the batch task ID's payload is too large")
        try:
            data: Any = json.loads(raw)
        except ValueError:
            raise InvalidTaskIdError("the batch task ID's payload is damaged") from None
        if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
            raise InvalidTaskIdError("the batch task ID's payload is not a list of task IDs")
        members = tuple(TaskRef.parse(x) for x in data)
        return cls(backend=backend, members=members)


def parse_any(text: str) -> TaskRef | BatchRef:
    """A single task ID (``oh1``, as always) or a batch ID (``ohb1``)."""
    return BatchRef.parse(text) if is_batch_id(text) else TaskRef.parse(text)


def batch_status(statuses: Sequence[str]) -> str:
    """The whole batch: FAILED/COMPLETED only once every module has ended; COMPLETED when all are."""
    values = [TaskStatus(s) for s in statuses]
    if all(v is TaskStatus.COMPLETED for v in values):
        return str(TaskStatus.COMPLETED)
    if all(v.terminal for v in values):
        return str(TaskStatus.FAILED)
    if all(v is TaskStatus.QUEUED for v in values):
        return str(TaskStatus.QUEUED)
    return str(TaskStatus.RUNNING)


def batch_reason(results: Sequence[dict[str, Any]]) -> str | None:
    failed = [r for r in results if r.get("status") != str(TaskStatus.COMPLETED)]
    if not failed:
        return None
    return "; ".join(f"{r.get('module_path')}: {r.get('reason') or r.get('status')}" for r in failed)


def failed_module_result(ref: TaskRef, reason: str) -> dict[str, Any]:
    """A terminal FAILED result for one task that could not be collected (timeout, server trouble)."""
    return {
        "task_id": ref.encode(),
        "success": False,
        "status": str(TaskStatus.FAILED),
        "module_path": ref.module_path,
        "output_path": ref.output_path,
        "generated_file": None,
        "tests_passed": False,
        "coverage": None,
        "threshold": ref.threshold,
        "agent_status": None,
        "agent_message": None,
        "conversation_url": None,
        "duration_s": round(max(0.0, time.time() - ref.submitted_at), 3),
        "reason": reason,
        "test_output": "",
        "coverage_before": None,
        "funnel": {},
        "tests": [],
    }


FUNNEL_KEYS = ("generated", "passing", "stable", "asserting", "adding_coverage", "kept")


def batch_result(batch: BatchRef, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The batch's result document: the whole (COMPLETED only when every module is) + one row per module."""
    ok = bool(results) and all(r.get("status") == str(TaskStatus.COMPLETED) for r in results)
    coverages = [r.get("coverage") for r in results]
    return {
        "task_id": batch.encode(),
        "batch": True,
        "success": ok,
        "status": str(TaskStatus.COMPLETED if ok else TaskStatus.FAILED),
        "module_paths": [r.get("module_path") for r in results],
        "generated_files": [r["generated_file"] for r in results if r.get("generated_file")],
        "tests_passed": all(bool(r.get("tests_passed")) for r in results),
        # The weakest module's coverage: the batch meets the threshold only if every module does.
        "coverage": None if any(c is None for c in coverages) else min(float(c) for c in coverages),  # type: ignore[arg-type]
        "threshold": max(float(r.get("threshold") or 0) for r in results) if results else None,
        "duration_s": max((float(r.get("duration_s") or 0) for r in results), default=0.0),
        "reason": batch_reason(results),
        "funnel": {k: sum(int((r.get("funnel") or {}).get(k, 0)) for r in results) for k in FUNNEL_KEYS},
        "modules": results,
    }


def failed_batch_result(batch: BatchRef, reason: str) -> dict[str, Any]:
    return batch_result(batch, [failed_module_result(m, reason) for m in batch.members])
