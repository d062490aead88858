"""The CLI's live status line on a real pseudo-terminal, the unchanged line-per-result log off one,
and ``started_at`` in the results."""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import select
import struct
import subprocess
import termios
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from runner.config import Status, TestExecutionResult
from runner.engine.timestamps import format_started_at, parse_started_at
from runner.report.live import CLEAR_LINE, LiveStatus, cell_width, format_elapsed

from .conftest import PY, REPO_ROOT

# A command that waits until the test says so: the test sees the hypothesis on the status line
# first, so "running" is observed without any timing assumption.
WAIT_FOR_GO = (
    "import os, sys, time\n"
    "go = os.environ['GO_FILE']\n"
    "deadline = time.monotonic() + 60\n"
    "while not os.path.exists(go) and time.monotonic() < deadline:\n"
    "    time.sleep(0.02)\n"
    "sys.exit(0 if os.environ['WORKTREE_RUNNER_HYPOTHESIS'] != 'b: second' else 1)\n"
)


def render_terminal(raw: str) -> list[str]:
    """What a terminal shows after ``raw``: CR moves to column 0, ``ESC[2K`` erases the line, LF
    starts a new line; any other escape sequence fails the test (nothing else is emitted)."""
    lines: list[list[str]] = [[]]
    col = 0
    i = 0
    while i < len(raw):
        if raw.startswith("\x1b[2K", i):
            lines[-1] = []
            i += 4
            continue
        ch = raw[i]
        assert ch != "\x1b", f"unexpected escape sequence at {raw[i : i + 10]!r}"
        if ch == "\r":
            col = 0
        elif ch == "\n":
            lines.append([])
            col = 0
        else:
            line = lines[-1]
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
        i += 1
    return ["".join(line) for line in lines]


def _read_until(fd: int, buf: bytearray, pattern: re.Pattern[bytes], proc: subprocess.Popen[bytes]) -> bool:
    """Read the pty into ``buf`` until ``pattern`` matches (True) or the child has gone (False)."""
    while not pattern.search(buf):
        ready, _, _ = select.select([fd], [], [], 60)
        if not ready:
            return False
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not chunk:
            return False
        buf.extend(chunk)
    return True


def _write_config(tmp_path: Path, cfg: dict[str, object]) -> Path:
    path = tmp_path / "wr.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cli_argv(cfg_path: Path, repo: Path, results: Path) -> list[str]:
    return [PY, "-m", "runner", "test", "--config", str(cfg_path), "--repo", str(repo),
            "--results-json", str(results)]  # fmt: skip


def _env(tmp_path: Path, runner_temp: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "RUNNER_TEMP": str(runner_temp), **extra}
    env["GO_FILE"] = str(tmp_path / "go")
    return env


def test_status_line_redraws_in_place_on_a_terminal(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    hostile = "evil\x1b[31m\r\nname"
    cfg = {
        "command": [PY, "-c", WAIT_FOR_GO],
        "max-parallel": 3,
        "hypotheses": [
            {"name": "a-first", "ref": "main"},
            {"name": "b: second", "ref": "main"},
            {"name": hostile, "ref": "main"},
        ],
    }
    cfg_path = _write_config(tmp_path, cfg)
    results = tmp_path / "results.json"
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))  # 24 rows, 200 columns
    proc = subprocess.Popen(
        _cli_argv(cfg_path, repo, results),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
        env=_env(tmp_path, runner_temp, TERM="xterm"),
    )  # fmt: skip
    os.close(slave)
    buf = bytearray()
    try:
        # All three running at once, each named with how long it has been running.
        seen = _read_until(master, buf, re.compile(rb"\[0/3\] \S+ \xc2\xb7 running 3: [^\r]*evil"), proc)
        assert seen, buf.decode(errors="replace")
        (tmp_path / "go").write_text("go")
        _read_until(master, buf, re.compile(rb"worktree-runner: failure[^\n]*\n"), proc)
        assert proc.wait(timeout=60) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    raw = buf.decode("utf-8")
    # Redrawn in place: every status draw starts with CR + erase, and the status line never ends in LF.
    assert raw.count(CLEAR_LINE) >= 4
    status_draws = re.findall(r"\r\x1b\[2K(\[\d/3\] [^\r\n]*)(?=\r|$)", raw)
    # All three listed with their ages; their order is their start order (longest-running first), which
    # the scheduler decides, so it is not asserted here.
    listed = [re.fullmatch(r"\[0/3\] \d+s · running 3: (.*)", s) for s in status_draws]
    names = [{re.sub(r" \d+s$", "", part) for part in m.group(1).split(", ")} for m in listed if m]
    assert {"a-first", "b: second", "evil\\x1b[31m\\x0d\\x0aname"} in names, status_draws
    # The hostile name's escape sequence and line break never reach the terminal raw.
    assert "\x1b[31m" not in raw and "evil\r" not in raw
    screen = [line for line in render_terminal(raw) if line]
    # Final state: one permanent line per result, the conclusion, and no status line left over.
    assert len(screen) == 4, screen
    assert all(
        re.fullmatch(r"\[\d/3\] .*: (passed|failed) in \d+\.\d\ds, exit \d", line) for line in screen[:3]
    )
    assert {re.sub(r"^\[\d/3\] ", "", line).split(" in ")[0] for line in screen[:3]} == {
        "a-first: passed",
        "b: second: failed",
        "evil\\x1b[31m\\x0d\\x0aname: passed",
    }
    assert [line[:5] for line in screen[:3]] == ["[1/3]", "[2/3]", "[3/3]"]
    assert screen[3].startswith("worktree-runner: failure")
    assert json.loads(results.read_text())["failed"] == 1


def test_log_keeps_one_line_per_result_when_stderr_is_not_a_terminal(
    repo: Path, tmp_path: Path, runner_temp: Path
) -> None:
    (tmp_path / "go").write_text("go")
    cfg = {
        "command": [PY, "-c", WAIT_FOR_GO],
        "max-parallel": 2,
        "hypotheses": [{"name": "a-first", "ref": "main"}, {"name": "b: second", "ref": "main"}],
    }
    cfg_path = _write_config(tmp_path, cfg)
    proc = subprocess.run(
        _cli_argv(cfg_path, repo, tmp_path / "results.json"),
        capture_output=True, text=True, env=_env(tmp_path, runner_temp, TERM="xterm"), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr
    assert len(lines) == 3, lines
    assert [line[:5] for line in lines[:2]] == ["[1/2]", "[2/2]"]
    assert all(
        re.fullmatch(r"\[\d/2\] .*: (passed|failed) in \d+\.\d\ds, exit \d", line) for line in lines[:2]
    )
    assert sorted(line.split("] ")[1].split(" in ")[0] for line in lines[:2]) == [
        "a-first: passed",
        "b: second: failed",
    ]
    assert lines[2].startswith("worktree-runner: failure")


def test_dumb_terminal_gets_plain_lines(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    (tmp_path / "go").write_text("go")
    cfg = {"command": [PY, "-c", WAIT_FOR_GO], "hypotheses": [{"name": "a-first", "ref": "main"}]}
    cfg_path = _write_config(tmp_path, cfg)
    master, slave = os.openpty()
    proc = subprocess.Popen(
        _cli_argv(cfg_path, repo, tmp_path / "results.json"),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave,
        env=_env(tmp_path, runner_temp, TERM="dumb"),
    )  # fmt: skip
    os.close(slave)
    buf = bytearray()
    try:
        _read_until(master, buf, re.compile(rb"worktree-runner: success[^\n]*\n"), proc)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    raw = buf.decode()
    assert "\x1b" not in raw
    assert re.match(r"\[1/1\] a-first: passed in \d+\.\d\ds, exit 0\r?\n", raw), raw


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _result(name: str, status: Status = Status.PASSED) -> TestExecutionResult:
    return TestExecutionResult(name=name, status=status, duration_s=1.5, exit_code=0)


def test_status_line_fits_the_terminal_and_counts_the_rest() -> None:
    out = io.StringIO()
    clock = _Clock()
    live = LiveStatus(out, interval=3600, columns=lambda: 66, clock=clock)
    with live:
        for i in range(6):
            live.started(f"hypothesis-{i}", 6)
            clock.now += 10
        line = out.getvalue().rsplit(CLEAR_LINE, 1)[1]
        assert cell_width(line) <= 65
        assert line == "[0/6] 50s · running 6: hypothesis-0 50s, hypothesis-1 40s +4 more"
        live.finished(_result("hypothesis-0"), 1, 6)
        after = out.getvalue().rsplit(CLEAR_LINE, 2)
        assert after[1] == "[1/6] hypothesis-0: passed in 1.50s, exit 0\n"
        assert after[2] == "[1/6] 1:00 · running 5: hypothesis-1 50s +4 more"
    assert out.getvalue().endswith(CLEAR_LINE)  # erased at the end


def test_status_line_measures_wide_characters() -> None:
    out = io.StringIO()
    live = LiveStatus(out, interval=3600, columns=lambda: 30, clock=_Clock())
    with live:
        live.started("修正案修正案修正案修正案修正案", 1)
        line = out.getvalue().rsplit(CLEAR_LINE, 1)[1]
    assert cell_width(line) <= 29
    assert cell_width("修正") == 4


def test_format_elapsed() -> None:
    assert [format_elapsed(s) for s in (0, 7.9, 65, 3723)] == ["0s", "7s", "1:05", "1:02:03"]


def test_started_at_round_trip_and_hostile_values() -> None:
    text = format_started_at(1_800_000_000.25)
    assert text == "2027-01-15T08:00:00.250Z"
    assert parse_started_at(text) == pytest.approx(1_800_000_000.25)
    for bad in (None, 5, "", "yesterday", "2027-01-15T08:00:00", "x" * 100):
        assert parse_started_at(bad) is None


def test_results_carry_started_at(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    from runner.cli import main

    cfg = {
        "command": [PY, "check.py"],
        "max-parallel": 1,
        "hypotheses": [{"name": "one", "ref": "main"}, {"name": "two", "ref": "broken"}],
    }
    cfg_path = _write_config(tmp_path, cfg)
    results = tmp_path / "results.json"
    assert main(["test", "--config", str(cfg_path), "--repo", str(repo), "--results-json", str(results),
                 "-q"]) == 1  # fmt: skip
    doc = json.loads(results.read_text())
    starts = [parse_started_at(r["started_at"]) for r in doc["results"]]
    assert all(isinstance(s, float) for s in starts), doc["results"]
    assert all(r["started_at"].endswith("Z") for r in doc["results"])
    datetime.fromisoformat(doc["results"][0]["started_at"])
    # max-parallel 1: the second started after the first had finished.
    one = doc["results"][0]
    assert starts[1] >= starts[0] + one["duration_s"] - 0.05  # type: ignore[operator]


def test_start_times_follow_the_order_hypotheses_really_started(repo: Path, runner_temp: Path) -> None:
    """Durations make the last-configured hypothesis start first (max-parallel 1); each result's
    started_at is its own (stamped by configuration index, not by start order)."""
    from runner import RunnerConfig, RunOptions, run_config

    order = runner_temp / "order.txt"
    record = [
        PY,
        "-c",
        f"import os; open({str(order)!r}, 'a').write(os.environ['WORKTREE_RUNNER_HYPOTHESIS'] + '\\n')",
    ]
    cfg = RunnerConfig.model_validate(
        {
            "command": record,
            "max-parallel": 1,
            "hypotheses": [{"name": n, "ref": "main"} for n in ("one", "two", "three")],
        }
    )
    seen: list[tuple[str, int]] = []
    report = run_config(
        cfg,
        RunOptions(repo=repo, on_start=lambda name, total: seen.append((name, total))),
        durations={"one": 1.0, "two": 2.0, "three": 3.0},
    )
    started = order.read_text().split()
    assert started == ["three", "two", "one"]  # longest expected first
    assert seen == [("three", 3), ("two", 3), ("one", 3)]
    by_name = {r.name: parse_started_at(r.started_at) for r in report.results}
    assert [r.name for r in report.results] == ["one", "two", "three"]  # configuration order
    assert by_name["three"] < by_name["two"] < by_name["one"]  # type: ignore[operator]


def test_executor_start_hook_not_called_for_hypotheses_that_never_started(tmp_path: Path) -> None:
    from runner import AsyncTestExecutor, Hypothesis

    calls: list[tuple[str, int]] = []
    executor = AsyncTestExecutor(
        {"command": [PY, "-c", "raise SystemExit(1)"], "max-parallel": 1, "fail-fast": True},
        on_start=lambda hyp, index: calls.append((hyp.name, index)),
    )
    hyps = [Hypothesis(name=f"h{i}", ref="HEAD") for i in range(3)]
    results = executor.execute_parallel(hyps, [tmp_path] * 3)
    assert calls == [("h0", 0)]
    assert [r.status for r in results] == [Status.FAILED, Status.CANCELLED, Status.CANCELLED]
