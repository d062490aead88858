"""Action inputs, read from ``INPUT_*`` environment variables.

The runner names the variable ``INPUT_`` + the input name with spaces replaced
by ``_`` and upper-cased; hyphens are kept (``max-parallel`` ->
``INPUT_MAX-PARALLEL``).  Every declared input is present (its default or an
empty string), and ``required: true`` is not enforced by the runner, so an
empty value counts as "not supplied".
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Final

__all__ = [
    "FALSE_SPELLINGS",
    "TRUE_SPELLINGS",
    "InputError",
    "get_bool_input",
    "get_float_input",
    "get_input",
    "get_int_input",
    "get_multiline_input",
    "input_env_name",
]

#: YAML 1.2 core schema booleans, as accepted by @actions/core getBooleanInput.
TRUE_SPELLINGS: Final = ("true", "True", "TRUE")
FALSE_SPELLINGS: Final = ("false", "False", "FALSE")

_INT_RE: Final = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_LINE_SPLIT_RE: Final = re.compile(r"\r?\n")
_SHOWN_VALUE_CHARS: Final = 80


class InputError(ValueError):
    """An action input is missing or malformed; the message names the input."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"input {name!r}: {problem}")
        self.input_name = name


def input_env_name(name: str) -> str:
    """The environment variable the runner uses for input ``name``."""
    return "INPUT_" + name.replace(" ", "_").upper()


def _shown(value: str) -> str:
    if len(value) > _SHOWN_VALUE_CHARS:
        value = value[:_SHOWN_VALUE_CHARS] + "…"
    return repr(value)


def _raw(name: str, environ: Mapping[str, str] | None) -> str:
    env = os.environ if environ is None else environ
    return env.get(input_env_name(name), "")


def get_input(
    name: str,
    *,
    required: bool = False,
    default: str | None = None,
    trim: bool = True,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The input's value (stripped unless ``trim=False``).

    An empty value is "not supplied": :class:`InputError` if ``required``,
    else ``default`` (or ``""``)."""
    value = _raw(name, environ)
    if trim:
        value = value.strip()
    if value == "":
        if required:
            raise InputError(name, "a value is required but none was supplied")
        return default if default is not None else ""
    return value


def _absent(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = get_input(name, environ=environ)
    return value or None


def get_bool_input(
    name: str, default: bool | None = None, *, environ: Mapping[str, str] | None = None
) -> bool:
    """Parse a YAML 1.2 core boolean (``true|True|TRUE|false|False|FALSE``).

    Empty -> ``default`` (required when ``default`` is ``None``)."""
    value = _absent(name, environ)
    if value is None:
        if default is None:
            raise InputError(name, "a boolean value is required but none was supplied")
        return default
    if value in TRUE_SPELLINGS:
        return True
    if value in FALSE_SPELLINGS:
        return False
    accepted = " | ".join(TRUE_SPELLINGS + FALSE_SPELLINGS)
    raise InputError(name, f"expected a boolean ({accepted}), got {_shown(value)}")


def _bounds(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" between {minimum} and {maximum}"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def get_int_input(
    name: str,
    default: int | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Parse a whole number written with ASCII digits (optional sign).

    Empty -> ``default`` (required when ``default`` is ``None``); the default is
    not range-checked."""
    value = _absent(name, environ)
    expected = f"expected a whole number{_bounds(minimum, maximum)}"
    if value is None:
        if default is None:
            raise InputError(name, f"{expected}, but none was supplied")
        return default
    if not _INT_RE.fullmatch(value):
        raise InputError(name, f"{expected}, got {_shown(value)}")
    number = int(value)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise InputError(name, f"{expected}, got {_shown(value)}")
    return number


def get_float_input(
    name: str,
    default: float | None = None,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    """Parse a finite decimal number (``1``, ``2.5``, ``.5``, ``1e3``; no
    ``nan``/``inf``).  Empty -> ``default`` (required when ``None``)."""
    value = _absent(name, environ)
    expected = f"expected a number{_bounds(minimum, maximum)}"
    if value is None:
        if default is None:
            raise InputError(name, f"{expected}, but none was supplied")
        return default
    if not _FLOAT_RE.fullmatch(value):
        raise InputError(name, f"{expected}, got {_shown(value)}")
    number = float(value)
    if (
        not math.isfinite(number)
        or (minimum is not None and number < minimum)
        or (maximum is not None and number > maximum)
    ):
        raise InputError(name, f"{expected}, got {_shown(value)}")
    return number


def get_multiline_input(
    name: str,
    *,
    required: bool = False,
    trim: bool = True,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Split the input on ``\\r?\\n``; each line stripped unless ``trim=False``;
    empty lines dropped.  ``required``: at least one line must remain."""
    lines = _LINE_SPLIT_RE.split(_raw(name, environ))
    if trim:
        lines = [line.strip() for line in lines]
    lines = [line for line in lines if line != ""]
    if required and not lines:
        raise InputError(name, "at least one line is required but none was supplied")
    return lines
