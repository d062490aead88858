"""File commands, parsed back with the runner's EnvFileKeyValuePairs emulation."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.github import file_commands as fc
from runner.github.file_commands import (
    MAX_OUTPUT_BYTES,
    FileCommandError,
    FileCommandWriter,
    export_variable,
    format_file_command,
    save_state,
    set_output,
)
from tests.github_parsers import EnvFileError, parse_env_file

TRICKY_VALUES = [
    "",
    "simple",
    " leading and trailing spaces ",
    "line1\nline2",
    "crlf1\r\ncrlf2\r\n",
    "lone\rcarriage",
    "ends with cr\r",
    "\n",
    "\n\n",
    "trailing newline\n",
    "\nleading newline",
    "100% %0A %25 %0D",
    "ghadelimiter_00000000-0000-0000-0000-000000000000",
    "x\nghadelimiter_00000000-0000-0000-0000-000000000000\nevil=1",
    "EOF\nname=value\nother<<EOF\nEOF",
    "=starts with equals",
    "<<starts with heredoc",
    "::set-output name=x::y\n::error::pwned",
    "emoji 😀🎉 and flags 🇩🇪",
    "RTL: שלום עולם مرحبا",
    "combining e\u0301 a\u0308 \u200d zero-width-joiner",
    "nul\x00byte",
    "tab\tseparated",
    "\ufeffbom in the middle",
]


@pytest.fixture
def out_file(tmp_path: Path) -> Path:
    return tmp_path / "set_output_guid"


def records(path: Path) -> list[tuple[str, str]]:
    return parse_env_file(path.read_bytes())


@pytest.mark.parametrize("value", TRICKY_VALUES)
def test_tricky_values_round_trip(out_file: Path, value: str) -> None:
    FileCommandWriter(out_file).write("my-output", value)
    assert records(out_file) == [("my-output", value)]


def test_many_records_append_in_order(out_file: Path) -> None:
    out_file.write_bytes(b"existing=1\n")
    writer = FileCommandWriter(out_file)
    for i, value in enumerate(TRICKY_VALUES):
        writer.write(f"name_{i}", value)
    assert records(out_file) == [("existing", "1")] + [(f"name_{i}", v) for i, v in enumerate(TRICKY_VALUES)]


def test_exact_bytes_format(out_file: Path) -> None:
    FileCommandWriter(out_file).write("task-id", "abc\ndef")
    text = out_file.read_text(encoding="utf-8")
    match = re.fullmatch(r"task-id<<(ghadelimiter_[0-9a-f-]{36})\nabc\ndef\n\1\n", text)
    assert match is not None
    assert "%" not in text


@given(name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,30}", fullmatch=True), value=st.text(max_size=500))
@settings(max_examples=300, deadline=None)
def test_arbitrary_text_round_trips(name: str, value: str) -> None:
    assert parse_env_file(format_file_command(name, value)) == [(name, value)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "true"),
        (False, "false"),
        (None, ""),
        (3, "3"),
        (1.5, "1.5"),
        ({"a": [1, 2], "b": None}, '{"a":[1,2],"b":null}'),
        (["x", "ü"], '["x","ü"]'),
    ],
)
def test_non_strings_are_json(out_file: Path, value: Any, expected: str) -> None:
    FileCommandWriter(out_file).write("v", value)
    assert records(out_file) == [("v", expected)]


def test_delimiter_regenerated_until_absent() -> None:
    colliding = "ghadelimiter_collide"
    value = f"before\n{colliding}\nevil=1\nalso{colliding}inside"
    produced: list[str] = []

    def factory() -> Iterator[str]:
        yield colliding  # a whole line of the value
        yield "ghadelimiter_coll"  # only a substring of the value
        yield "ghadelimiter_fresh"

    candidates = factory()

    def next_delimiter() -> str:
        produced.append(next(candidates))
        return produced[-1]

    data = format_file_command("out", value, delimiter_factory=next_delimiter)
    assert produced == ["ghadelimiter_collide", "ghadelimiter_coll", "ghadelimiter_fresh"]
    assert data.startswith(b"out<<ghadelimiter_fresh\n")
    assert parse_env_file(data) == [("out", value)]


def test_fixed_delimiter_would_be_injectable() -> None:
    # Shows what the regeneration prevents (and that the parser emulation notices).
    value = "x\nEOF\nevil=1"
    naive = f"out<<EOF\n{value}\nEOF\n"
    with pytest.raises(EnvFileError):
        parse_env_file(naive)
    assert parse_env_file("out<<EOF\nx\nEOF\nevil=1\n") == [("out", "x"), ("evil", "1")]


def test_delimiter_inside_name_is_avoided() -> None:
    delimiters = iter(["a", "b", "zzz"])
    data = format_file_command("ab", "value", delimiter_factory=lambda: next(delimiters))
    assert data == b"ab<<zzz\nvalue\nzzz\n"


@pytest.mark.parametrize("name", ["", "a=b", "a<<b", "a\nb", "a\rb", "a\x00b", "=", "<<"])
def test_invalid_names_rejected_and_nothing_written(out_file: Path, name: str) -> None:
    with pytest.raises(ValueError):
        FileCommandWriter(out_file).write(name, "v")
    assert not out_file.exists()


def test_one_append_write_per_record(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[str, str, int]] = []

    class Recorder:
        def __init__(self, path: str, mode: str) -> None:
            self.path, self.mode = path, mode

        def __enter__(self) -> Recorder:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def write(self, data: bytes) -> int:
            calls.append((self.path, self.mode, len(data)))
            return len(data)

    monkeypatch.setattr(fc, "open", lambda p, mode: Recorder(str(p), mode), raising=False)
    writer = FileCommandWriter(tmp_path / "f")
    writer.write("a", "x\n" * 10_000)
    writer.write("b", "y")
    assert [(mode, size > 20_000) for _, mode, size in calls] == [("ab", True), ("ab", False)]


def test_set_output_uses_github_output(
    monkeypatch: pytest.MonkeyPatch, out_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITHUB_OUTPUT", str(out_file))
    set_output("task-id", "t-123")
    set_output("flag", True)
    assert records(out_file) == [("task-id", "t-123"), ("flag", "true")]
    captured = capsys.readouterr()
    assert "::set-output" not in captured.out + captured.err


@pytest.mark.parametrize("variable", ["GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STATE"])
def test_unset_variable_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str
) -> None:
    monkeypatch.delenv(variable, raising=False)
    writer = {"GITHUB_OUTPUT": set_output, "GITHUB_ENV": export_variable, "GITHUB_STATE": save_state}[
        variable
    ]
    with pytest.raises(FileCommandError, match=variable):
        writer("name", "value")
    monkeypatch.setenv(variable, "")
    with pytest.raises(FileCommandError):
        writer("name", "value")
    captured = capsys.readouterr()
    assert "::" not in captured.out + captured.err


def test_output_size_limit(monkeypatch: pytest.MonkeyPatch, out_file: Path) -> None:
    monkeypatch.setenv("GITHUB_OUTPUT", str(out_file))
    with pytest.raises(ValueError, match="at most"):
        set_output("big", "x" * (MAX_OUTPUT_BYTES + 1))
    with pytest.raises(ValueError):
        set_output("big", "é" * (MAX_OUTPUT_BYTES // 2 + 1))  # counted in UTF-8 bytes
    assert not out_file.exists()
    set_output("exact", "x" * MAX_OUTPUT_BYTES)
    assert records(out_file) == [("exact", "x" * MAX_OUTPUT_BYTES)]


def test_export_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / "set_env_guid"
    monkeypatch.setenv("GITHUB_ENV", str(env_file))
    monkeypatch.delenv("WR_TEST_VAR", raising=False)
    export_variable("WR_TEST_VAR", "multi\nline")
    assert os.environ["WR_TEST_VAR"] == "multi\nline"
    assert records(env_file) == [("WR_TEST_VAR", "multi\nline")]
    with pytest.raises(ValueError):
        export_variable("WR_TEST_VAR", "nul\x00")
    assert records(env_file) == [("WR_TEST_VAR", "multi\nline")]


def test_save_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    state_file = tmp_path / "save_state_guid"
    monkeypatch.setenv("GITHUB_STATE", str(state_file))
    save_state("worktree-root", "/github/runner_temp/wr-1")
    save_state("count", 3)
    assert records(state_file) == [("worktree-root", "/github/runner_temp/wr-1"), ("count", "3")]


def test_lone_surrogate_is_replaced_not_crashing(out_file: Path) -> None:
    FileCommandWriter(out_file).write("s", "bad\udcffbyte")
    ((name, value),) = records(out_file)
    assert name == "s"
    assert value.startswith("bad") and value.endswith("byte") and "\udcff" not in value


# --- the parser emulation itself --------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("<<EOF\nv\nEOF\n", "Name must not be empty"),
        ("name<<\nv\n\n", "delimiter must not be empty"),
        ("name<<EOF\nvalue\n", "Matching delimiter not found 'EOF'"),
        ("name<<EOF\nvalue", "EOF marker missing new line"),
        ("just some text\n", "Invalid format 'just some text'"),
    ],
)
def test_parser_emulation_errors(content: str, message: str) -> None:
    with pytest.raises(EnvFileError, match=re.escape(message)):
        parse_env_file(content)


def test_parser_emulation_accepts() -> None:
    content = "\n\na=1\nb=x=y\nc<<D\nl1\n\nl3\nD\n\nd<<D\nD\ne<<D\n\nD"
    assert parse_env_file(content) == [("a", "1"), ("b", "x=y"), ("c", "l1\n\nl3"), ("d", ""), ("e", "")]
    assert parse_env_file("k<<D\r\nv\r\nD\r\n", windows=True) == [("k", "v")]
    # On Linux CR is part of the line: the delimiter is "D\r" and the value keeps its CR.
    assert parse_env_file("k<<D\r\nv\r\nD\r\n") == [("k", "v\r")]
