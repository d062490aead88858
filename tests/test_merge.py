"""Merging shard results: properties (hypothesis), the library's error rules, ``worktree-runner merge``
and the action's ``mode: merge``, both as real processes."""

from __future__ import annotations

import functools
import json
import random
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.config import Status, TestExecutionResult
from runner.report.merge import MergeError, merge_files
from runner.report.results import RunReport
from runner.report.sharding import MAX_SHARDS, ShardSpec, plan_shard

from .test_action import errors, run_step
from .test_sharding import NAMES, _write_config, cli

# --- building shard files the way shard jobs write them -------------------------------------------


def make_shard_docs(
    results: Sequence[TestExecutionResult],
    total: int,
    *,
    durations: dict[str, float] | None = None,
    succeed_if: str = "all",
    stopped: dict[int, str] | None = None,
) -> list[dict[str, Any]]:
    """The results JSON of each of the ``total`` shard jobs of a run that produced ``results``."""
    names = [r.name for r in results]
    docs = []
    for k in range(1, total + 1):
        plan = plan_shard(names, ShardSpec(k, total), durations)
        report = RunReport(
            results=[results[i] for i in plan.positions],
            succeed_if=succeed_if,  # type: ignore[arg-type]
            duration_s=float(k),
            cancelled_by=(stopped or {}).get(k),
            extra={"logs_dir": f"shard-{k}/logs", "shard": plan.metadata()},
        )
        docs.append(json.loads(json.dumps(report.to_dict())))
    return docs


def write_docs(directory: Path, docs: Sequence[Any], *, names: Sequence[str] | None = None) -> list[Path]:
    paths = []
    for i, doc in enumerate(docs):
        path = directory / (names[i] if names else f"shard-{i + 1}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(doc if isinstance(doc, bytes) else json.dumps(doc, ensure_ascii=False).encode())
        paths.append(path)
    return paths


def merge_in(directory: Path, docs: Sequence[Any], names: Sequence[str] | None = None) -> RunReport:
    return merge_files(write_docs(directory, docs, names=names), source="FILES")


def problems_of(call: Callable[[], object]) -> list[str]:
    with pytest.raises(MergeError) as err:
        call()
    assert err.value.problems and all("\n" not in p for p in err.value.problems)
    return err.value.problems


def result(name: str, status: Status = Status.PASSED, duration: float = 1.0) -> TestExecutionResult:
    return TestExecutionResult(
        name=name, status=status, exit_code=0 if status is Status.PASSED else 1, duration_s=duration,
        ref="main", commit="0" * 40, log_path=f"logs/{name}.log", output_tail=f"tail of {name}\n",
        error=None if status is Status.PASSED else "exit code 1",
    )  # fmt: skip


results_st = st.lists(
    st.builds(
        TestExecutionResult,
        name=st.text(min_size=1, max_size=10),
        status=st.sampled_from(list(Status)),
        exit_code=st.none() | st.integers(-9, 255),
        duration_s=st.floats(0, 1e4, allow_nan=False),
        ref=st.none() | st.just("main"),
        output_tail=st.text(max_size=20),
        error=st.none() | st.text(max_size=10),
    ),
    min_size=1,
    max_size=40,
    unique_by=lambda r: r.name,
)
durations_st = st.none() | st.dictionaries(st.text(min_size=1, max_size=10), st.floats(0, 100), max_size=10)


# --- properties -----------------------------------------------------------------------------------


@given(results_st, st.integers(1, MAX_SHARDS), durations_st, st.sampled_from(["all", "any"]), st.randoms())
@settings(max_examples=150, deadline=None)
def test_split_then_merge_gives_back_the_run(
    results: list[TestExecutionResult], total: int, durations: dict[str, float] | None, succeed_if: str,
    rnd: random.Random,
) -> None:  # fmt: skip
    total = min(total, 12) if rnd.random() < 0.9 else total  # mostly small, sometimes up to 256
    docs = make_shard_docs(results, total, durations=durations, succeed_if=succeed_if)
    rnd.shuffle(docs)  # the order the files are given in does not matter
    with tempfile.TemporaryDirectory() as tmp:
        merged = merge_in(Path(tmp), docs).to_dict()
    whole = RunReport(results=results, succeed_if=succeed_if).to_dict()  # type: ignore[arg-type]
    assert merged["results"] == whole["results"]  # every hypothesis once, in configuration order
    for key in ("conclusion", "passed", "failed", "timed_out", "errors", "cancelled", "best", "succeed_if"):
        assert merged[key] == whole[key], key
    assert merged["duration_s"] == float(total)  # the slowest shard (shard k took k seconds here)
    assert [s["index"] for s in merged["merged"]["shards"]] == list(range(1, total + 1))


@given(results_st, st.integers(2, 16), durations_st, st.data())
@settings(max_examples=150, deadline=None)
def test_any_missing_or_duplicate_shard_is_named(
    results: list[TestExecutionResult], total: int, durations: dict[str, float] | None, data: st.DataObject
) -> None:
    docs = make_shard_docs(results, total, durations=durations)
    dropped = data.draw(st.sets(st.integers(1, total), min_size=0, max_size=total - 1), label="dropped")
    doubled = data.draw(st.sets(st.integers(1, total).filter(lambda k: k not in dropped)), label="dup")
    if not dropped and not doubled:
        return
    kept = [(f"shard-{k}.json", docs[k - 1]) for k in range(1, total + 1) if k not in dropped]
    kept += [(f"copy-of-{k}.json", docs[k - 1]) for k in sorted(doubled)]
    with tempfile.TemporaryDirectory() as tmp:
        names = [n for n, _ in kept]
        problems = problems_of(lambda: merge_in(Path(tmp), [d for _, d in kept], names))
        expected = [f"FILES: missing shard {k}/{total}" for k in sorted(dropped)]
        for k in sorted(doubled):
            copy, original = Path(tmp) / f"copy-of-{k}.json", Path(tmp) / f"shard-{k}.json"
            expected.append(f"{copy}: duplicate shard {k}/{total} (also in {original})")
        assert sorted(problems) == sorted(expected)


def _corrupt(doc: dict[str, Any], kind: str, rnd: random.Random) -> Any:
    """One way a shard's results file can be damaged; every one of them must be caught and named."""
    text = json.dumps(doc)
    if kind == "truncated":
        return text[: rnd.randrange(len(text) - 1)].encode()
    if kind == "not-utf8":
        cut = rnd.randrange(len(text))
        return text[:cut].encode() + b"\xff" + text[cut:].encode()
    if kind == "not-an-object":
        return [doc]
    doc = json.loads(text)
    top = ["schema", "shard", "results", "succeed_if", "duration_s", "passed", "failed", "timed_out",
           "errors", "cancelled"]  # fmt: skip
    shard_keys = ["index", "total", "strategy", "hypotheses_total", "config_digest", "positions"]
    if kind == "key-missing":
        del doc[rnd.choice(top)]
    elif kind == "shard-key-missing":
        del doc["shard"][rnd.choice(shard_keys)]
    elif kind == "wrong-type":
        doc[rnd.choice([*top, "stopped"])] = [1]
    elif kind == "shard-wrong-type":
        doc["shard"][rnd.choice(shard_keys)] = "x"
    elif kind == "result-dropped":
        doc["results"].pop(rnd.randrange(len(doc["results"])))
    elif kind == "result-doubled":
        doc["results"].append(rnd.choice(doc["results"]))
        doc["shard"]["positions"].append(doc["shard"]["hypotheses_total"] - 1)
    elif kind == "bad-status":
        rnd.choice(doc["results"])["status"] = "exploded"
    elif kind == "count-off":
        doc[rnd.choice(["passed", "failed", "timed_out", "errors", "cancelled"])] += 1
    elif kind == "position-out-of-range":
        doc["shard"]["positions"][rnd.randrange(len(doc["shard"]["positions"]))] = -1
    elif kind == "schema-2":
        doc["schema"] = 2
    return doc


CORRUPTIONS = [
    "truncated", "not-utf8", "not-an-object", "key-missing", "shard-key-missing", "wrong-type",
    "shard-wrong-type", "result-dropped", "result-doubled", "bad-status", "count-off",
    "position-out-of-range", "schema-2",
]  # fmt: skip


@given(results_st, st.integers(1, 8), st.sampled_from(CORRUPTIONS), st.randoms(), st.data())
@settings(max_examples=300, deadline=None)
def test_a_corrupt_shard_file_is_detected_and_named(
    results: list[TestExecutionResult], total: int, kind: str, rnd: random.Random, data: st.DataObject
) -> None:
    total = min(total, len(results))  # every shard has a result (as real shard jobs do)
    docs = make_shard_docs(results, total)
    k = data.draw(st.integers(1, total), label="corrupt shard")
    docs[k - 1] = _corrupt(docs[k - 1], kind, rnd)
    with tempfile.TemporaryDirectory() as tmp:
        problems = problems_of(lambda: merge_in(Path(tmp), docs))
        bad = f"{Path(tmp) / f'shard-{k}.json'}: "
        assert any(p.startswith(bad) for p in problems), (kind, problems)
        others = tuple(f"{Path(tmp) / f'shard-{j}.json'}: " for j in range(1, total + 1) if j != k)
        assert not any(p.startswith(others) for p in problems)


# --- the rules, one by one ------------------------------------------------------------------------

RUN = [result("a"), result("b", Status.FAILED), result("c"), result("d", Status.TIMEOUT), result("e")]


def test_merged_report_has_the_keys_of_a_normal_run(tmp_path: Path) -> None:
    docs = make_shard_docs(RUN, 2, stopped={2: "fail-fast: b failed"})
    merged = merge_in(tmp_path, docs).to_dict()
    normal = RunReport(results=RUN, extra={"logs_dir": "x"}).to_dict()
    assert set(merged) == set(normal) | {"merged"}
    assert merged["schema"] == 1 and merged["logs_dir"] is None and "shard" not in merged
    assert merged["stopped"] == "shard 2/2: fail-fast: b failed"
    assert merged["merged"] == {
        "total": 2, "strategy": "round-robin", "hypotheses_total": 5,
        "config_digest": docs[0]["shard"]["config_digest"],
        "shards": [
            {"index": 1, "file": str(tmp_path / "shard-1.json"), "results": 3, "conclusion": "success",
             "duration_s": 1.0, "stopped": None},
            {"index": 2, "file": str(tmp_path / "shard-2.json"), "results": 2, "conclusion": "failure",
             "duration_s": 2.0, "stopped": "fail-fast: b failed"},
        ],
    }  # fmt: skip


def test_unsharded_results_are_rejected(tmp_path: Path) -> None:
    plain = RunReport(results=RUN, extra={"logs_dir": "x"}).to_dict()
    (problem,) = problems_of(lambda: merge_in(tmp_path, [plain]))
    assert problem.startswith(f"{tmp_path / 'shard-1.json'}: not a shard results file")


def test_the_same_file_twice_counts_once(tmp_path: Path) -> None:
    a, b = write_docs(tmp_path, make_shard_docs(RUN, 2))
    report = merge_files([a, b, a, tmp_path / "." / "shard-2.json"], source="FILES")
    assert [r.name for r in report.results] == ["a", "b", "c", "d", "e"]


def test_shards_of_another_run_are_named(tmp_path: Path) -> None:
    ours = make_shard_docs(RUN, 3)
    other_names = make_shard_docs([*RUN, result("f")], 3)
    other_count = make_shard_docs(RUN, 2)
    lpt = make_shard_docs(RUN, 3, durations={"a": 5.0})
    cases = [
        (other_names[1], "its hypotheses differ from those of"),
        (other_count[1], "it is one of 2 shards"),
        (lpt[1], "it was split by lpt"),
    ]
    for doc, needle in cases:
        problems = problems_of(functools.partial(merge_in, tmp_path, [ours[0], doc, ours[2]]))
        assert problems[0].startswith(f"{tmp_path / 'shard-2.json'}: shard 2/") and needle in problems[0]
        assert problems[1:] == ["FILES: missing shard 2/3"]


def test_majority_decides_which_file_is_the_odd_one(tmp_path: Path) -> None:
    ours = make_shard_docs(RUN, 3)
    odd = make_shard_docs(RUN, 2)[0]
    problems = problems_of(
        lambda: merge_in(tmp_path, [odd, *ours], ["odd.json", "1.json", "2.json", "3.json"])
    )
    assert problems == [f"{tmp_path / 'odd.json'}: shard 1/2 is from a different run: it is one of 2 shards, "
                        f"{tmp_path / '1.json'} one of 3"]  # fmt: skip


def test_succeed_if_must_agree(tmp_path: Path) -> None:
    docs = [make_shard_docs(RUN, 2)[0], make_shard_docs(RUN, 2, succeed_if="any")[1]]
    (problem,) = problems_of(lambda: merge_in(tmp_path, docs))
    assert problem.startswith(f"{tmp_path / 'shard-2.json'}: succeed_if is 'any' but 'all' in")


def _with_positions(doc: dict[str, Any], positions: list[int], run: Sequence[TestExecutionResult]) -> None:
    """Make ``doc`` claim the hypotheses at ``positions`` (as a shard split another way would)."""
    report = RunReport(results=[run[p] for p in positions], extra={"logs_dir": None, "shard": doc["shard"]})
    doc.update(json.loads(json.dumps(report.to_dict())))
    doc["shard"]["positions"] = positions


def test_shards_split_differently_are_named(tmp_path: Path) -> None:
    docs = make_shard_docs(RUN, 2)  # round-robin: [0, 2, 4] and [1, 3]
    _with_positions(docs[1], [0, 3], RUN)  # a in both shards (and b in none)
    problems = problems_of(lambda: merge_in(tmp_path, docs))
    assert problems == [
        f"{tmp_path / 'shard-2.json'}: hypothesis #1 'a' is also in shard 1/2 ({tmp_path / 'shard-1.json'}): "
        "the shards were split differently (every shard job must see the same hypotheses and durations-file)"
    ]
    _with_positions(docs[1], [3], RUN)  # b in no shard
    problems = problems_of(lambda: merge_in(tmp_path, docs))
    assert problems == ["FILES: 1 hypotheses are in no shard (#2): the shards were split differently"]


def test_a_renamed_hypothesis_does_not_match_the_digest(tmp_path: Path) -> None:
    docs = make_shard_docs(RUN, 2)
    docs[1]["results"][0]["name"] = "renamed"
    (problem,) = problems_of(lambda: merge_in(tmp_path, docs))
    assert "do not match their config_digest" in problem


def test_unreadable_files_and_nothing_to_merge(tmp_path: Path) -> None:
    (problem,) = problems_of(lambda: merge_files([tmp_path / "nope.json"], source="FILES"))
    assert problem == f"{tmp_path / 'nope.json'}: file not found"
    (problem,) = problems_of(lambda: merge_files([tmp_path], source="FILES"))
    assert problem.startswith(f"{tmp_path}: is a directory")
    docs = make_shard_docs(RUN, 2)
    paths = write_docs(tmp_path, [docs[0], b'{"schema": 1,'])
    problems = problems_of(lambda: merge_files(paths, source="FILES"))
    assert problems == [
        f"{paths[1]}: corrupt results file: not valid JSON "
        "(Expecting property name enclosed in double quotes at line 1, column 14)",
        "FILES: missing shard 2/2 (1 of the files could not be used)",
    ]


def test_untrusted_names_stay_on_one_line(tmp_path: Path) -> None:
    evil = "x\n::error::pwned\r\u2028y"
    docs = make_shard_docs([result(evil), result("ok")], 2)
    docs[1]["results"][0]["name"] = evil  # the same name in two shards
    (problem,) = problems_of(lambda: merge_in(tmp_path, docs))
    assert not any(c in problem for c in "\n\r\u2028")
    assert "hypothesis 'x\\x0a::error::pwned\\x0d" in problem


# --- worktree-runner merge, for real ----------------------------------------------------------------


def _run_shards(repo: Path, tmp_path: Path, total: int, out_dir: Path) -> list[Path]:
    config = _write_config(tmp_path)
    paths = []
    for k in range(1, total + 1):
        out = out_dir / f"shard-{k}" / "results.json"
        proc = cli(
            "test", "--config", config, "--repo", repo, "--shard", f"{k}/{total}", "--results-json", out, "-q"
        )
        assert proc.returncode in (0, 1), proc.stderr
        paths.append(out)
    return paths


def test_cli_merge(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    paths = _run_shards(repo, tmp_path, 3, tmp_path / "shards")
    out, junit = tmp_path / "merged" / "results.json", tmp_path / "merged" / "junit.xml"
    proc = cli("merge", *reversed(paths), "--results-json", out, "--junit", junit)
    assert proc.returncode == 1, proc.stderr  # fails-2 failed and succeed-if is all
    lines = proc.stderr.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["shard 1/3", "shard 2/3", "shard 3/3"]
    assert lines[-1].startswith("worktree-runner: failure - passed 4, failed 1,")
    merged = json.loads(out.read_text())
    assert [r["name"] for r in merged["results"]] == NAMES
    cases = ET.parse(junit).getroot().iter("testcase")
    assert [c.get("name") for c in cases] == NAMES

    quiet = cli("merge", *paths, "-q")
    assert quiet.returncode == 1 and len(quiet.stderr.splitlines()) == 1


def test_cli_merge_bad_input_is_exit_2_and_writes_nothing(
    repo: Path, tmp_path: Path, runner_temp: Path
) -> None:
    paths = _run_shards(repo, tmp_path, 3, tmp_path / "shards")
    paths[1].write_text(paths[1].read_text()[:-20])
    out = tmp_path / "merged" / "results.json"
    proc = cli("merge", paths[0], paths[1], paths[0].with_name("copy.json"), "--results-json", out)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 4, proc.stderr
    assert lines[0].startswith(f"worktree-runner: error: {paths[1]}: corrupt results file: not valid JSON (")
    assert lines[1:] == [
        f"worktree-runner: error: {paths[0].with_name('copy.json')}: file not found",
        "worktree-runner: error: FILES: missing shard 2/3 (2 of the files could not be used)",
        "worktree-runner: error: FILES: missing shard 3/3 (2 of the files could not be used)",
    ]
    assert not out.parent.exists()
    usage = cli("merge")
    assert usage.returncode == 2 and "FILES" in usage.stderr and len(usage.stderr.splitlines()) == 1


# --- mode: merge, the action entrypoint as a process -----------------------------------------------


def test_action_merge_mode(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    _run_shards(repo, tmp_path, 3, repo / "shards")
    result = run_step(
        repo, tmp_path, {"mode": "merge", "results-files": "shards/*/results.json"}, runner_temp
    )
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.outputs
    assert (out["conclusion"], out["passed"], out["failed"]) == ("failure", "4", "1")
    assert out["best"] in {"n0", "n1", "n3", "n4"}
    assert out["results-file"] == ".worktree-runner/results.json"
    assert out["junit-file"] == ".worktree-runner/junit.xml"
    compact = json.loads(out["results"])
    assert [r["name"] for r in compact["results"]] == NAMES and compact["merged"]["total"] == 3
    merged = json.loads((repo / out["results-file"]).read_text())
    assert [s["file"] for s in merged["merged"]["shards"]] == [
        f"shards/shard-{k}/results.json" for k in (1, 2, 3)
    ]
    assert (repo / ".worktree-runner" / ".gitignore").read_text() == "*\n"
    assert errors(result) == []  # the shard jobs annotated the failure already
    assert "Merged 3 shards (round-robin split) of 5 hypotheses" in result.summary.replace("\\", "")
    assert "fails-2" in result.summary
    assert "shard 3/3: shards/shard-3/results.json: 1 results, failure in" in result.stdout


@pytest.mark.parametrize(
    ("files", "damage", "needles"),
    [
        ("shards/*/results.json", "drop-2", ["input 'results-files': missing shard 2/3"]),
        ("shards/*/results.json", "corrupt-2",
         ["shards/shard-2/results.json: corrupt results file: not valid JSON",
          "input 'results-files': missing shard 2/3 (1 of the files could not be used)"]),
        ("shards/*/results.json\nmore/*.json", None,
         ["input 'results-files': 'more/*.json' matches no file"]),
        ("shards/shard-1/results.json\nshards/shard-1/results.json", None,
         ["input 'results-files': missing shard 2/3", "input 'results-files': missing shard 3/3"]),
        ("shards/*/results.json\nshards/shard-1/copy.json", "copy-1",
         ["shards/shard-1/copy.json: duplicate shard 1/3 (also in shards/shard-1/results.json)"]),
        ("", None, ["input 'results-files': is empty"]),
        ("../elsewhere.json", None,
         ["input 'results-files': '../elsewhere.json' points outside the workspace"]),
    ],
)  # fmt: skip
def test_action_merge_bad_input(
    repo: Path, tmp_path: Path, runner_temp: Path, files: str, damage: str | None, needles: list[str]
) -> None:
    paths = _run_shards(repo, tmp_path, 3, repo / "shards")
    if damage == "drop-2":
        paths[1].unlink()
    elif damage == "corrupt-2":
        paths[1].write_text("{")
    elif damage == "copy-1":
        paths[0].with_name("copy.json").write_bytes(paths[0].read_bytes())
    result = run_step(repo, tmp_path, {"mode": "merge", "results-files": files}, runner_temp)
    assert result.returncode == 2, result.stdout + result.stderr
    errs = errors(result)
    assert len(errs) == len(needles), errs
    for err, needle in zip(errs, needles, strict=True):
        assert err.data.startswith(needle), (err.data, needle)
    assert result.outputs == {} and result.summary == ""
    assert not (repo / ".worktree-runner").exists()


def test_action_merge_does_not_obey_hypothesis_names(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    evil = ["::error::pwned", "x\n::warning::pwned%0A", "##[error]legacy pwned", "b<<EOF\nbest=pwned"]
    run = [result(evil[0]), result(evil[1], duration=0.5), result(evil[2], Status.FAILED), result(evil[3])]
    write_docs(repo / "shards", make_shard_docs(run, 2), names=["a/results.json", "b/results.json"])
    result_ = run_step(
        repo, tmp_path, {"mode": "merge", "results-files": "shards/*/results.json"}, runner_temp
    )
    assert result_.returncode == 1, result_.stdout + result_.stderr
    assert result_.outputs["best"] == evil[1]  # carried exactly, in its own record
    assert result_.outputs["passed"] == "3" and result_.outputs["failed"] == "1"
    assert [c for c in result_.commands if c.command in ("error", "warning", "add-mask")] == []
    assert not any("pwned" in c.data for c in result_.commands)

    # ... nor in the error lines about them.
    docs = make_shard_docs(run, 2)  # round-robin: evil 0 and 2 in shard 1, evil 1 and 3 in shard 2
    docs[0]["results"][0]["name"] = evil[1]  # now in both
    write_docs(repo / "bad", docs, names=["a/results.json", "b/results.json"])
    bad = run_step(repo, tmp_path, {"mode": "merge", "results-files": "bad/*/results.json"}, runner_temp)
    assert bad.returncode == 2
    (err,) = errors(bad)
    assert "x\\x0a::warning::pwned%0A" in err.data and "is also in shard 1/2" in err.data
    assert [c for c in bad.commands if c.command != "error"] == []


def test_action_test_mode_shard_input(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    hypotheses = "".join(f"- {{name: h{i}, ref: main}}\n" for i in range(4))
    base = {"hypotheses": hypotheses, "test-command": "true"}
    ok = run_step(repo, tmp_path, {**base, "shard": "2/2"}, runner_temp)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    doc = json.loads((repo / ".worktree-runner" / "results.json").read_text())
    assert [r["name"] for r in doc["results"]] == ["h1", "h3"] and doc["shard"]["positions"] == [1, 3]
    assert "Shard 2/2: 2 of 4 hypotheses (round-robin split)" in ok.summary.replace("\\", "")
    for shard, needle in [
        ("2/257", "more than 256"),
        ("3/2", "does not exist"),
        ("5/5", "has no hypotheses"),
    ]:
        bad = run_step(repo, tmp_path, {**base, "shard": shard, "results-dir": "other"}, runner_temp)
        assert bad.returncode == 2
        (err,) = errors(bad)
        assert err.data.startswith("input 'shard': ") and needle in err.data, err.data
        assert not (repo / "other").exists()
        assert list(runner_temp.iterdir()) == []
