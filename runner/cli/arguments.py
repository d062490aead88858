"""argparse ``type=`` converters shared by the CLI's subcommands: one line per bad value."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["float_arg", "positive_int"]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def float_arg(expected: str, accept: Callable[[float], bool], bound: str) -> Callable[[str], float]:
    """A converter for numbers ``accept`` allows; errors: ``expected <expected>``, ``must be <bound>``."""

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):  # NaN fails every comparison, so it is refused too
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return convert
