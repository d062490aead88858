"""SIGINT/SIGTERM handling for the whole life of the CLI or the action process.

Handlers are installed first thing in ``main()``, not just around the run: in a Docker action
Python is PID 1, where an unhandled SIGTERM is silently dropped, and a SIGINT during start-up
would otherwise end in a KeyboardInterrupt traceback with no outputs. A signal that arrives before
the run starts makes the run stop at once (everything ``cancelled``, partial outputs written); one
that arrives during the run stops the executor; one that arrives afterwards only changes the exit
code.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType

__all__ = ["first_signal", "install", "installed", "stopping"]

_received: list[str] = []
_installed = False
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _handler(signum: int, frame: FrameType | None) -> None:
    _received.append(signal.Signals(signum).name)


def install() -> None:
    """Record SIGINT and SIGTERM from now on (main thread only; idempotent)."""
    global _installed
    for sig in _SIGNALS:
        signal.signal(sig, _handler)
    _installed = True


def installed() -> bool:
    return _installed


def first_signal() -> str | None:
    return _received[0] if _received else None


@contextlib.contextmanager
def stopping(stop: Callable[[str], None]) -> Iterator[None]:
    """While inside, SIGINT/SIGTERM call ``stop(reason)``; a signal received earlier does so at once.

    Only where :func:`install` was called. During the run the loop's own signal handling is used
    (it wakes the loop through its self-pipe whichever thread the kernel picked); afterwards the
    recording handler is put back.
    """
    if not _installed:
        yield
        return
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        _received.append(sig.name)
        stop(f"cancelled by {sig.name}")

    added: list[signal.Signals] = []
    for sig in _SIGNALS:
        try:
            loop.add_signal_handler(sig, on_signal, sig)
            added.append(sig)
        except (RuntimeError, ValueError):  # not the main thread
            pass
    try:
        if _received:
            stop(f"cancelled by {_received[0]}")
        yield
    finally:
        for sig in added:
            loop.remove_signal_handler(sig)
            signal.signal(sig, _handler)
