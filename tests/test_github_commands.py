"""Workflow commands and annotations, checked with the runner-parser emulation."""

from __future__ import annotations

import io
import secrets
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.github import commands as cmd
from runner.github.annotations import MAX_ANNOTATIONS_PER_LEVEL, AnnotationBudget, relative_path
from runner.github.commands import (
    MAX_MESSAGE_CHARS,
    RUNNER_COMMANDS,
    TRUNCATION_MARKER,
    ActionsLog,
    escape_data,
    escape_property,
    format_command,
    truncate_message,
)
from tests.github_parsers import (
    CommandProcessor,
    StopTokenError,
    parse_command,
    split_output_lines,
    try_parse_legacy,
    try_parse_v2,
)

HOSTILE_OUTPUT = "\n".join(
    [
        "::error::pwned",
        "::add-mask::x",
        "##[error]legacy pwned",
        "text before ##[warning]mid-line legacy",
        "::stop-commands::evil",
        "::evil::",
        "   ::warning file=a.py,line=1::indented",
        "::ERROR::upper case",
        "::endgroup::",
        "::group::fake",
        "::set-output name=x::y",
        "::save-state name=s::v",
        "progress\r::error::after carriage return",
        "::notice title=t::n",
        "::debug::d",
    ]
)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def run_log(fn: object) -> tuple[str, CommandProcessor]:
    stream = io.StringIO()
    log = ActionsLog(stream)
    assert callable(fn)
    fn(log)
    processor = CommandProcessor()
    processor.feed(stream.getvalue())
    return stream.getvalue(), processor


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.flushes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


# --- the emulated parsers behave like the runner on known inputs ------------


def test_parser_emulation_known_cases() -> None:
    parsed = try_parse_v2("  ::error file=a%2Cb.py,line=3,title=::x%0Ay%25")
    assert parsed is not None
    assert parsed.command == "error"
    assert parsed.properties == {"file": "a,b.py", "line": "3"}  # empty title dropped
    assert parsed.data == "x\ny%"
    assert try_parse_v2("::unknown::x") is None
    assert try_parse_v2("text ::error::x") is None
    legacy = try_parse_legacy("prefix ##[warning file=f%3B]msg")
    assert legacy is not None and legacy.command == "warning" and legacy.prop("FILE") == "f;"
    assert split_output_lines("a\rb\r\nc\nd") == ["a", "b", "c", "d"]
    with pytest.raises(StopTokenError):
        CommandProcessor().feed("::stop-commands::error\n")


# --- escaping ---------------------------------------------------------------


def test_escape_percent_first() -> None:
    assert escape_data("100%\r\n") == "100%25%0D%0A"
    assert escape_data("%0A") == "%250A"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    assert escape_data("a:b,c") == "a:b,c"


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_data_round_trips(message: str) -> None:
    line = format_command("debug", None, message)
    assert split_output_lines(line) == [line]
    parsed = parse_command(line)
    assert parsed is not None
    assert parsed.command == "debug"
    assert parsed.data == message


_prop_text = st.text(min_size=1, max_size=80).filter(
    lambda s: s == s.strip() and not s.startswith("=") and s.strip() != ""
)


@given(title=_prop_text, file=_prop_text, message=st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_properties_round_trip(title: str, file: str, message: str) -> None:
    line = format_command("warning", {"title": title, "file": file, "line": 7}, message)
    assert "\n" not in line and "\r" not in line
    parsed = parse_command(line)
    assert parsed is not None
    assert parsed.command == "warning"
    assert parsed.properties == {"title": title, "file": file, "line": "7"}
    assert parsed.data == message


def test_colon_and_comma_in_title_and_path() -> None:
    out, proc = run_log(
        lambda log: log.error(
            "msg: with, punctuation",
            file="src/a,b:c.py",
            line=3,
            end_line=4,
            col=1,
            end_column=9,
            title="T: 1, 2",
        )
    )
    assert out.count("\n") == 1
    assert len(proc.executed) == 1
    (c,) = proc.executed
    assert c.command == "error"
    assert c.properties == {
        "title": "T: 1, 2",
        "file": "src/a,b:c.py",
        "line": "3",
        "endLine": "4",
        "col": "1",
        "endColumn": "9",
    }
    assert c.data == "msg: with, punctuation"


def test_none_and_empty_properties_are_skipped_zero_kept() -> None:
    assert format_command("error", {"title": None, "file": "", "line": 0}, "m") == "::error line=0::m"
    assert format_command("notice", {}, "m") == "::notice::m"
    assert format_command("error", {"flag": True}, None) == "::error flag=true::"


@pytest.mark.parametrize("name", ["", "has space", "a::b", "9x", "err,or"])
def test_invalid_command_name_rejected(name: str) -> None:
    with pytest.raises(ValueError):
        format_command(name, None, "x")


@pytest.mark.parametrize("key", ["", "a=b", "a,b", "a b", "a:b"])
def test_invalid_property_key_rejected(key: str) -> None:
    with pytest.raises(ValueError):
        format_command("error", {key: "v"}, "x")


def test_multiline_message_is_one_command() -> None:
    message = "first line\nsecond line\r\nthird\rfourth"
    out, proc = run_log(lambda log: log.warning(message, title="multi\nline"))
    assert len(split_output_lines(out)) == 1
    assert [(c.command, c.data, c.prop("title")) for c in proc.executed] == [
        ("warning", message, "multi\nline")
    ]


def test_hostile_message_cannot_inject_commands() -> None:
    out, proc = run_log(
        lambda log: (log.error(HOSTILE_OUTPUT, title="::error::t"), log.debug(HOSTILE_OUTPUT))
    )
    assert len(split_output_lines(out)) == 2
    assert [(c.command, c.data) for c in proc.executed] == [
        ("error", HOSTILE_OUTPUT),
        ("debug", HOSTILE_OUTPUT),
    ]
    assert proc.executed[0].prop("title") == "::error::t"
    assert proc.stop_events == []


def test_each_command_is_one_write_and_flush() -> None:
    stream = CountingStream()
    log = ActionsLog(stream)
    log.error("a\nb", file="f.py", line=1)
    log.notice("n")
    log.add_mask("s1\ns2")
    assert stream.writes == 3
    assert stream.flushes == 3


def test_default_stream_is_stdout_at_call_time(capsys: pytest.CaptureFixture[str]) -> None:
    ActionsLog().notice("hello")
    assert capsys.readouterr().out == "::notice::hello\n"


# --- truncation -------------------------------------------------------------


def test_long_message_truncated_to_runner_limit() -> None:
    message = "start-" + "x" * 10_000
    _, proc = run_log(lambda log: log.error(message))
    data = proc.executed[0].data
    assert utf16_len(data) <= MAX_MESSAGE_CHARS
    assert data.startswith("start-xxx")
    assert data.endswith(TRUNCATION_MARKER)


def test_truncation_counts_utf16_and_never_splits_surrogates() -> None:
    message = "😀" * 3000  # 6000 UTF-16 units
    short = truncate_message(message)
    assert utf16_len(short) <= MAX_MESSAGE_CHARS
    assert short.endswith(TRUNCATION_MARKER)
    short.encode("utf-8")  # a lone surrogate would raise
    assert truncate_message("ok" * 2048) == "ok" * 2048  # exactly at the limit: unchanged


# --- add-mask -------------------------------------------------------------


def test_add_mask_masks_value_and_each_line() -> None:
    _, proc = run_log(lambda log: log.add_mask("first-secret\r\n  second-secret  \n\nthird"))
    assert [c.command for c in proc.executed] == ["add-mask"] * 4
    assert [c.data for c in proc.executed] == [
        "first-secret\r\n  second-secret  \n\nthird",
        "first-secret",
        "second-secret",
        "third",
    ]


@pytest.mark.parametrize("value", ["", "   ", "\n"])
def test_add_mask_blank_emits_nothing(value: str) -> None:
    out, _ = run_log(lambda log: log.add_mask(value))
    assert out == ""


def test_add_mask_single_line_is_one_command() -> None:
    _, proc = run_log(lambda log: log.add_mask("s3cr%t,:"))
    assert [(c.command, c.data) for c in proc.executed] == [("add-mask", "s3cr%t,:")]


# --- groups ---------------------------------------------------------------


def test_group_and_nested_group_flattened() -> None:
    def body(log: ActionsLog) -> None:
        with log.group("outer\ntitle"):
            log.notice("in outer")
            with log.group("inner"):
                log.notice("in inner")
            log.notice("still outer")
        log.notice("after")

    _, proc = run_log(body)
    assert [(c.command, c.data) for c in proc.executed] == [
        ("group", "outer\ntitle"),
        ("notice", "in outer"),
        ("notice", "in inner"),
        ("notice", "still outer"),
        ("endgroup", ""),
        ("notice", "after"),
    ]


def test_group_closed_on_exception() -> None:
    stream = io.StringIO()
    log = ActionsLog(stream)
    with pytest.raises(RuntimeError), log.group("g"):
        raise RuntimeError("boom")
    assert stream.getvalue() == "::group::g\n::endgroup::\n"
    with log.group("again"):  # depth was reset: a new top-level group is emitted
        pass
    assert stream.getvalue().endswith("::group::again\n::endgroup::\n")


# --- stop-commands ----------------------------------------------------------


def test_stop_commands_neutralises_replayed_output() -> None:
    def body(log: ActionsLog) -> None:
        log.notice("before")
        with log.stop_commands():
            log.stream.write(HOSTILE_OUTPUT + "\n")
        log.notice("after")

    _, proc = run_log(body)
    assert [(c.command, c.data) for c in proc.executed] == [("notice", "before"), ("notice", "after")]
    assert [kind for kind, _ in proc.stop_events] == ["stop", "resume"]
    assert not proc.stopped
    for line in split_output_lines(HOSTILE_OUTPUT):
        assert line in proc.log


def test_without_stop_commands_the_hostile_output_would_inject() -> None:
    # Guard against a parser emulation too lax to catch anything.
    proc = CommandProcessor()
    proc.feed(HOSTILE_OUTPUT)
    names = [c.command.lower() for c in proc.executed]
    assert "error" in names and "add-mask" in names and "warning" in names
    assert proc.stop_events[0] == ("stop", "evil")


def test_stop_tokens_are_random_valid_and_emitted() -> None:
    stream = io.StringIO()
    log = ActionsLog(stream)
    tokens = []
    for _ in range(3):
        with log.stop_commands() as token:
            assert log.commands_stopped
            tokens.append(token)
    assert not log.commands_stopped
    assert len(set(tokens)) == 3
    for token in tokens:
        assert len(token) >= 16
        assert token.lower() not in RUNNER_COMMANDS and token.lower() != "pause-logging"
        assert f"::stop-commands::{token}\n::{token}::\n" in stream.getvalue()
    proc = CommandProcessor()
    proc.feed(stream.getvalue())  # raises StopTokenError for an invalid token
    assert [kind for kind, _ in proc.stop_events] == ["stop", "resume"] * 3


def test_new_stop_token_rejects_command_names(monkeypatch: pytest.MonkeyPatch) -> None:
    candidates = iter(["error", "pause-logging", "c0ffee" * 5])
    monkeypatch.setattr(secrets, "token_hex", lambda n: next(candidates))
    assert cmd.new_stop_token() == "c0ffee" * 5


def test_stop_commands_resumes_after_exception_and_nesting_reuses_token() -> None:
    stream = io.StringIO()
    log = ActionsLog(stream)
    with pytest.raises(ValueError), log.stop_commands() as outer:
        with log.stop_commands() as inner:
            assert inner == outer
            log.stream.write("::error::inside\n")
        raise ValueError
    log.error("after")
    proc = CommandProcessor()
    proc.feed(stream.getvalue())
    assert proc.stop_events == [("stop", outer), ("resume", outer)]
    assert [(c.command, c.data) for c in proc.executed] == [("error", "after")]


@pytest.mark.parametrize("ending", ["", "\n", "\r", "\r\n"])
def test_write_untrusted_is_one_write_and_safe(ending: str) -> None:
    stream = CountingStream()
    log = ActionsLog(stream)
    log.write_untrusted(HOSTILE_OUTPUT + ending)
    log.error("after")
    assert stream.writes == 2
    proc = CommandProcessor()
    proc.feed(stream.getvalue())
    assert [(c.command, c.data) for c in proc.executed] == [("error", "after")]
    assert [kind for kind, _ in proc.stop_events] == ["stop", "resume"]


def test_write_untrusted_empty_writes_nothing() -> None:
    stream = io.StringIO()
    ActionsLog(stream).write_untrusted("")
    assert stream.getvalue() == ""


def test_concurrent_writers_never_split_lines() -> None:
    stream = io.StringIO()
    logs = [ActionsLog(stream) for _ in range(4)]  # separate objects, same stream

    def worker(i: int) -> None:
        for j in range(200):
            logs[i % 4].warning(f"worker {i}\nmessage {j}\n" + "y" * 500, title=f"t{i}")
            logs[i % 4].write_untrusted(f"::error::untrusted {i} {j}\nsecond line")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    proc = CommandProcessor()
    proc.feed(stream.getvalue())
    assert len(proc.executed) == 8 * 200
    assert all(c.command == "warning" for c in proc.executed)
    assert len(proc.stop_events) == 2 * 8 * 200
    assert not proc.stopped


# --- annotations --------------------------------------------------------------


def test_budget_limits_per_level_and_counts_overflow() -> None:
    stream = io.StringIO()
    budget = AnnotationBudget(ActionsLog(stream))
    results = [budget.error(f"e{i}") for i in range(MAX_ANNOTATIONS_PER_LEVEL + 5)]
    assert results == [True] * MAX_ANNOTATIONS_PER_LEVEL + [False] * 5
    assert budget.warning("w") is True
    assert budget.notice("n") is True
    assert budget.overflow == {"error": 5, "warning": 0, "notice": 0}
    assert budget.emitted == {"error": 10, "warning": 1, "notice": 1}
    assert budget.overflow_total == 5
    proc = CommandProcessor()
    proc.feed(stream.getvalue())
    assert [c.command for c in proc.executed].count("error") == MAX_ANNOTATIONS_PER_LEVEL


def test_budget_deduplicates() -> None:
    stream = io.StringIO()
    budget = AnnotationBudget(ActionsLog(stream), limit=2)
    assert budget.error("same", file="a.py", line=1) is True
    assert budget.error("same", file="a.py", line=1) is False
    assert budget.error("same", file="a.py", line=2) is True
    assert budget.error("third") is False
    assert budget.error("third") is False  # duplicate overflow is not counted twice
    assert budget.overflow["error"] == 1
    assert stream.getvalue().count("::error") == 2


def test_budget_maps_worktree_paths() -> None:
    stream = io.StringIO()
    root = "/github/runner_temp/wr-xyz/worktrees/003-fix-a"
    budget = AnnotationBudget(ActionsLog(stream), workspace="/github/workspace", worktree_roots=[root])
    budget.error("in worktree", file=f"{root}/src/x.py", line=3, col=2)
    budget.error("in workspace", file="/github/workspace/pkg/y.py", line=4)
    budget.error("outside", file="/usr/lib/python3/z.py", line=5, col=1)
    proc = CommandProcessor()
    proc.feed(stream.getvalue())
    assert [(c.data, c.properties) for c in proc.executed] == [
        ("in worktree", {"file": "src/x.py", "line": "3", "col": "2"}),
        ("in workspace", {"file": "pkg/y.py", "line": "4"}),
        ("outside", {}),
    ]


def test_budget_rejects_unknown_level() -> None:
    budget = AnnotationBudget(ActionsLog(io.StringIO()))
    with pytest.raises(ValueError):
        budget.annotate("fatal", "x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/github/runner_temp/wr-xyz/worktrees/003-fix-a/src/x.py", "src/x.py"),
        ("/github/runner_temp/wr-xyz/worktrees/003-fix-a/./src/../src/x.py", "src/x.py"),
        ("/github/runner_temp/wr-xyz/worktrees/003-fix-ab/src/x.py", None),  # prefix, not a parent
        ("/github/runner_temp/wr-xyz/worktrees/003-fix-a", None),  # the root itself
        ("/github/workspace/src/x.py", "src/x.py"),
        ("/github/workspace/.wt/007-b/lib/q.py", "lib/q.py"),  # innermost root wins
        ("/github/workspace/../etc/passwd", None),
        ("/etc/passwd", None),
        ("src/rel.py", "src/rel.py"),
        ("../escape.py", None),
        ("", None),
    ],
)
def test_relative_path(path: str, expected: str | None) -> None:
    roots = ["/github/runner_temp/wr-xyz/worktrees/003-fix-a", "/github/workspace/.wt/007-b/"]
    assert relative_path(path, "/github/workspace", roots) == expected


def test_relative_path_without_workspace() -> None:
    assert relative_path("/github/workspace/a.py", None) is None
