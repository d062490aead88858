"""The job summary's timeline: a Mermaid gantt chart, hostile names kept inert, dropped first."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from runner import RunnerConfig, RunOptions, run_config
from runner.engine.timestamps import format_started_at
from runner.github.summary import STATUS_ICONS, render_summary
from runner.github.timeline import MAX_BARS, gantt_label, render_timeline

from .conftest import PY

T0 = 1_800_000_000.0
CLOCK = r"\d\d:\d\d:\d\d\.\d{3}"
BAR = re.compile(rf"    \S+ [\w .+=@/()…-]+ :(done, |crit, |crit, active, )?({CLOCK}), ({CLOCK})")


def result(name: str, status: str, start: float | None, duration: float, tail: str = "") -> dict[str, Any]:
    return {
        "name": name, "status": status, "exit_code": 0 if status == "passed" else 1, "duration_s": duration,
        "ref": "main", "commit": None, "log_path": None, "output_tail": tail, "error": None,
        "started_at": None if start is None else format_started_at(T0 + start),
    }  # fmt: skip


def doc(results: list[dict[str, Any]]) -> dict[str, Any]:
    passed = sum(r["status"] == "passed" for r in results)
    return {"schema": 1, "conclusion": "failure", "passed": passed, "duration_s": 10.0, "results": results}


def mermaid_block(summary: str) -> list[str]:
    """The lines between the one ```mermaid fence and the first closing fence after it."""
    lines = summary.split("\n")
    starts = [i for i, line in enumerate(lines) if line == "```mermaid"]
    assert len(starts) == 1, summary
    end = lines.index("```", starts[0] + 1)
    return lines[starts[0] + 1 : end]


def test_one_bar_per_started_hypothesis_in_start_order_tagged_by_status() -> None:
    results = [
        result("slow", "passed", 0.5, 3.25),
        result("first", "failed", 0.0, 1.0),
        result("late", "timeout", 2.0, 8.0),
        result("broken", "error", 0.25, 0.0),
        result("stopped", "cancelled", 1.0, 0.5),
        result("never-started", "cancelled", None, 0.0),
    ]
    chart = mermaid_block(render_summary(doc(results)))
    assert chart[:5] == [
        "gantt",
        "    dateFormat HH:mm:ss.SSS",
        "    axisFormat %M:%S",
        "    todayMarker off",
        "    section hypotheses",
    ]
    assert chart[5:] == [
        "    ❌ first :crit, 00:00:00.000, 00:00:01.000",
        "    💥 broken :crit, 00:00:00.250, 00:00:00.251",
        "    ✅ slow :done, 00:00:00.500, 00:00:03.750",
        "    🚫 stopped :00:00:01.000, 00:00:01.500",
        "    ⏱️ late :crit, active, 00:00:02.000, 00:00:10.000",
    ]


def test_long_runs_show_hours_on_the_axis_and_no_start_times_mean_no_chart() -> None:
    chart = mermaid_block(render_summary(doc([result("a", "passed", 0.0, 4000.0)])))
    assert "    axisFormat %H:%M:%S" in chart and chart[-1].endswith("01:06:40.000")
    untimed = render_summary(doc([result("a", "passed", None, 1.0)]))
    assert "mermaid" not in untimed and "Timeline" not in untimed
    assert render_timeline([result("a", "passed", 0.0, 100_000.0)], STATUS_ICONS) == ""
    assert render_timeline("not a list", STATUS_ICONS) == ""
    bad_time = result("a", "passed", 0.0, 1.0) | {"started_at": "yesterday"}
    assert render_timeline([bad_time, {"started_at": 5}, None], STATUS_ICONS) == ""


HOSTILE = [
    "a: b :done, 00:00:00.000, 23:00:00.000",
    "#35; %% comment ; x",
    "```\n</details>\n# heading",
    "section evil",
    "click first call alert()",
    "dateFormat YYYY",
    "line\u2028sep\u0085nel\rcr\ttab",
    "<script>alert(1)</script>",
    "]]>`inline` ~~~",
    "",
    "   ",
    "x" * 500,
]


def test_hostile_names_cannot_break_the_chart_or_the_markdown() -> None:
    results = [result(name, "failed", i * 0.1, 1.0, tail="boom\n") for i, name in enumerate(HOSTILE)]
    summary = render_summary(doc(results))
    chart = mermaid_block(summary)
    bars = chart[5:]
    assert len(bars) == len(HOSTILE)
    for bar in bars:
        match = BAR.fullmatch(bar)
        assert match, bar
        label = bar.split(" :", 1)[0]
        # One ':' per line (the label/data separator); no comment, statement end, entity or markup.
        assert bar.count(":") == 1 + 2 * 2 and ":" not in label
        for bad in ("#", "%", ";", "`", "<", ">", "&", "\r", "\t", "\u2028", "\u0085", "~", "[", "]"):
            assert bad not in bar, (bad, bar)
        # Starts with the icon, never with a keyword.
        assert label.startswith("    ❌ ")
        assert len(label) <= len("    ❌ ") + 40
    assert "    ❌ section evil :crit" in bars[3]
    assert bars[0] == "    ❌ a_ b _done_ 00_00_00.000_ 23_00_00.000 :crit, 00:00:00.000, 00:00:01.000"
    # The rest of the summary still parses: the failing outputs follow the chart, <details> balanced.
    after = summary.split("```mermaid", 1)[1].split("\n```\n", 1)[1]
    assert after.count("<details>") == after.count("</details>") == len(HOSTILE)


def test_gantt_label_keeps_readable_names() -> None:
    assert gantt_label("fix/a-1 (v2) x=y@z", "✅") == "✅ fix/a-1 (v2) x=y@z"
    assert gantt_label("修正 案", "✅") == "✅ 修正 案"
    assert gantt_label("\x1b[31mred\x1b[0m", "✅") == "✅ _31mred_0m"


def test_timeline_is_dropped_first_when_space_runs_out() -> None:
    results = [result(f"h{i}", "failed", i * 0.5, 1.0, tail=f"line {i}\n" * 20) for i in range(20)]
    full = render_summary(doc(results))
    chart_size = len(full.split("### Timeline", 1)[1].split("### Output", 1)[0]) + len("### Timeline")
    untimed = render_summary(doc([r | {"started_at": None} for r in results]))
    assert "### Timeline" in full and len(full) == len(untimed) + chart_size
    # A budget that fits everything but the chart: the chart goes, every full tail stays.
    squeezed = render_summary(doc(results), max_bytes=len(untimed.encode()) + 10)
    assert squeezed == untimed
    assert squeezed.count("line 0") == 20
    # Also in a pull-request comment (counted in characters).
    assert render_summary(doc(results), max_chars=len(untimed) + 10) == untimed
    assert "### Timeline" in render_summary(doc(results), max_chars=len(full) + 10)


def test_more_bars_than_the_limit_means_no_chart() -> None:
    many = [result(f"h{i}", "passed", i * 0.01, 0.5) for i in range(MAX_BARS + 1)]
    assert "mermaid" not in render_summary(doc(many))
    assert len(mermaid_block(render_summary(doc(many[:MAX_BARS])))) == 5 + MAX_BARS


def test_a_real_run_draws_its_timeline(repo: Path, runner_temp: Path) -> None:
    cfg = RunnerConfig.model_validate(
        {
            "command": [PY, "check.py"],
            "max-parallel": 1,
            "hypotheses": [{"name": "good", "ref": "main"}, {"name": "bad", "ref": "broken"}],
        }
    )
    report = run_config(cfg, RunOptions(repo=repo))
    chart = mermaid_block(render_summary(report.to_dict()))
    assert len(chart) == 7
    good, bad = chart[5:]
    assert good.startswith("    ✅ good :done, 00:00:00.000, ")
    assert bad.startswith("    ❌ bad :crit, ")
    # max-parallel 1: the second bar starts where (or after) the first ends.
    good_match, bad_match = BAR.fullmatch(good), BAR.fullmatch(bad)
    assert good_match and bad_match
    assert seconds(bad_match.group(2)) >= seconds(good_match.group(3)) - 0.05


def seconds(clock: str) -> float:
    hours, minutes, secs = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(secs)


def test_real_mermaid_parses_the_hostile_chart(tmp_path: Path) -> None:
    """With the mermaid npm package at hand (WORKTREE_RUNNER_MERMAID_DIR, a folder where
    `npm install mermaid@11 jsdom@24` ran), the chart parses as a gantt with one task per bar, the
    hostile names as plain task labels, the right tags and times, and a single section."""
    import json
    import os
    import shutil
    import subprocess

    folder = os.environ.get("WORKTREE_RUNNER_MERMAID_DIR")
    node = shutil.which("node")
    if not folder or node is None:
        pytest.skip("set WORKTREE_RUNNER_MERMAID_DIR to a folder with node_modules/mermaid and jsdom")
    statuses = ["failed", "passed", "error", "timeout", "cancelled"]
    results = [result(name, statuses[i % 5], i * 0.5, 1.0) for i, name in enumerate(HOSTILE)]
    chart = tmp_path / "chart.mmd"
    chart.write_text("\n".join(mermaid_block(render_summary(doc(results)))))
    proc = subprocess.run(
        [node, str(Path(__file__).with_name("mermaid_check.mjs")), str(chart)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TZ": "UTC"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    head, *tasks = (json.loads(line) for line in proc.stdout.splitlines())
    assert head == {"type": "gantt", "sections": ["hypotheses"]}
    assert len(tasks) == len(HOSTILE)
    for i, task in enumerate(tasks):
        status = statuses[i % 5]
        assert task["section"] == "hypotheses"
        assert task["task"].strip() == gantt_label(HOSTILE[i], STATUS_ICONS[status])
        assert (task["done"], task["crit"], task["active"]) == {
            "passed": (True, False, False), "failed": (False, True, False), "error": (False, True, False),
            "timeout": (False, True, True), "cancelled": (False, False, False),
        }[status]  # fmt: skip
        assert task["start"].endswith(f"T00:00:{i * 0.5:06.3f}Z")
        assert task["end"].endswith(f"T00:00:{i * 0.5 + 1:06.3f}Z")
