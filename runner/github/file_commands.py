"""File commands: step outputs (``GITHUB_OUTPUT``), environment for later steps
(``GITHUB_ENV``) and action state (``GITHUB_STATE``).

Every record uses the heredoc form the runner's ``EnvFileKeyValuePairs`` parser
reads::

    name<<ghadelimiter_<uuid4>\\n
    value\\n
    ghadelimiter_<uuid4>\\n

with a fresh delimiter that does not occur anywhere in the name or value, so a
value can never end its record early.  Values are not escaped (the runner does
not unescape file commands).  Each record is one ``write`` to a file opened in
append mode.  The deprecated ``::set-output`` command is never used.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Final

from runner.github.commands import to_command_value

__all__ = [
    "ENV_FILE",
    "MAX_OUTPUT_BYTES",
    "OUTPUT_FILE",
    "STATE_FILE",
    "FileCommandError",
    "FileCommandWriter",
    "export_variable",
    "format_file_command",
    "new_delimiter",
    "save_state",
    "set_output",
    "validate_name",
]

#: GitHub limits a step output value to 1 MB ("Outputs are Unicode strings, and
#: can be a maximum of 1 MB"); :func:`set_output` refuses larger values.
MAX_OUTPUT_BYTES: Final = 1024 * 1024

OUTPUT_FILE: Final = "GITHUB_OUTPUT"
ENV_FILE: Final = "GITHUB_ENV"
STATE_FILE: Final = "GITHUB_STATE"

_DELIMITER_PREFIX: Final = "ghadelimiter_"
_FORBIDDEN_IN_NAME: Final = (("=", "'='"), ("<<", "'<<'"), ("\r", "a carriage return"), ("\n", "a line feed"))
_APPEND_LOCK: Final = threading.Lock()


class FileCommandError(RuntimeError):
    """A file command cannot be written (e.g. its environment variable is unset)."""


def new_delimiter() -> str:
    """A random heredoc delimiter in the form @actions/core uses."""
    return f"{_DELIMITER_PREFIX}{uuid.uuid4()}"


def validate_name(name: str) -> None:
    """Raise :class:`ValueError` unless ``name`` can be a file-command key."""
    if not isinstance(name, str) or not name:
        raise ValueError("file command name must be a non-empty string")
    for token, label in _FORBIDDEN_IN_NAME:
        if token in name:
            raise ValueError(f"file command name {name!r} must not contain {label}")
    if "\0" in name:
        raise ValueError(f"file command name {name!r} must not contain a NUL character")


def format_file_command(
    name: str,
    value: object,
    *,
    delimiter_factory: Callable[[], str] = new_delimiter,
    max_value_bytes: int | None = None,
) -> bytes:
    """Return the UTF-8 bytes of one heredoc record.

    Non-string values are JSON-encoded (``True`` -> ``true``, ``None`` -> ``""``).
    The delimiter is regenerated until it occurs neither in the name nor in the
    value (as a substring, hence also not as a line).
    """
    validate_name(name)
    text = to_command_value(value)
    encoded_value = text.encode("utf-8", errors="replace")
    if max_value_bytes is not None and len(encoded_value) > max_value_bytes:
        raise ValueError(
            f"value of {name!r} is {len(encoded_value)} bytes; GitHub accepts at most "
            f"{max_value_bytes} bytes (write large data to a file instead)"
        )
    for _ in range(1000):
        delimiter = delimiter_factory()
        if (
            delimiter
            and "\n" not in delimiter
            and "\r" not in delimiter
            and delimiter not in text
            and delimiter not in name
        ):
            break
    else:
        raise RuntimeError("could not generate a heredoc delimiter absent from the value")
    return b"".join(
        (
            name.encode("utf-8"),
            b"<<",
            delimiter.encode("utf-8"),
            b"\n",
            encoded_value,
            b"\n",
            delimiter.encode("utf-8"),
            b"\n",
        )
    )


class FileCommandWriter:
    """Appends heredoc records to one file-command file."""

    def __init__(self, path: str | os.PathLike[str], *, max_value_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.max_value_bytes = max_value_bytes

    @classmethod
    def from_env(cls, variable: str, *, max_value_bytes: int | None = None) -> FileCommandWriter:
        """The writer for the file named by environment variable ``variable``;
        :class:`FileCommandError` if it is unset or empty."""
        path = os.environ.get(variable, "")
        if not path:
            raise FileCommandError(
                f"${variable} is not set: not running as a GitHub Actions step (or the runner is too old "
                "for file commands); refusing to fall back to deprecated workflow commands"
            )
        return cls(path, max_value_bytes=max_value_bytes)

    def write(self, name: str, value: object) -> None:
        """Append one ``name``/``value`` record in a single write."""
        record = format_file_command(name, value, max_value_bytes=self.max_value_bytes)
        with _APPEND_LOCK, open(self.path, "ab") as handle:
            handle.write(record)


def set_output(name: str, value: object) -> None:
    """Set step output ``name`` (``$GITHUB_OUTPUT``); values over
    :data:`MAX_OUTPUT_BYTES` raise :class:`ValueError`."""
    FileCommandWriter.from_env(OUTPUT_FILE, max_value_bytes=MAX_OUTPUT_BYTES).write(name, value)


def export_variable(name: str, value: object) -> None:
    """Set environment variable ``name`` for later steps (``$GITHUB_ENV``).
    The current process environment is updated too, like @actions/core."""
    text = to_command_value(value)
    if "\0" in text:
        raise ValueError(f"value of environment variable {name!r} must not contain a NUL character")
    FileCommandWriter.from_env(ENV_FILE).write(name, text)
    os.environ[name] = text


def save_state(name: str, value: object) -> None:
    """Save ``name`` for this action's pre/post stages (``$GITHUB_STATE``;
    read back there as ``STATE_<name>``)."""
    FileCommandWriter.from_env(STATE_FILE).write(name, value)
