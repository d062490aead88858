"""Splitting hypotheses into shards: properties of the split (hypothesis) and ``test --shard`` for real."""

from __future__ import annotations

import json
import math
import random
import statistics
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.report.sharding import (
    MAX_SHARDS,
    ShardSpec,
    ShardSpecError,
    config_digest,
    expected_durations,
    parse_shard,
    plan_shard,
    split,
)

from .conftest import PY, REPO_ROOT, worktree_list

names_st = st.lists(st.text(min_size=1, max_size=12), unique=True, max_size=80)
totals_st = st.integers(min_value=1, max_value=MAX_SHARDS)
duration_st = st.floats(min_value=0, max_value=1e5, allow_nan=False, allow_infinity=False)


@st.composite
def names_and_durations(draw: st.DrawFn) -> tuple[list[str], dict[str, float]]:
    """Configured names, and recorded durations for some of them (plus names no longer configured)."""
    names = draw(names_st)
    known = draw(st.lists(st.sampled_from(names), unique=True) if names else st.just([]))
    durations = {n: draw(duration_st) for n in known}
    for gone in draw(st.lists(st.text(min_size=1, max_size=5), max_size=3)):
        if gone not in names:
            durations[gone] = draw(duration_st)
    return names, durations


def _check_partition(shards: list[list[int]], count: int, total: int) -> None:
    assert len(shards) == total
    flat = [i for part in shards for i in part]
    assert sorted(flat) == list(range(count))  # union exact, no overlap
    assert all(part == sorted(part) for part in shards)  # configuration order within a shard


# --- the split ------------------------------------------------------------------------------------


@given(names_and_durations(), totals_st, st.booleans())
@settings(max_examples=300, deadline=None)
def test_split_is_an_exact_deterministic_partition(
    nd: tuple[list[str], dict[str, float]], total: int, use_durations: bool
) -> None:
    names, durations = nd
    given_durations = durations if use_durations else None
    strategy, shards = split(names, total, given_durations)
    _check_partition(shards, len(names), total)
    # Every shard job computes the split independently: same inputs, same split, whatever the
    # order the durations were read in.
    shuffled = dict(sorted(durations.items(), key=lambda kv: random.random()))
    assert split(names, total, shuffled if use_durations else None) == (strategy, shards)
    # Each job keeps its own part: the parts of all K = 1..N are the split.
    plans = [plan_shard(names, ShardSpec(k, total), given_durations) for k in range(1, total + 1)]
    assert [p.positions for p in plans] == shards
    assert {p.digest for p in plans} == {config_digest(names)}
    # No shard is empty unless there are fewer hypotheses than shards, and then exactly the last ones.
    assert [bool(part) for part in shards] == [k < len(names) for k in range(total)]


def test_every_shard_count_from_1_to_256() -> None:
    names = [f"h{i:03d}" for i in range(300)]
    durations = {n: float((i * 37) % 101) for i, n in enumerate(names) if i % 3}
    for total in range(1, MAX_SHARDS + 1):
        for given_durations in (None, durations):
            _, shards = split(names, total, given_durations)
            _check_partition(shards, len(names), total)


@given(names_st, totals_st)
@settings(max_examples=200, deadline=None)
def test_round_robin_sizes_differ_by_at_most_one(names: list[str], total: int) -> None:
    strategy, shards = split(names, total)
    assert strategy == "round-robin"
    sizes = [len(part) for part in shards]
    assert max(sizes) - min(sizes) <= 1
    assert shards[0][:2] == list(range(0, min(len(names), 2 * total), total))[:2]


@given(names_and_durations(), totals_st)
@settings(max_examples=300, deadline=None)
def test_lpt_balance_bound(nd: tuple[list[str], dict[str, float]], total: int) -> None:
    names, durations = nd
    expected = expected_durations(names, durations)
    strategy, shards = split(names, total, durations)
    if expected is None:  # the file knows none of the configured names
        assert strategy == "round-robin"
        return
    assert strategy == "lpt"
    loads = [sum(expected[i] for i in part) for part in shards]
    bound = sum(expected) / total + max(expected)
    assert max(loads) <= bound * (1 + 1e-9) + 1e-9


def test_unknown_durations_are_the_median_of_known_ones() -> None:
    names = ["a", "b", "c", "d", "new"]
    durations = {"a": 1.0, "b": 2.0, "c": 10.0, "d": 4.0, "retired": 1000.0}
    assert expected_durations(names, durations) == [1.0, 2.0, 10.0, 4.0, statistics.median([1, 2, 10, 4])]
    # Negative or non-finite records say nothing.
    assert expected_durations(["a", "b"], {"a": -1.0, "b": math.nan}) is None
    assert expected_durations(["a", "b"], {"a": 5.0, "b": math.inf}) == [5.0, 5.0]


def test_lpt_example_and_tie_breaks() -> None:
    names = ["a", "b", "c", "d", "e", "f"]
    durations = {"a": 1.0, "b": 9.0, "c": 5.0, "d": 5.0, "e": 3.0}  # f unknown: median 5.0
    strategy, shards = split(names, 2, durations)
    # b(9) -> 1; c(5) -> 2; d(5) -> 2 (5 < 9); f(5) -> 1 (9 < 10); e(3) -> 2 (10 < 14); a(1) -> 2 (13 < 14)
    assert strategy == "lpt"
    assert shards == [[1, 5], [0, 2, 3, 4]]
    # Equal (zero) loads: fewer hypotheses first, then the lower shard, so every shard gets one.
    assert split(["x", "y", "z"], 3, {"x": 0.0, "y": 0.0, "z": 0.0}) == ("lpt", [[0], [1], [2]])


def test_config_digest_is_of_the_sorted_names() -> None:
    assert config_digest(["b", "a"]) == config_digest(["a", "b"])
    assert config_digest(["a", "b"]) != config_digest(["a", "b", "c"])
    assert config_digest(["a,b"]) != config_digest(["a", "b"])
    plan = plan_shard(["b", "a", "c"], ShardSpec(2, 2), None)
    assert plan.metadata() == {
        "index": 2, "total": 2, "strategy": "round-robin", "hypotheses_total": 3,
        "config_digest": config_digest(["a", "b", "c"]), "positions": [1],
    }  # fmt: skip


# --- K/N ------------------------------------------------------------------------------------------


@given(st.integers(1, MAX_SHARDS).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_parse_valid_specs(kn: tuple[int, int]) -> None:
    k, n = kn
    assert parse_shard(f"{k}/{n}") == ShardSpec(k, n)
    assert str(parse_shard(f" {k} / {n} ")) == f"{k}/{n}"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("1/257", "more than 256"),
        ("3/1000000000000000000000000", "more than 256"),
        ("0/3", "numbered from 1"),
        ("4/3", "shard 4 does not exist when there are 3 shards"),
        ("1/0", "at least 1"),
        ("", "expected K/N"),
        ("2", "expected K/N"),
        ("1/2/3", "expected K/N"),
        ("-1/2", "expected K/N"),
        ("1.0/2", "expected K/N"),
        ("١/٢", "expected K/N"),  # other scripts' digits are not numbers here
        ("1/2\n::error::x", "expected K/N"),
    ],
)
def test_parse_rejects(text: str, needle: str) -> None:
    with pytest.raises(ShardSpecError) as err:
        parse_shard(text)
    assert needle in str(err.value) and "\n" not in str(err.value)


# --- worktree-runner test --shard, for real --------------------------------------------------------

NAMES = ["n0", "n1", "fails-2", "n3", "n4"]


def _write_config(tmp_path: Path) -> Path:
    command = [
        PY,
        "-c",
        "import os, sys; sys.exit(os.environ['WORKTREE_RUNNER_HYPOTHESIS'].startswith('fails'))",
    ]
    config = {"command": command, "hypotheses": [{"name": n, "ref": "main"} for n in NAMES]}
    path = tmp_path / "wr.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``python -m runner ARGS`` (run from this checkout, so the package under test is the one used)."""
    return subprocess.run(
        [PY, "-m", "runner", *map(str, args)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


def test_cli_shard_runs_its_part_and_records_it(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    config = _write_config(tmp_path)
    out = tmp_path / "s2.json"
    proc = cli("test", "--config", config, "--repo", repo, "--shard", "2/3", "--results-json", out)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert [r["name"] for r in doc["results"]] == ["n1", "n4"]  # round-robin: positions 1 and 4
    assert doc["shard"] == {
        "index": 2, "total": 3, "strategy": "round-robin", "hypotheses_total": 5,
        "config_digest": config_digest(NAMES), "positions": [1, 4],
    }  # fmt: skip
    assert "[2/2]" in proc.stderr and "[3/" not in proc.stderr  # progress counts the shard only

    failing = cli("test", "--config", config, "--repo", repo, "--shard", "3/3", "-q")
    assert failing.returncode == 1 and "passed 0, failed 1" in failing.stderr  # only fails-2


def test_cli_shard_with_durations_uses_lpt(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    config = _write_config(tmp_path)
    previous = tmp_path / "previous.json"
    times = {"n0": 1.0, "n1": 8.0, "fails-2": 2.0, "n3": 3.0}  # n4 unknown: median 2.5
    previous.write_text(json.dumps({"results": [
        {"name": n, "status": "passed", "duration_s": d} for n, d in times.items()
    ]}))  # fmt: skip
    docs = []
    for k in (1, 2):
        out = tmp_path / f"lpt{k}.json"
        proc = cli(
            "test", "--config", config, "--repo", repo, "--shard", f"{k}/2", "--durations", previous,
            "--results-json", out, "-q",
        )  # fmt: skip
        assert proc.returncode in (0, 1), proc.stderr
        docs.append(json.loads(out.read_text()))
    # n1(8) -> 1; n3(3) -> 2; n4(2.5) -> 2; fails-2(2) -> 2 (5.5 < 8); n0(1) -> 2 (7.5 < 8)
    assert [[r["name"] for r in d["results"]] for d in docs] == [["n1"], ["n0", "fails-2", "n3", "n4"]]
    assert {d["shard"]["strategy"] for d in docs} == {"lpt"}


@pytest.mark.parametrize(
    ("shard", "needle"),
    [
        ("2/300", "argument --shard: 300 shards is more than 256"),
        ("0/2", "argument --shard: shards are numbered from 1"),
        ("3/2", "argument --shard: shard 3 does not exist"),
        ("half", "argument --shard: expected K/N"),
        ("6/6", "--shard: shard 6/6 has no hypotheses: there are only 5"),
    ],
)
def test_cli_bad_shard_is_one_line_exit_2_nothing_created(
    repo: Path, tmp_path: Path, runner_temp: Path, shard: str, needle: str
) -> None:
    config = _write_config(tmp_path)
    before = worktree_list(repo)
    out, logs = tmp_path / "out" / "r.json", tmp_path / "logs"
    proc = cli(
        "test",
        "--config",
        config,
        "--repo",
        repo,
        "--shard",
        shard,
        "--results-json",
        out,
        "--logs-dir",
        logs,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert not out.parent.exists() and not logs.exists()
    assert list(runner_temp.iterdir()) == []
    assert worktree_list(repo) == before
