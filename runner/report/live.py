"""A live status line for a terminal: what is running, for how long, and how far the run is.

``[3/8] 0:42 · running 2: fix-a 12s, fix-b 3s`` is redrawn in place (carriage return, then
``ESC [ 2 K`` to erase the line) every :data:`REDRAW_INTERVAL_S` and on every start and finish. A
finished hypothesis still gets its permanent line (the same text as :func:`progress_line`, what a
non-terminal gets), printed above the status line, so the scrollback reads like a CI log. The line is
cut to the terminal's width (a wrapped line could not be redrawn in place) and erased when the run
ends. Names are untrusted: :func:`display_name` makes them printable (no escape sequences reach the
terminal).

The executor calls back on its event loop; the redraw timer is a daemon thread. One lock serialises
the writes.
"""

from __future__ import annotations

import os
import threading
import time
import unicodedata
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from runner.config import TestExecutionResult
from runner.engine.naming import display_name
from runner.report.progress import progress_line

__all__ = [
    "CLEAR_LINE",
    "REDRAW_INTERVAL_S",
    "LiveStatus",
    "cell_width",
    "format_elapsed",
    "wants_live_status",
]

REDRAW_INTERVAL_S = 0.5
#: Back to column 0 and erase the whole line.
CLEAR_LINE = "\r\x1b[2K"
_NAME_LIMIT = 40


def wants_live_status(stream: TextIO) -> bool:
    """A status line only on an interactive terminal that understands ANSI erase (not ``TERM=dumb``)."""
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return interactive and os.environ.get("TERM", "") != "dumb"


def format_elapsed(seconds: float) -> str:
    """``7s``, ``1:05``, ``1:02:03``: short, and it grows one character at a time."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}:{secs:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def cell_width(text: str) -> int:
    """Terminal columns ``text`` takes: wide East Asian characters count 2, combining marks 0."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _fit(text: str, columns: int) -> str:
    if cell_width(text) <= columns:
        return text
    out: list[str] = []
    used = 0
    for ch in text:
        w = 0 if unicodedata.combining(ch) else (2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1)
        if used + w > columns - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


class LiveStatus:
    """Use as a context manager around the run; pass :meth:`started` as ``RunOptions.on_start`` and
    :meth:`finished` as ``RunOptions.progress``."""

    def __init__(
        self,
        stream: TextIO,
        *,
        interval: float = REDRAW_INTERVAL_S,
        columns: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.interval = interval
        self._columns = columns or self._terminal_columns
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._began = clock()
        self._running: dict[str, float] = {}  # name -> start (clock); insertion order = start order
        self.done = 0
        self.total: int | None = None
        self._drawn = False

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> LiveStatus:
        self._began = self._clock()
        self._thread = threading.Thread(target=self._tick, name="worktree-runner-status", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop redrawing and erase the status line (idempotent)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            if self._drawn:
                self._write(CLEAR_LINE)
                self._drawn = False

    # -- events ------------------------------------------------------------------------------

    def started(self, name: str, total: int) -> None:
        with self._lock:
            self.total = total
            self._running[name] = self._clock()
            self._redraw()

    def finished(self, result: TestExecutionResult, done: int, total: int) -> None:
        with self._lock:
            self.done, self.total = done, total
            self._running.pop(result.name, None)
            self._write(CLEAR_LINE + progress_line(result, done, total) + "\n")
            self._drawn = False
            self._redraw()

    # -- drawing -----------------------------------------------------------------------------

    def _parts(self) -> tuple[str, list[str]]:
        now = self._clock()
        total = "?" if self.total is None else str(self.total)
        head = f"[{self.done}/{total}] {format_elapsed(now - self._began)}"
        running = sorted(self._running.items(), key=lambda item: item[1])  # longest-running first
        if running:
            head += f" · running {len(running)}"
        return head, [
            f"{display_name(name, _NAME_LIMIT)} {format_elapsed(now - since)}" for name, since in running
        ]

    def status_text(self) -> str:
        """The status line before it is cut to the terminal's width."""
        head, shown = self._parts()
        return f"{head}: {', '.join(shown)}" if shown else head

    def _line(self) -> str:
        columns = max(20, self._columns()) - 1  # never the last column: some terminals wrap there
        head, shown = self._parts()
        text = f"{head}: {', '.join(shown)}" if shown else head
        if cell_width(text) <= columns:
            return text
        # Keep whole names while they fit, then say how many more are running.
        for keep in range(len(shown) - 1, -1, -1):
            more = f" +{len(shown) - keep} more"
            candidate = f"{head}: {', '.join(shown[:keep])}{more}" if keep else f"{head}{more}"
            if cell_width(candidate) <= columns:
                return candidate
        return _fit(text, columns)

    def _redraw(self) -> None:
        # Caller holds the lock.
        if self._stop.is_set():
            return
        self._write(CLEAR_LINE + self._line())
        self._drawn = True

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                self._redraw()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed terminal must not fail the run
            self._stop.set()

    def _terminal_columns(self) -> int:
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 0
        if columns <= 0:  # a terminal that does not say (a fresh pty): $COLUMNS, else 80
            env = os.environ.get("COLUMNS", "")
            columns = int(env) if env.isdigit() and int(env) > 0 else 80
        return columns
