"""Reading action inputs from INPUT_* variables."""

from __future__ import annotations

import pytest

from runner.github.inputs import (
    FALSE_SPELLINGS,
    TRUE_SPELLINGS,
    InputError,
    get_bool_input,
    get_float_input,
    get_input,
    get_int_input,
    get_multiline_input,
    input_env_name,
)


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("max-parallel", "INPUT_MAX-PARALLEL"),
        ("with space", "INPUT_WITH_SPACE"),
        ("github_token", "INPUT_GITHUB_TOKEN"),
        ("a.b", "INPUT_A.B"),
    ],
)
def test_env_name_keeps_hyphens(name: str, variable: str) -> None:
    assert input_env_name(name) == variable


def test_get_input_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INPUT_MAX-PARALLEL", "  4 \n")
    monkeypatch.delenv("INPUT_MAX_PARALLEL", raising=False)
    assert get_input("max-parallel") == "4"
    assert get_input("max-parallel", trim=False) == "  4 \n"
    assert get_input("Max-Parallel") == "4"


def test_get_input_default_and_required() -> None:
    env = {"INPUT_EMPTY": "   ", "INPUT_SET": "x"}
    assert get_input("missing", environ=env) == ""
    assert get_input("missing", default="d", environ=env) == "d"
    assert get_input("empty", default="d", environ=env) == "d"
    assert get_input("set", default="d", required=True, environ=env) == "x"
    with pytest.raises(InputError, match=r"^input 'empty': a value is required"):
        get_input("empty", required=True, environ=env)
    with pytest.raises(InputError, match=r"^input 'missing'"):
        get_input("missing", required=True, environ=env)


@pytest.mark.parametrize("spelling", TRUE_SPELLINGS)
def test_bool_true(spelling: str) -> None:
    assert get_bool_input("flag", False, environ={"INPUT_FLAG": f" {spelling} "}) is True


@pytest.mark.parametrize("spelling", FALSE_SPELLINGS)
def test_bool_false(spelling: str) -> None:
    assert get_bool_input("flag", True, environ={"INPUT_FLAG": spelling}) is False


@pytest.mark.parametrize("value", ["yes", "no", "1", "0", "on", "off", "tRue", "FaLsE", "y", "true!"])
def test_bool_rejects_other_spellings(value: str) -> None:
    with pytest.raises(InputError) as info:
        get_bool_input("fail-fast", True, environ={"INPUT_FAIL-FAST": value})
    message = str(info.value)
    assert message.startswith("input 'fail-fast': ")
    assert repr(value) in message
    for spelling in TRUE_SPELLINGS + FALSE_SPELLINGS:
        assert spelling in message
    assert info.value.input_name == "fail-fast"
    assert isinstance(info.value, ValueError)


def test_bool_empty_uses_default_or_requires() -> None:
    assert get_bool_input("flag", True, environ={"INPUT_FLAG": ""}) is True
    assert get_bool_input("flag", False, environ={}) is False
    with pytest.raises(InputError, match="'flag'"):
        get_bool_input("flag", environ={})


def test_int_parsing() -> None:
    env = {"INPUT_N": " 4 ", "INPUT_PLUS": "+3", "INPUT_NEG": "-2"}
    assert get_int_input("n", 1, minimum=1, environ=env) == 4
    assert get_int_input("plus", environ=env) == 3
    assert get_int_input("neg", environ=env) == -2
    assert get_int_input("absent", 7, minimum=1, environ=env) == 7


def test_int_error_message_is_exact() -> None:
    with pytest.raises(InputError) as info:
        get_int_input("max-parallel", 2, minimum=1, environ={"INPUT_MAX-PARALLEL": "abc"})
    assert str(info.value) == "input 'max-parallel': expected a whole number >= 1, got 'abc'"


@pytest.mark.parametrize("value", ["abc", "1.5", "1_000", "٣", "1e3", "0x10", "4 5", "0"])
def test_int_rejects(value: str) -> None:
    with pytest.raises(InputError, match=r"^input 'jobs': expected a whole number >= 1, got "):
        get_int_input("jobs", 1, minimum=1, environ={"INPUT_JOBS": value})


def test_int_maximum_and_required() -> None:
    with pytest.raises(InputError, match="between 1 and 8, got '9'"):
        get_int_input("jobs", 1, minimum=1, maximum=8, environ={"INPUT_JOBS": "9"})
    with pytest.raises(InputError, match="none was supplied"):
        get_int_input("jobs", environ={})


def test_long_bad_value_is_shortened_in_message() -> None:
    with pytest.raises(InputError) as info:
        get_int_input("jobs", 1, environ={"INPUT_JOBS": "x" * 10_000})
    assert len(str(info.value)) < 200


def test_float_parsing() -> None:
    env = {"INPUT_A": "2.5", "INPUT_B": ".5", "INPUT_C": "1e3", "INPUT_D": "-0.25", "INPUT_E": "3"}
    assert get_float_input("a", environ=env) == 2.5
    assert get_float_input("b", environ=env) == 0.5
    assert get_float_input("c", environ=env) == 1000.0
    assert get_float_input("d", environ=env) == -0.25
    assert get_float_input("e", environ=env) == 3.0
    assert get_float_input("absent", 1.5, environ=env) == 1.5


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "abc", "1,5", "1e999", "-1"])
def test_float_rejects(value: str) -> None:
    with pytest.raises(InputError, match=r"^input 'timeout': expected a number >= 0, got "):
        get_float_input("timeout", 60.0, minimum=0, environ={"INPUT_TIMEOUT": value})


def test_multiline() -> None:
    env = {"INPUT_CMDS": "a\r\nb\n\n  c  \n   \n"}
    assert get_multiline_input("cmds", environ=env) == ["a", "b", "c"]
    assert get_multiline_input("cmds", trim=False, environ=env) == ["a", "b", "  c  ", "   "]
    assert get_multiline_input("absent", environ=env) == []
    with pytest.raises(InputError, match="'absent'"):
        get_multiline_input("absent", required=True, environ=env)
    with pytest.raises(InputError):
        get_multiline_input("blank", required=True, environ={"INPUT_BLANK": " \n \n"})
