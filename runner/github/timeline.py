"""The run's timeline as a Mermaid ``gantt`` chart for the job summary (GitHub renders Mermaid there
and in comments).

One bar per hypothesis that started (``started_at`` in its result), from its start to start +
``duration_s``, tagged by status: ``done`` passed, ``crit`` failed or error, ``crit, active`` timed
out, no tag cancelled. The label starts with the status icon so the colour is not the only cue.

Times are written relative to the first start as ``HH:mm:ss.SSS`` (``dateFormat``), and the axis shows
the same clock (``axisFormat``): Mermaid parses and formats both in the viewer's time zone, so the
axis reads as time since the run started, whatever that zone is. ``todayMarker off``: with a
time-only format "today" would land at the viewer's time of day.

Names are untrusted. In a chart line everything before the first ``:`` is the label, ``#`` and
``%%`` start comments, ``;`` ends a statement, keywords (``section``, ``click``, ``title``,
``dateFormat`` …) at the start of a line change what the line means, and a backtick run or a
newline could end the fenced block. A label therefore keeps only letters, digits, spaces and
``_ . - + = @ / ( )`` (everything else becomes ``_``), is cut to :data:`MAX_LABEL_CHARS`, and
starts with the status icon (never a keyword).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Final

from runner.engine.timestamps import parse_started_at

__all__ = ["MAX_BARS", "MAX_LABEL_CHARS", "gantt_label", "render_timeline"]

#: More bars than this and the chart is left out (unreadable, and slow to render).
MAX_BARS: Final = 100
MAX_LABEL_CHARS: Final = 40
#: A time-only date format wraps at 24 h; no run's timeline is drawn past that.
_MAX_SPAN_S: Final = 23 * 3600

_UNSAFE_LABEL: Final = re.compile(r"[^\w .+=@/()-]")
_SPACES: Final = re.compile(r"\s+")
_TAGS: Final[Mapping[str, str]] = {
    "passed": "done, ",
    "failed": "crit, ",
    "error": "crit, ",
    "timeout": "crit, active, ",
}


def gantt_label(name: str, icon: str) -> str:
    """A chart label for an untrusted name: nothing in it has Mermaid or Markdown meaning."""
    text = unicodedata.normalize("NFKC", name)
    # Line and paragraph separators, tabs, CR: a space; other control and format characters: gone.
    text = "".join(
        " " if ch.isspace() else ch for ch in text if ch.isspace() or unicodedata.category(ch)[0] != "C"
    )
    text = _UNSAFE_LABEL.sub("_", text)
    text = _SPACES.sub(" ", text).strip()
    if len(text) > MAX_LABEL_CHARS:
        text = text[: MAX_LABEL_CHARS - 1].rstrip() + "…"
    return f"{icon} {text or '_'}"


def _clock(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def render_timeline(results: object, icons: Mapping[str, str]) -> str:
    """A ``### Timeline`` section with the chart, or ``""`` when there is nothing to draw (no result
    has a start time, more than :data:`MAX_BARS` have, or the run spans a day)."""
    bars: list[tuple[float, float, str, str]] = []
    for index, raw in enumerate(results if isinstance(results, Sequence) else []):
        entry: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        start = parse_started_at(entry.get("started_at"))
        duration = entry.get("duration_s")
        if start is None or isinstance(duration, bool) or not isinstance(duration, int | float):
            continue
        if not 0 <= duration < _MAX_SPAN_S:
            continue
        name = entry.get("name")
        status = entry.get("status") if isinstance(entry.get("status"), str) else "error"
        bars.append((start, float(duration), name if isinstance(name, str) else f"#{index + 1}", str(status)))
    if not bars or len(bars) > MAX_BARS:
        return ""
    first = min(start for start, _, _, _ in bars)
    span = max(start + duration for start, duration, _, _ in bars) - first
    if span >= _MAX_SPAN_S:
        return ""
    lines = [
        "gantt",
        "    dateFormat HH:mm:ss.SSS",
        f"    axisFormat {'%H:%M:%S' if span >= 3600 else '%M:%S'}",
        "    todayMarker off",
        "    section hypotheses",
    ]
    for start, duration, name, status in sorted(bars, key=lambda bar: bar[0]):
        begin = start - first
        end = begin + max(duration, 0.001)  # a zero-length bar would not be drawn at all
        label = gantt_label(name, icons.get(status, "❔"))
        lines.append(f"    {label} :{_TAGS.get(status, '')}{_clock(begin)}, {_clock(end)}")
    return "### Timeline\n\n```mermaid\n" + "\n".join(lines) + "\n```\n\n"
