"""Workflow commands written to the step log (``::name k=v,k=v::data``).

Every command is produced by :func:`format_command`, which is the only place
that escapes text, so untrusted data can never spill onto a second line (and a
second line is the only way to start another command).  Text that is printed
verbatim (replayed test output) must go through :meth:`ActionsLog.write_untrusted`
or be wrapped in :meth:`ActionsLog.stop_commands`.

Format and limits follow the GitHub runner (``ActionCommand.TryParseV2`` and
``ActionCommandManager``): data escapes ``%`` ``\\r`` ``\\n``; property values
additionally escape ``:`` and ``,``; ``%`` is escaped first because the runner
unescapes ``%25`` last.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partialmethod
from typing import Final, TextIO

__all__ = [
    "MAX_MESSAGE_CHARS",
    "RUNNER_COMMANDS",
    "TRUNCATION_MARKER",
    "ActionsLog",
    "escape_data",
    "escape_property",
    "format_command",
    "new_stop_token",
    "to_command_value",
    "truncate_message",
]

#: The runner truncates annotation messages to this many UTF-16 code units.
MAX_MESSAGE_CHARS: Final = 4096
#: Appended to a message that :func:`truncate_message` shortened.
TRUNCATION_MARKER: Final = "… [truncated]"

#: Command names the runner registers (matched case-insensitively); a
#: stop-commands token must not be one of them.
RUNNER_COMMANDS: Final = frozenset(
    {
        "add-mask",
        "add-matcher",
        "add-path",
        "debug",
        "echo",
        "endgroup",
        "error",
        "group",
        "internal-set-repo-path",
        "notice",
        "remove-matcher",
        "save-state",
        "set-env",
        "set-output",
        "stop-commands",
        "warning",
    }
)

_NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_PROPERTY_KEY_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_LINE_BREAK_RE: Final = re.compile(r"[\r\n]+")
_DATA_ESCAPES: Final = str.maketrans({"%": "%25", "\r": "%0D", "\n": "%0A"})
_PROPERTY_ESCAPES: Final = str.maketrans({"%": "%25", "\r": "%0D", "\n": "%0A", ":": "%3A", ",": "%2C"})

# One lock for every writer in the process: two ActionsLog objects on the same
# stream must not interleave partial lines either.
_WRITE_LOCK: Final = threading.RLock()


def to_command_value(value: object) -> str:
    """Convert a value the way @actions/core does: ``None`` -> ``""``, strings
    unchanged, anything else compact JSON (``True`` -> ``true``)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def escape_data(value: str) -> str:
    """Escape command data: ``%`` -> ``%25``, CR -> ``%0D``, LF -> ``%0A``.

    A single translation pass is equivalent to escaping ``%`` first."""
    return value.translate(_DATA_ESCAPES)


def escape_property(value: str) -> str:
    """Escape a property value: like :func:`escape_data` plus ``:`` and ``,``."""
    return value.translate(_PROPERTY_ESCAPES)


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def truncate_message(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Shorten ``message`` to at most ``limit`` UTF-16 code units (the unit the
    runner counts), keeping the beginning and appending :data:`TRUNCATION_MARKER`.
    A surrogate pair is never split."""
    if len(message) <= limit // 2 or _utf16_units(message) <= limit:
        return message
    keep = limit - _utf16_units(TRUNCATION_MARKER)
    if keep <= 0:
        return TRUNCATION_MARKER[: max(limit, 0)]
    raw = message.encode("utf-16-le")[: keep * 2]
    if raw and 0xD8 <= raw[-1] <= 0xDB:  # last unit is a high surrogate: drop it
        raw = raw[:-2]
    return raw.decode("utf-16-le") + TRUNCATION_MARKER


def format_command(
    name: str, properties: Mapping[str, object | None] | None = None, message: object = ""
) -> str:
    """Return one workflow command line (without the trailing newline).

    ``None`` and empty property values are skipped (as @actions/core does);
    other values are converted with :func:`to_command_value` and escaped.
    """
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"invalid workflow command name {name!r}")
    parts: list[str] = []
    for key, raw in (properties or {}).items():
        if not _PROPERTY_KEY_RE.fullmatch(key):
            raise ValueError(f"invalid workflow command property name {key!r}")
        value = to_command_value(raw)
        if value:
            parts.append(f"{key}={escape_property(value)}")
    head = f"::{name} {','.join(parts)}" if parts else f"::{name}"
    return f"{head}::{escape_data(to_command_value(message))}"


def new_stop_token() -> str:
    """A fresh random stop-commands token that the runner accepts."""
    while True:
        token = secrets.token_hex(16)
        if token.lower() not in RUNNER_COMMANDS and token.lower() != "pause-logging":
            return token


class ActionsLog:
    """Writes workflow commands to a text stream (``sys.stdout`` by default,
    looked up at write time).  Each command is one locked ``write`` + ``flush``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._group_depth = 0
        self._stop_token: str | None = None

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stdout

    @property
    def commands_stopped(self) -> bool:
        """True inside :meth:`stop_commands`: the runner ignores commands then."""
        return self._stop_token is not None

    def _write(self, text: str) -> None:
        with _WRITE_LOCK:
            stream = self.stream
            stream.write(text)
            stream.flush()

    def command(
        self, name: str, properties: Mapping[str, object | None] | None = None, message: object = ""
    ) -> None:
        """Write any workflow command."""
        self._write(format_command(name, properties, message) + "\n")

    def annotate(
        self,
        level: str,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        end_line: int | None = None,
        col: int | None = None,
        end_column: int | None = None,
        title: str | None = None,
    ) -> None:
        """``::error|warning|notice file=,line=,endLine=,col=,endColumn=,title=::message``."""
        props: dict[str, object | None] = {
            "title": title,
            "file": file,
            "line": line,
            "endLine": end_line,
            "col": col,
            "endColumn": end_column,
        }
        self.command(level, props, truncate_message(message))

    error = partialmethod(annotate, "error")
    warning = partialmethod(annotate, "warning")
    notice = partialmethod(annotate, "notice")

    def debug(self, message: str) -> None:
        """Shown only when step debug logging is on."""
        self.command("debug", None, truncate_message(message))

    def add_mask(self, value: str) -> None:
        """Mask ``value`` and, for a multi-line value, each of its lines (split on
        CR/LF and trimmed, as the runner does).  Blank values write nothing:
        the runner only warns about them."""
        if not value.strip():
            return
        pieces = [value]
        if "\n" in value or "\r" in value:
            pieces.extend(part.strip() for part in _LINE_BREAK_RE.split(value))
        seen: set[str] = set()
        out: list[str] = []
        for piece in pieces:
            if piece and piece not in seen:
                seen.add(piece)
                out.append(format_command("add-mask", None, piece) + "\n")
        self._write("".join(out))

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        """A collapsible log group.  The runner cannot nest groups, so a group
        opened inside another one is flattened into it (nothing is emitted)."""
        with _WRITE_LOCK:
            outermost = self._group_depth == 0
            self._group_depth += 1
            if outermost:
                self.command("group", None, title)
        try:
            yield
        finally:
            with _WRITE_LOCK:
                self._group_depth -= 1
                if outermost:
                    self.command("endgroup")

    @contextmanager
    def stop_commands(self) -> Iterator[str]:
        """Stop command processing until the block ends; yields the random token.

        Anything printed inside (e.g. replayed test output) cannot create a
        workflow command.  Commands written by this log inside the block are
        ignored by the runner too.  Nested use reuses the outer token.
        """
        with _WRITE_LOCK:
            if self._stop_token is not None:
                nested_token: str | None = self._stop_token
            else:
                nested_token = None
                token = new_stop_token()
                self._write(format_command("stop-commands", None, token) + "\n")
                self._stop_token = token
        if nested_token is not None:
            yield nested_token
            return
        try:
            yield token
        finally:
            with _WRITE_LOCK:
                self._stop_token = None
                self._write(f"::{token}::\n")

    def write_untrusted(self, text: str) -> None:
        """Print ``text`` verbatim with command processing stopped around it,
        all in one locked write so no other thread's command lands inside."""
        if not text:
            return
        body = text if text.endswith(("\n", "\r")) else text + "\n"
        with _WRITE_LOCK:
            if self._stop_token is not None:
                self._write(body)
                return
            token = new_stop_token()
            while token.lower() in text.lower():  # practically never; be certain
                token = new_stop_token()
            self._write(f"{format_command('stop-commands', None, token)}\n{body}::{token}::\n")

    def write(self, text: str) -> None:
        """Print trusted plain text (one locked write; a newline is added)."""
        self._write(text if text.endswith("\n") else text + "\n")
