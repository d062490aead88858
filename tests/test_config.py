from __future__ import annotations

from pathlib import Path

import pytest

from runner.config import ConfigError, Hypothesis, RunnerConfig, load_config, parse_config


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "wr.yml"
    p.write_text(text)
    return p


def test_full_example_loads(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
command: pytest -q
setup: pip install -e .
timeout: 600
max-parallel: 4
fail-fast: false
succeed-if: any
hypotheses:
  - name: baseline
    ref: HEAD
  - name: patch-b
    patch: patches/b.diff
    command: ["pytest", "-q", "tests/test_b.py"]
    env: {FEATURE_B: "1", LEVEL: 2}
    timeout: 120
""",
        )
    )
    assert cfg.max_parallel == 4 and cfg.succeed_if == "any" and cfg.timeout == 600
    assert cfg.command_for(cfg.hypotheses[0]) == ["pytest", "-q"]
    assert cfg.setup_for(cfg.hypotheses[0]) == ["pip", "install", "-e", "."]
    assert cfg.command_for(cfg.hypotheses[1]) == ["pytest", "-q", "tests/test_b.py"]
    assert cfg.hypotheses[1].env == {"FEATURE_B": "1", "LEVEL": "2"}
    assert cfg.timeout_for(cfg.hypotheses[1]) == 120
    assert cfg.hypotheses[1].source_ref == "HEAD"


def test_command_string_is_split_not_shelled() -> None:
    cfg = parse_config(
        {
            "command": "python -c 'print(1); print(2)' && rm -rf /",
            "hypotheses": [{"name": "a", "ref": "HEAD"}],
        }
    )
    # '&&' is just an argument: no shell ever sees it.
    assert cfg.command_for(cfg.hypotheses[0]) == [
        "python",
        "-c",
        "print(1); print(2)",
        "&&",
        "rm",
        "-rf",
        "/",
    ]


@pytest.mark.parametrize(
    ("text", "location", "fragment"),
    [
        ("command: x\nhypotheses: []\n", "hypotheses", "at least 1"),
        ("command: x\nbogus: 1\nhypotheses: [{name: a, ref: HEAD}]\n", "bogus", "unknown key"),
        (
            "command: x\nhypotheses: [{name: a, ref: HEAD, colour: red}]\n",
            "hypotheses[0].colour",
            "unknown key",
        ),
        (
            "command: x\nhypotheses: [{name: a, ref: HEAD}, {name: a, ref: HEAD}]\n",
            "hypotheses[1].name",
            "duplicate",
        ),
        ("command: x\nhypotheses: [{name: a}]\n", "hypotheses[0]", "exactly one of 'ref' or 'patch'"),
        ("command: x\nhypotheses: [{name: a, ref: HEAD, patch: p.diff}]\n", "hypotheses[0]", "exactly one"),
        (
            "command: x\nhypotheses: [{name: a, ref: HEAD}, {name: b, ref: x}, {name: c, ref: --orphan}]\n",
            "hypotheses[2].ref",
            "starts with '-'",
        ),
        ("command: x\nhypotheses: [{name: a, ref: -bevil}]\n", "hypotheses[0].ref", "starts with '-'"),
        ("hypotheses: [{name: a, ref: HEAD}]\n", "hypotheses[0].command", "no command"),
        ("command: x\ntimeout: -1\nhypotheses: [{name: a, ref: HEAD}]\n", "timeout", "greater than 0"),
        (
            "command: x\nmax-parallel: 0\nhypotheses: [{name: a, ref: HEAD}]\n",
            "max-parallel",
            "greater than or equal to 1",
        ),
        (
            "command: x\nsucceed-if: most\nhypotheses: [{name: a, ref: HEAD}]\n",
            "succeed-if",
            "'all' or 'any'",
        ),
        ('command: "a \'b"\nhypotheses: [{name: a, ref: HEAD}]\n', "command", "cannot be split"),
        (
            "command: x\nhypotheses: [{name: a, ref: HEAD, env: {'BAD-KEY': 1}}]\n",
            "hypotheses[0].env",
            "BAD-KEY",
        ),
        ("command: []\nhypotheses: [{name: a, ref: HEAD}]\n", "command", "empty"),
        (
            "command: true\nhypotheses: [{name: a, ref: HEAD}]\n",
            "command",
            "a string or a list of strings, got bool",
        ),
        ("command: x\nhypotheses: [{name: '  ', ref: HEAD}]\n", "hypotheses[0].name", "blank"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path: Path, text: str, location: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert err.source == str(path)
    assert err.location == location, str(err)
    assert fragment in str(err)
    assert "\n" not in str(err)
    assert str(err).startswith(f"{path}: {location}: ")


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    path = write(tmp_path, "command: x\nhypotheses:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"invalid YAML: line \d+, column \d+"):
        load_config(path)


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yml")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- just\n- a list\n"))


def test_python_names_and_aliases_both_work() -> None:
    a = RunnerConfig.model_validate(
        {"command": "x", "max_parallel": 3, "hypotheses": [{"name": "a", "ref": "HEAD"}]}
    )
    b = RunnerConfig.model_validate(
        {"command": "x", "max-parallel": 3, "hypotheses": [{"name": "a", "ref": "HEAD"}]}
    )
    assert a.max_parallel == b.max_parallel == 3


def test_base_only_for_patches() -> None:
    with pytest.raises(ValueError, match="'base' only applies"):
        Hypothesis(name="a", ref="HEAD", base="main")
    assert Hypothesis(name="a", patch="p.diff", base="v1").source_ref == "v1"
