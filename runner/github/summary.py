"""Job summary (``$GITHUB_STEP_SUMMARY``) for a results document (schema 1).

GitHub drops a step's *whole* summary when the file is larger than
:data:`MAX_SUMMARY_BYTES`, so :func:`render_summary` measures the UTF-8 size and
degrades in stages until the text fits :data:`SUMMARY_TARGET_BYTES` (or, with
``max_chars``, a character count: a pull-request comment is limited to 65,536
characters):

1. everything: totals, table, the full output tail of every failing hypothesis;
2. tails shortened to the last :data:`REDUCED_TAIL_LINES` lines /
   :data:`REDUCED_TAIL_BYTES` bytes;
3. the full table plus only as many shortened tails as fit (possibly none),
   with a note saying how many were left out;
4. the table itself cut short, failing rows first, with a note
   "Summary truncated: N of M hypotheses shown".

Before stage 1 comes stage 1 plus the run's timeline, a Mermaid ``gantt`` chart of the
hypotheses that have ``started_at`` (runner/github/timeline.py): it is the first thing dropped.

A last line-based cut (closing any open code fence and ``<details>``) guarantees
the limit even for absurd titles or notes.

All untrusted text (names, refs, commits, tails, error messages, notes) is
neutralised: control characters and ANSI escapes removed, Markdown/HTML
escaped in prose and table cells, and code fences longer than any backtick run
in the text they enclose.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from runner.github import test_verdicts
from runner.github.file_commands import FileCommandError
from runner.github.timeline import render_timeline

__all__ = [
    "MAX_SUMMARY_BYTES",
    "REDUCED_TAIL_BYTES",
    "REDUCED_TAIL_LINES",
    "STATUS_ICONS",
    "SUMMARY_TARGET_BYTES",
    "clean_text",
    "code_fence",
    "escape_inline",
    "fenced_block",
    "render_summary",
    "write_summary",
]

#: The runner refuses (drops entirely) a step summary larger than this.
MAX_SUMMARY_BYTES: Final = 1024 * 1024
#: What :func:`render_summary` aims for: leaves room for secret masking and
#: anything appended later.
SUMMARY_TARGET_BYTES: Final = 1_000_000
#: Stage-2 tail limits (per failing hypothesis).
REDUCED_TAIL_LINES: Final = 200
REDUCED_TAIL_BYTES: Final = 8 * 1024

_MAX_CELL_CHARS: Final = 500
_MAX_TITLE_CHARS: Final = 200
_MAX_ERROR_CHARS: Final = 2000
_MAX_NOTE_CHARS: Final = 2000

STATUS_ICONS: Final[Mapping[str, str]] = {
    "passed": "✅",
    "failed": "❌",
    "timeout": "⏱️",
    "error": "💥",
    "cancelled": "🚫",
}
_FAILING: Final = frozenset({"failed", "timeout", "error"})
_STATUS_RANK: Final[Mapping[str, int]] = {"error": 0, "timeout": 0, "failed": 0, "cancelled": 1, "passed": 2}

_ANSI_RE: Final = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
_CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE_RE: Final = re.compile(r"[\ud800-\udfff]")
_BACKTICKS_RE: Final = re.compile(r"`+")
_HEX_RE: Final = re.compile(r"[0-9a-fA-F]{7,64}")
_FENCE_LINE_RE: Final = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")

_INLINE_ESCAPES: Final = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "|": "&#124;",
        "`": "&#96;",
        "\\": "\\\\",
        "*": "\\*",
        "_": "\\_",
        "[": "\\[",
        "]": "\\]",
        "(": "\\(",
        ")": "\\)",
        "!": "\\!",
        "#": "\\#",
        "~": "\\~",
        "@": "\\@",
        "\n": " ",
        "\t": " ",
        "\u2028": " ",
        "\u2029": " ",
    }
)


# Inside an HTML block Markdown is not parsed; these are escaped anyway in case
# a renderer does.
_HTML_EXTRA_ESCAPES: Final = str.maketrans(
    {"`": "&#96;", "|": "&#124;", "[": "&#91;", "]": "&#93;", "*": "&#42;", "_": "&#95;", "~": "&#126;"}
)


class _Overflow(Exception):
    """The document under construction no longer fits its budget."""


def _nbytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", errors="replace"))


def _nchars(text: str) -> int:
    """Characters as UTF-16 code units: never fewer than code points, so a text
    that fits counts as fitting whichever of the two a server counts."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le", errors="surrogatepass")) // 2


def clean_text(text: str) -> str:
    """Normalise line ends to LF and drop ANSI escapes and control characters
    (everything below U+0020 except TAB and LF, DEL, C1); lone surrogates
    become U+FFFD."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x1b" in text:
        text = _ANSI_RE.sub("", text)
    text = _CONTROL_RE.sub("", text)
    return _SURROGATE_RE.sub("\ufffd", text)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape_inline(text: str, limit: int = _MAX_CELL_CHARS) -> str:
    """Plain text for a table cell or a paragraph: one line, no Markdown or
    HTML meaning (``|`` and backticks become entities)."""
    return _shorten(clean_text(text), limit).translate(_INLINE_ESCAPES)


def _escape_html(text: str, limit: int = _MAX_CELL_CHARS) -> str:
    one_line = _shorten(clean_text(text), limit).replace("\n", " ").replace("\t", " ")
    return html.escape(one_line, quote=True).translate(_HTML_EXTRA_ESCAPES)


def _code_span(text: str, limit: int = _MAX_CELL_CHARS) -> str:
    content = _shorten(clean_text(text), limit).replace("\n", " ").replace("\t", " ")
    longest = max((len(run) for run in _BACKTICKS_RE.findall(content)), default=0)
    ticks = "`" * (longest + 1)
    if content.startswith(("`", " ")) or content.endswith(("`", " ")):
        content = f" {content} "
    return f"{ticks}{content}{ticks}"


def code_fence(text: str) -> str:
    """A backtick fence longer than every backtick run in ``text`` (>= 3)."""
    longest = max((len(run) for run in _BACKTICKS_RE.findall(text)), default=0)
    return "`" * max(3, longest + 1)


def _fenced(text: str) -> str:
    body = text if text.endswith("\n") else text + "\n"
    fence = code_fence(body)
    return f"{fence}text\n{body}{fence}\n"


def fenced_block(text: str) -> str:
    """Untrusted ``text`` as a Markdown code block it cannot break out of (cleaned, fenced)."""
    return _fenced(clean_text(text))


def _reduce_tail(text: str, max_lines: int, max_bytes: int) -> str:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    dropped = max(0, len(lines) - max_lines)
    kept = "\n".join(lines[dropped:])
    raw = kept.encode("utf-8")
    if len(raw) > max_bytes:
        cut = raw[-max_bytes:].decode("utf-8", errors="ignore")
        newline = cut.find("\n")
        if 0 <= newline < len(cut) - 1:
            cut = cut[newline + 1 :]
        dropped += kept.count("\n") - cut.count("\n")
        kept = cut
    if dropped or len(raw) > max_bytes:
        return f"[… {dropped} earlier line(s) not shown …]\n{kept}"
    return kept


def _format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _as_str(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _as_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class _Entry:
    index: int
    name: str
    status: str
    exit_code: int | None
    duration_s: float | None
    ref: str | None
    commit: str | None
    output_tail: str
    error: str | None
    cached: bool = False  # the result came from the result cache

    @classmethod
    def parse(cls, index: int, raw: object) -> _Entry:
        data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        status = _as_str(data.get("status")) or "error"
        return cls(
            index=index,
            name=_as_str(data.get("name")) or f"#{index + 1}",
            status=status,
            exit_code=_as_int(data.get("exit_code")),
            duration_s=_as_float(data.get("duration_s")),
            ref=_as_str(data.get("ref")),
            commit=_as_str(data.get("commit")),
            output_tail=_as_str(data.get("output_tail")) or "",
            error=_as_str(data.get("error")),
            cached=data.get("cached") is True,
        )

    @property
    def failing(self) -> bool:
        return self.status in _FAILING


def _status_label(status: str) -> str:
    icon = STATUS_ICONS.get(status, "❔")
    return f"{icon} {escape_inline(status, 40)}"


def _ref_cell(entry: _Entry) -> str:
    parts: list[str] = []
    if entry.ref:
        parts.append(escape_inline(entry.ref))
    if entry.commit:
        if _HEX_RE.fullmatch(entry.commit):
            parts.append(f"`{entry.commit[:7].lower()}`")
        else:
            parts.append(escape_inline(entry.commit, 40))
    return " @ ".join(parts) if parts else "—"


def _row(entry: _Entry, best: str | None, verdicts: str = "") -> str:
    name = escape_inline(entry.name)
    if best is not None and entry.name == best:
        name += " ⭐"
    if entry.cached:
        name += " (cached)"
    exit_code = str(entry.exit_code) if entry.exit_code is not None else "—"
    return (
        f"| {_status_label(entry.status)} | {name} | {_ref_cell(entry)} | "
        f"{_format_duration(entry.duration_s)} | {exit_code} |{verdicts}\n"
    )


_TABLE_HEAD: Final = (
    "| Status | Hypothesis | Ref @ commit | Duration | Exit code |\n| --- | --- | --- | ---: | ---: |\n"
)


def _details(entry: _Entry, tail: str) -> str:
    label = f"{STATUS_ICONS.get(entry.status, '❔')} {entry.name} — {entry.status}"
    if entry.exit_code is not None:
        label += f" (exit code {entry.exit_code})"
    parts = [f"<details><summary>{_escape_html(label)}</summary>\n\n"]
    if entry.error:
        parts.append(f"**Error:** {escape_inline(entry.error, _MAX_ERROR_CHARS)}\n\n")
    if tail.strip():
        parts.append(_fenced(tail))
        parts.append("\n")
    else:
        parts.append("_(no output captured)_\n\n")
    parts.append("</details>\n\n")
    return "".join(parts)


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else (plural or singular + 's')}"


_LEVEL_WORDS: Final[Mapping[str, tuple[str, str]]] = {
    "error": ("error", "errors"),
    "warning": ("warning", "warnings"),
    "notice": ("notice", "notices"),
}


class _Doc:
    def __init__(self, limit: int, measure: Callable[[str], int] = _nbytes) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit
        self.measure = measure
        self.table_head = _TABLE_HEAD  # with per-test data: plus fixed / broken / flaky columns

    def fits(self, text: str, reserve: int = 0) -> bool:
        return self.size + self.measure(text) + reserve <= self.limit

    def add(self, text: str, reserve: int = 0) -> None:
        size = self.measure(text)
        if self.size + size + reserve > self.limit:
            raise _Overflow
        self.parts.append(text)
        self.size += size

    def text(self) -> str:
        return "".join(self.parts)


def _count(results: Mapping[str, Any], key: str, entries: Sequence[_Entry], statuses: Iterable[str]) -> int:
    value = _as_int(results.get(key))
    if value is not None:
        return value
    wanted = set(statuses)
    return sum(1 for entry in entries if entry.status in wanted)


def _render_head(
    results: Mapping[str, Any],
    entries: Sequence[_Entry],
    *,
    title: str,
    cancelled_run: bool,
    annotation_overflow: Mapping[str, int] | None,
    extra_notes: Sequence[str] | None,
) -> str:
    conclusion = _as_str(results.get("conclusion")) or "unknown"
    icon = {"success": "✅", "failure": "❌"}.get(conclusion, "⚠️")
    totals = ", ".join(
        (
            f"{_count(results, 'passed', entries, ['passed'])} passed",
            f"{_count(results, 'failed', entries, ['failed'])} failed",
            f"{_count(results, 'timed_out', entries, ['timeout'])} timed out",
            _plural(_count(results, "errors", entries, ["error"]), "error"),
            f"{_count(results, 'cancelled', entries, ['cancelled'])} cancelled",
        )
    )
    line = f"**{icon} {escape_inline(conclusion, 40)}** — {totals}"
    duration = _as_float(results.get("duration_s"))
    if duration is not None:
        line += f" in {_format_duration(duration)}"
    best = _as_str(results.get("best"))
    if best:
        line += f"; best: {_code_span(best)}"
    parts = [f"## {escape_inline(title, _MAX_TITLE_CHARS)}\n\n", line + "\n\n"]
    if cancelled_run:
        parts.append(
            "> **⚠️ The run was cancelled — partial results.** "
            "Hypotheses that had not finished are reported as cancelled.\n\n"
        )
    notes: list[str] = []
    for level, count in (annotation_overflow or {}).items():
        if not isinstance(count, int) or count <= 0:
            continue
        singular, plural = _LEVEL_WORDS.get(level, (f"{escape_inline(level, 40)} annotation",) * 2)
        verb = "was" if count == 1 else "were"
        notes.append(
            f"{count} more {singular if count == 1 else plural} {verb} not annotated "
            "(GitHub shows at most 10 per level per step); see the log."
        )
    notes.extend(escape_inline(note, _MAX_NOTE_CHARS) for note in (extra_notes or ()))
    if notes:
        parts.append("".join(f"- {note}\n" for note in notes) + "\n")
    return "".join(parts)


class _TailCache:
    """Cleaned (and reduced) tails, computed once across the stages."""

    def __init__(self) -> None:
        self._clean: dict[int, str] = {}
        self._reduced: dict[int, str] = {}

    def full(self, entry: _Entry) -> str:
        tail = self._clean.get(entry.index)
        if tail is None:
            tail = self._clean[entry.index] = clean_text(entry.output_tail)
        return tail

    def reduced(self, entry: _Entry) -> str:
        tail = self._reduced.get(entry.index)
        if tail is None:
            tail = self._reduced[entry.index] = _reduce_tail(
                self.full(entry), REDUCED_TAIL_LINES, REDUCED_TAIL_BYTES
            )
        return tail


def _render_full(
    doc: _Doc,
    head: str,
    rows: Sequence[str],
    failing: Sequence[_Entry],
    tails: _TailCache,
    reduced: bool,
    timeline: str = "",
) -> None:
    doc.add(head)
    doc.add(doc.table_head)
    for row in rows:
        doc.add(row)
    doc.add("\n")
    if timeline:
        doc.add(timeline)
    if failing:
        doc.add("### Output of failing hypotheses\n\n")
    for entry in failing:
        doc.add(_details(entry, tails.reduced(entry) if reduced else tails.full(entry)))


def _note(text: str) -> str:
    return f"**{text}**\n"


def _render_partial_tails(
    doc: _Doc, head: str, rows: Sequence[str], failing: Sequence[_Entry], tails: _TailCache
) -> None:
    reserve = (
        doc.measure(_note(f"Output of {len(failing)} of {len(failing)} failing hypotheses not shown")) + 200
    )
    doc.add(head)
    doc.add(doc.table_head)
    for row in rows:
        doc.add(row, reserve)
    doc.add("\n", reserve)
    shown = 0
    if failing and doc.fits("### Output of failing hypotheses\n\n", reserve + 1000):
        doc.add("### Output of failing hypotheses\n\n")
        for entry in failing:
            block = _details(entry, tails.reduced(entry))
            if not doc.fits(block, reserve):
                break
            doc.add(block)
            shown += 1
    if shown < len(failing):
        doc.add(
            _note(
                f"Output of {len(failing) - shown} of {len(failing)} failing hypotheses not shown "
                "(summary size limit); see the results file"
            )
        )


def _render_truncated_table(doc: _Doc, head: str, entries: Sequence[_Entry], rows: Sequence[str]) -> None:
    total = len(entries)
    reserve = (
        doc.measure(_note(f"Summary truncated: {total} of {total} hypotheses shown; see the results file"))
        + 8
    )
    doc.add(head)
    doc.add(doc.table_head, reserve)
    ordered = sorted(entries, key=lambda entry: (_STATUS_RANK.get(entry.status, 0), entry.index))
    shown = 0
    for entry in ordered:
        row = rows[entry.index]
        if not doc.fits(row, reserve):
            break
        doc.add(row)
        shown += 1
    doc.add("\n")
    doc.add(_note(f"Summary truncated: {shown} of {total} hypotheses shown; see the results file"))


def _truncate_lines(text: str, limit: int, measure: Callable[[str], int] = _nbytes) -> str:
    """Cut ``text`` at a line boundary so that, with the closing of any open
    fence / ``<details>`` and a note, it fits ``limit`` (bytes, or whatever
    ``measure`` counts)."""
    note = "\n**Summary truncated; see the results file**\n"
    budget = limit - measure(note)
    out: list[str] = []
    size = 0
    fence: str | None = None
    open_details = 0
    for line in text.splitlines(keepends=True):
        new_fence, new_details = fence, open_details
        match = _FENCE_LINE_RE.fullmatch(line.rstrip("\n"))
        if fence is None:
            if match:
                new_fence = match.group(1)
            elif line.startswith("<details>"):
                new_details += 1
            elif line.startswith("</details>") and new_details:
                new_details -= 1
        elif (
            match
            and match.group(1)[0] == fence[0]
            and len(match.group(1)) >= len(fence)
            and not match.group(2).strip()
        ):
            new_fence = None
        closing = (len(new_fence) + 2 if new_fence else 0) + len("\n</details>\n") * new_details
        cost = measure(line)
        if size + cost + closing > budget:
            break
        out.append(line)
        size += cost
        fence, open_details = new_fence, new_details
    if out and not out[-1].endswith("\n"):
        out.append("\n")
    if fence:
        out.append(fence + "\n")
    out.extend("\n</details>\n" for _ in range(open_details))
    out.append(note)
    result = "".join(out)
    return result if measure(result) <= limit else note.strip()[: max(0, limit)]


def render_summary(
    results: Mapping[str, Any],
    *,
    title: str = "worktree-runner",
    cancelled_run: bool = False,
    annotation_overflow: Mapping[str, int] | None = None,
    extra_notes: Sequence[str] | None = None,
    max_bytes: int = SUMMARY_TARGET_BYTES,
    max_chars: int | None = None,
) -> str:
    """Render the Markdown job summary for a results document (schema 1).

    The result is at most ``max_bytes`` UTF-8 bytes (default
    :data:`SUMMARY_TARGET_BYTES`, below GitHub's :data:`MAX_SUMMARY_BYTES`).
    With ``max_chars`` the size is counted in characters instead (UTF-16 code
    units, which are never fewer than code points) and the result is at most
    ``max_chars`` of them; ``max_bytes`` is then not used.  GitHub limits a
    comment body to 65,536 characters.  The same staged degradation applies in
    both units.
    """
    if max_chars is not None:
        limit, measure = max_chars, _nchars
    else:
        limit, measure = max_bytes, _nbytes
    raw_entries = results.get("results")
    entries = [
        _Entry.parse(i, raw) for i, raw in enumerate(raw_entries if isinstance(raw_entries, list) else [])
    ]
    best = _as_str(results.get("best"))
    head = _render_head(
        results,
        entries,
        title=title,
        cancelled_run=cancelled_run,
        annotation_overflow=annotation_overflow,
        extra_notes=extra_notes,
    )
    rows = [_row(entry, best) for entry in entries]
    table_head = _TABLE_HEAD
    if test_verdicts.has_verdicts(results):  # per-test data: columns, and what differs (collapsed)
        raw = raw_entries if isinstance(raw_entries, list) else []
        rows = [_row(entry, best, test_verdicts.verdict_cells(raw[entry.index])) for entry in entries]
        first, second = _TABLE_HEAD.rstrip("\n").split("\n")
        table_head = f"{first}{test_verdicts.VERDICT_HEAD[0]}\n{second}{test_verdicts.VERDICT_HEAD[1]}\n"
        head += test_verdicts.differing_tests_section(
            results, escape=escape_inline, budget=min(limit // 8, 64 * 1024), measure=measure
        )
    failing = [entry for entry in entries if entry.failing]
    tails = _TailCache()

    # The timeline chart (results with ``started_at``) is the first thing dropped when space runs out.
    timeline = render_timeline(raw_entries, STATUS_ICONS)
    stages: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
        *([(_render_full, (head, rows, failing, tails, False, timeline))] if timeline else []),
        (_render_full, (head, rows, failing, tails, False)),
        (_render_full, (head, rows, failing, tails, True)),
        (_render_partial_tails, (head, rows, failing, tails)),
        (_render_truncated_table, (head, entries, rows)),
    ]
    for render, args in stages:
        doc = _Doc(limit, measure)
        doc.table_head = table_head
        try:
            render(doc, *args)
        except _Overflow:
            continue
        return doc.text()
    return _truncate_lines(head + table_head + "".join(rows), limit, measure)


def write_summary(text: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Write ``text`` as the step summary, replacing any earlier content (so a
    partial summary written on cancellation can be replaced by the final one).

    ``path`` defaults to ``$GITHUB_STEP_SUMMARY`` (:class:`FileCommandError` if
    unset); :class:`ValueError` if the text exceeds :data:`MAX_SUMMARY_BYTES`.
    """
    if path is None:
        env_path = os.environ.get("GITHUB_STEP_SUMMARY", "")
        if not env_path:
            raise FileCommandError("$GITHUB_STEP_SUMMARY is not set: not running as a GitHub Actions step")
        path = env_path
    data = text.encode("utf-8", errors="replace")
    if len(data) > MAX_SUMMARY_BYTES:
        raise ValueError(
            f"step summary is {len(data)} bytes; GitHub drops summaries over {MAX_SUMMARY_BYTES} bytes"
        )
    target = Path(path)
    with open(target, "wb") as handle:
        handle.write(data)
    return target
