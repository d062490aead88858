"""Job summary rendering: layout, neutralisation of untrusted text, size guard."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from runner.github.file_commands import FileCommandError
from runner.github.summary import (
    MAX_SUMMARY_BYTES,
    REDUCED_TAIL_BYTES,
    SUMMARY_TARGET_BYTES,
    _truncate_lines,
    clean_text,
    code_fence,
    render_summary,
    write_summary,
)

SHA_A = "0123456789abcdef0123456789abcdef01234567"
HOSTILE_NAME = "| <script>alert(1)</script> ``` \n[x](http://e) *b* @someone"
_FENCE_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")


def result(name: str, status: str = "passed", **kw: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "status": status,
        "exit_code": 0 if status == "passed" else (1 if status == "failed" else None),
        "duration_s": 1.25,
        "ref": f"refs/heads/{name}",
        "commit": SHA_A,
        "log_path": f"/tmp/logs/{name}.log",
        "output_tail": f"output of {name}\n",
        "error": None,
    }
    entry.update(kw)
    return entry


def document(entries: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    counts = {
        s: sum(1 for e in entries if e["status"] == s) for s in ("passed", "failed", "timeout", "error")
    }
    doc: dict[str, Any] = {
        "schema": 1,
        "conclusion": "failure" if counts["failed"] + counts["timeout"] + counts["error"] else "success",
        "passed": counts["passed"],
        "failed": counts["failed"],
        "timed_out": counts["timeout"],
        "errors": counts["error"],
        "cancelled": sum(1 for e in entries if e["status"] == "cancelled"),
        "best": None,
        "duration_s": 12.34,
        "results": entries,
    }
    doc.update(kw)
    return doc


def scan_fences(markdown: str) -> tuple[list[str], list[str], bool]:
    """(fenced block contents, lines outside fences, still inside a fence at EOF)
    following CommonMark's fence rules."""
    blocks: list[str] = []
    outside: list[str] = []
    fence: str | None = None
    current: list[str] = []
    for line in markdown.split("\n"):
        match = _FENCE_OPEN.fullmatch(line)
        if fence is None:
            if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
                fence, current = match.group(1), []
            else:
                outside.append(line)
        elif (
            match
            and match.group(1)[0] == fence[0]
            and len(match.group(1)) >= len(fence)
            and not match.group(2).strip()
        ):
            blocks.append("\n".join(current))
            fence = None
        else:
            current.append(line)
    return blocks, outside, fence is not None


def table_rows(markdown: str) -> list[str]:
    _, outside, _ = scan_fences(markdown)
    return [line for line in outside if line.startswith("| ") and not line.startswith("| Status")][1:]


def nbytes(text: str) -> int:
    return len(text.encode("utf-8"))


# --- layout -----------------------------------------------------------------


def test_layout_totals_first_then_table_then_failing_details() -> None:
    entries = [
        result("fix-a"),
        result("fix-b", "failed", output_tail="assert 1 == 2\nFAILED\n"),
        result("fix-c", "timeout", exit_code=None, duration_s=75.0),
        result("fix-d"),
        result("fix-e", "error", exit_code=None, error="worktree add failed", output_tail=""),
    ]
    text = render_summary(document(entries, best="fix-a"))
    lines = text.split("\n")
    assert lines[0] == "## worktree-runner"
    totals = next(line for line in lines if line.startswith("**"))
    assert totals == (
        "**❌ failure** — 2 passed, 1 failed, 1 timed out, 1 error, 0 cancelled in 12.3 s; best: `fix-a`"
    )
    assert text.index(totals) < text.index("| Status |") < text.index("<details>")
    rows = table_rows(text)
    assert len(rows) == 5
    assert rows[0] == "| ✅ passed | fix-a ⭐ | refs/heads/fix-a @ `0123456` | 1.2 s | 0 |"
    assert "| ⏱️ timeout | fix-c |" in rows[2] and "1 min 15 s" in rows[2] and rows[2].endswith("| — |")
    # details only for failing hypotheses, in order
    summaries = re.findall(r"<summary>(.*?)</summary>", text)
    assert [s.split(" ")[1] for s in summaries] == ["fix-b", "fix-c", "fix-e"]
    blocks, _, open_at_end = scan_fences(text)
    assert not open_at_end
    assert "assert 1 == 2\nFAILED" in blocks
    assert "**Error:** worktree add failed" in text
    assert "output of fix-a" not in text


def test_success_and_plurals() -> None:
    text = render_summary(document([result("a"), result("b")], best="b"), title="My run")
    assert text.startswith("## My run\n")
    assert (
        "**✅ success** — 2 passed, 0 failed, 0 timed out, 0 errors, 0 cancelled in 12.3 s; best: `b`" in text
    )
    assert "<details>" not in text


def test_cancelled_note_only_when_cancelled() -> None:
    doc = document([result("a"), result("b", "cancelled", exit_code=None)])
    assert "cancelled — partial results" not in render_summary(doc)
    text = render_summary(doc, cancelled_run=True)
    note = text.index("The run was cancelled — partial results")
    assert note < text.index("| Status |")


def test_annotation_overflow_and_extra_notes() -> None:
    text = render_summary(
        document([result("a")]),
        annotation_overflow={"error": 3, "warning": 1, "notice": 0},
        extra_notes=["see <b>results.json</b> | now"],
    )
    assert "3 more errors were not annotated" in text
    assert "1 more warning was not annotated" in text
    assert "notice" not in text
    assert "see &lt;b&gt;results.json&lt;/b&gt; &#124; now" in text


def test_malformed_entries_do_not_crash() -> None:
    doc = {"schema": 1, "results": [{}, "junk", {"name": "x", "status": "passed", "duration_s": "fast"}]}
    text = render_summary(doc)
    assert len(table_rows(text)) == 3
    assert "**⚠️ unknown**" in text
    assert render_summary({"schema": 1}).startswith("## worktree-runner")


# --- neutralising untrusted text ----------------------------------------------


def test_hostile_names_cannot_break_the_table() -> None:
    entries = [
        result(HOSTILE_NAME, "failed", ref="a|b`c`<i>", commit="not-a-sha|<x>", output_tail="x\n"),
        result("ok"),
    ]
    text = render_summary(document(entries, best=HOSTILE_NAME))
    rows = table_rows(text)
    assert len(rows) == 2
    for row in rows:
        assert row.count("|") == 6  # five cells, no extra separators
    _, outside, _ = scan_fences(text)
    # the best name is a code span (literal text) delimited by a backtick run
    # longer than any inside it, closed on the same line
    totals = next(line for line in outside if line.startswith("**"))
    assert totals.endswith("; best: ````| <script>alert(1)</script> ```  [x](http://e) *b* @someone````")
    prose = "\n".join(line for line in outside if line != totals)
    for tag in ("<details>", "</details>", "<summary>", "</summary>"):
        prose = prose.replace(tag, "")
    assert "<" not in prose
    assert "](http" not in prose  # link syntax escaped
    assert "\\*b\\*" in rows[0]


@pytest.mark.parametrize(
    "tail",
    [
        "```\n# not a heading\n```",
        "````````\n</details>\n<script>x</script>\n~~~",
        "   ```\n``` ```\n",
        "ends with fence```",
    ],
)
def test_tail_cannot_close_its_fence(tail: str) -> None:
    text = render_summary(document([result("bad", "failed", output_tail=tail)]))
    blocks, outside, open_at_end = scan_fences(text)
    assert not open_at_end
    assert clean_text(tail).rstrip("\n") in blocks
    prose = "\n".join(outside)
    assert "<script>" not in prose
    assert prose.count("<details>") == prose.count("</details>") == 1


def test_control_characters_and_ansi_removed() -> None:
    tail = "\x1b[31mred\x1b[0m\x00nul\x07bell\r\nwin\rprogress\x1b]0;title\x07\ttab\udcff"
    text = render_summary(document([result("c\x00tl\x1b[1m", "failed", output_tail=tail)]))
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", text)
    assert "rednulbell\nwin\nprogress\ttab\ufffd" in text
    assert "| ❌ failed | ctl |" in text
    text.encode("utf-8")


def test_code_fence_longer_than_any_backtick_run() -> None:
    assert code_fence("plain") == "```"
    assert code_fence("a ``` b") == "````"
    assert code_fence("`" * 10) == "`" * 11


# --- size guard ---------------------------------------------------------------


def test_stage_two_shortens_tails() -> None:
    tail = "".join(f"line {i:06d} " + "z" * 100 + "\n" for i in range(600))  # ~66 KB each
    entries = [result(f"h{i}", "failed", output_tail=tail) for i in range(20)]
    text = render_summary(document(entries))
    assert nbytes(text) <= SUMMARY_TARGET_BYTES
    blocks, _, open_at_end = scan_fences(text)
    assert not open_at_end
    assert len(blocks) == 20
    for block in blocks:
        assert block.endswith("line 000599 " + "z" * 100)
        assert "earlier line(s) not shown" in block.split("\n")[0]
        assert nbytes(block) <= REDUCED_TAIL_BYTES + 200
    assert "Summary truncated" not in text


def test_stage_three_keeps_table_and_as_many_tails_as_fit() -> None:
    tail = "t" * 100 + "\n"
    tail = tail * 80  # ~8 KB
    entries = [result(f"h{i:04d}", "failed", output_tail=tail) for i in range(300)]
    text = render_summary(document(entries))
    assert nbytes(text) <= SUMMARY_TARGET_BYTES
    assert len(table_rows(text)) == 300
    blocks, _, open_at_end = scan_fences(text)
    assert not open_at_end
    assert 0 < len(blocks) < 300
    assert f"Output of {300 - len(blocks)} of 300 failing hypotheses not shown" in text
    assert text.count("<details>") == text.count("</details>") == len(blocks)


def test_ten_thousand_hypotheses_fit_and_keep_failing_rows() -> None:
    big_tail = ("x" * 127 + "\n") * 512  # 64 KiB, one shared object
    entries = []
    for i in range(10_000):
        name = f"h{i:05d}-" + "é" * 150 + "n" * 143  # 300 chars, 450+ bytes
        status = "failed" if i % 200 == 199 else ("timeout" if i == 5_000 else "passed")
        entries.append(result(name, status, output_tail=big_tail, ref="r" * 300))
    start = time.perf_counter()
    text = render_summary(document(entries), cancelled_run=True, annotation_overflow={"error": 40})
    elapsed = time.perf_counter() - start
    size = nbytes(text)
    assert size <= SUMMARY_TARGET_BYTES < MAX_SUMMARY_BYTES
    assert elapsed < 3.0
    rows = table_rows(text)
    match = re.search(
        r"\*\*Summary truncated: (\d+) of 10000 hypotheses shown; see the results file\*\*", text
    )
    assert match is not None
    assert int(match.group(1)) == len(rows)
    assert 51 <= len(rows) < 10_000
    failing_rows = [row for row in rows if "❌" in row or "⏱️" in row]
    assert len(failing_rows) == 51  # every failing hypothesis is listed ...
    assert rows[:51] == failing_rows  # ... before any passing one
    assert "The run was cancelled" in text and "40 more errors were not annotated" in text
    _, _, open_at_end = scan_fences(text)
    assert not open_at_end
    assert text.count("<details>") == text.count("</details>")


def test_everything_failing_still_fits() -> None:
    tail = "fail\n" * 20_000
    entries = [result("n" * 300, "error", output_tail=tail, error="e" * 5_000) for _ in range(10_000)]
    text = render_summary(document(entries))
    assert nbytes(text) <= SUMMARY_TARGET_BYTES
    assert "Summary truncated" in text


@pytest.mark.parametrize("limit", [2_000, 5_000, 50_000])
def test_custom_limits_are_respected(limit: int) -> None:
    entries = [result(f"h{i}-😀", "failed", output_tail="😀 out\n" * 500) for i in range(200)]
    text = render_summary(document(entries), max_bytes=limit)
    assert nbytes(text) <= limit
    assert "| Status |" in text
    assert not scan_fences(text)[2]


def test_huge_notes_fall_back_to_line_truncation() -> None:
    notes = ["note " + "n" * 3_000 for _ in range(1_000)]
    text = render_summary(document([result("a", "failed")]), extra_notes=notes)
    assert nbytes(text) <= SUMMARY_TARGET_BYTES
    assert text.startswith("## worktree-runner\n")
    assert text.rstrip().endswith("**Summary truncated; see the results file**")


def test_line_truncation_closes_fence_and_details() -> None:
    body = "<details><summary>s</summary>\n\n````text\n" + "line\n" * 1000 + "````\n\n</details>\n"
    cut = _truncate_lines("# head\n\n" + body, 600)
    assert nbytes(cut) <= 600
    blocks, _, open_at_end = scan_fences(cut)
    assert not open_at_end
    assert len(blocks) == 1 and blocks[0].startswith("line")
    assert cut.count("<details>") == cut.count("</details>") == 1
    assert cut.rstrip().endswith("**Summary truncated; see the results file**")


def test_rendering_is_deterministic_and_small_input_untouched() -> None:
    doc = document([result("a"), result("b", "failed")])
    assert render_summary(doc) == render_summary(doc)
    assert "Summary truncated" not in render_summary(doc)


# --- writing ------------------------------------------------------------------


def test_write_summary_overwrites(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "step_summary_guid"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(path))
    write_summary("partial — ünïcode 😀\n")
    assert path.read_bytes() == "partial — ünïcode 😀\n".encode()
    assert write_summary("final\n") == path
    assert path.read_text(encoding="utf-8") == "final\n"


def test_write_summary_explicit_path_and_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    with pytest.raises(FileCommandError, match="GITHUB_STEP_SUMMARY"):
        write_summary("x")
    target = tmp_path / "s.md"
    write_summary("x", target)
    assert target.read_text(encoding="utf-8") == "x"
    with pytest.raises(ValueError, match="bytes"):
        write_summary("é" * (MAX_SUMMARY_BYTES // 2 + 1), target)
    assert target.read_text(encoding="utf-8") == "x"
