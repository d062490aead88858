"""Each generated test judged alone (runner/openhands/judge.py): passes, passes again in fresh processes,
asserts, adds coverage beyond the repository's tests and the tests kept before it; the rest is pruned
with ``ast`` and the pruned file verified once more.

The end-to-end case runs the real agent-server with the scripted LLM; the others call the verification
directly on a real git repository (real pytest and coverage.py processes in a worktree).
"""

from __future__ import annotations

import ast
import asyncio
import uuid
from pathlib import Path

import pytest

from runner.openhands import OpenHandsTestGenerator, verify_generated_tests
from runner.openhands.judge import find_candidates, prune

from .conftest import git, worktree_list
from .openhands_support.agent_server import AgentServer
from .openhands_support.fake_llm import FakeLLM, finish, write_file

# One good test, one failing, one flaky (fails in the third run: a counter file next to it counts the
# runs, each a fresh process), one asserting nothing, one covering only what the good one covers.
MIXED = """\
from pathlib import Path

import pytest

from calc import add, div

COUNTER = Path(__file__).with_name(".flaky-counter")


@pytest.fixture
def two():
    return 2


def _bump():
    n = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1
    COUNTER.write_text(str(n))
    return n


def test_good(two):
    assert add(1, two) == 3


def test_failing():
    assert add(1, 2) == 4


def test_flaky():
    assert _bump() % 3 != 0
    assert div(6, 3) == 2


def test_no_assert():
    div(6, 2)


def test_duplicate():
    assert add(2, 2) == 4
"""

EXPECTED = {
    "test_good": ("kept", "passes, stable, asserts, covers"),
    "test_failing": ("rejected", "fails: test_failing failed"),
    "test_flaky": ("rejected", "flaky: passed in the first run, failed in re-run 2 of 3"),
    "test_no_assert": ("rejected", "asserts nothing"),
    "test_duplicate": ("rejected", "adds no line coverage beyond"),
}
FUNNEL = {"generated": 5, "passing": 4, "stable": 3, "asserting": 2, "adding_coverage": 1, "kept": 1}


def _check_mixed_verdicts(tests: list[dict[str, object]]) -> None:
    assert [t["name"] for t in tests] == list(EXPECTED)
    for test in tests:
        verdict, reason = EXPECTED[str(test["name"])]
        assert test["verdict"] == verdict and str(test["reason"]).startswith(reason), test


def _check_pruned(text: str) -> None:
    tree = ast.parse(text)
    names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    assert names == ["two", "_bump", "test_good"]  # fixture and helper stay, rejected tests go
    assert "@pytest.fixture" in text and "COUNTER =" in text and "from calc import add, div" in text


@pytest.mark.openhands
def test_scripted_agent_mixed_file_keeps_exactly_the_good_test(
    agent_server: AgentServer, fake_llm: FakeLLM, calc_repo: Path, tmp_path: Path, runner_temp: Path
) -> None:
    out = f"tests/test_mixed_{uuid.uuid4().hex[:8]}.py"
    fake_llm.add_scenario(out, [write_file(out, MIXED), finish("Five tests, all great.")])
    env = {
        "OPENHANDS_BACKEND": "agent-server", "OPENHANDS_API_URL": agent_server.url,
        "OPENHANDS_API_KEY": agent_server.api_key or "", "OPENHANDS_LLM_MODEL": "openai/fake",
        "OPENHANDS_LLM_BASE_URL": fake_llm.base_url, "OPENHANDS_LLM_API_KEY": "k",
        "OPENHANDS_LLM_NUM_RETRIES": "1",
        "OPENHANDS_LLM_RETRY_MAX_WAIT": "0", "OPENHANDS_MAX_ITERATIONS": "8",
        "OPENHANDS_SERVER_ROOT": str(tmp_path / "server"), "OPENHANDS_REPO_URL": str(calc_repo),
    }  # fmt: skip
    gen = OpenHandsTestGenerator.from_env(env, workspace=calc_repo)

    async def seed() -> dict[str, object]:
        return await gen.generate_tests(module_path="calc.py", output_path=out, coverage_threshold=40)

    result = asyncio.run(seed())
    assert result["tests"], result["reason"]
    _check_mixed_verdicts(result["tests"])  # type: ignore[arg-type]
    assert result["funnel"] == FUNNEL
    assert result["status"] == "COMPLETED" and result["reason"] is None
    # The pruned file (fixture, helper, imports, the good test) is what lands in the workspace, and its
    # coverage is measured again as a whole: def add, return a + b, def div of 6 statements.
    _check_pruned((calc_repo / out).read_text())
    assert (result["coverage_before"], result["coverage"]) == (0.0, 50.0)
    assert "1 passed" in str(result["test_output"])


def _verify(repo: Path, content: str, **kw: object):  # type: ignore[no-untyped-def]
    return asyncio.run(
        verify_generated_tests(
            repo,
            content=content.encode(),
            module_path="calc.py",
            output_path="tests/test_gen.py",
            threshold=kw.pop("threshold", 0.0),
            **kw,  # type: ignore[arg-type]
        )
    )


def test_verification_judges_the_mixed_file(calc_repo: Path, runner_temp: Path) -> None:
    before = worktree_list(calc_repo)
    v = _verify(calc_repo, MIXED, threshold=50)
    _check_mixed_verdicts(v.tests)
    assert v.funnel == FUNNEL and v.kept_tests == 1
    assert v.reason is None and v.tests_passed and v.coverage == 50.0
    assert v.content is not None
    _check_pruned(v.content.decode())
    assert worktree_list(calc_repo) == before and list(runner_temp.iterdir()) == []


def test_zero_reruns_lets_the_flaky_test_through(calc_repo: Path, runner_temp: Path) -> None:
    v = _verify(calc_repo, MIXED, reruns=0)
    kept = [t["name"] for t in v.tests if t["verdict"] == "kept"]
    # Without re-runs, the flaky test (it only fails in the third run) passes and covers div.
    assert kept == ["test_good", "test_flaky"]


def test_existing_tests_set_the_baseline(calc_repo: Path, runner_temp: Path) -> None:
    (calc_repo / "tests").mkdir()
    (calc_repo / "tests" / "test_calc.py").write_text(
        "from calc import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    git(calc_repo, "add", ".")
    git(calc_repo, "commit", "-q", "-m", "existing tests")
    generated = (
        "import pytest\nfrom calc import add, div\n\n"
        "def test_add_again():\n    assert add(1, 1) == 2\n\n"
        "class TestDiv:\n"
        "    @pytest.mark.parametrize('a, b, q', [(6, 3, 2), (1, 1, 1)])\n"
        "    def test_div(self, a, b, q):\n        assert div(a, b) == q\n\n"
        "    def test_div_again(self):\n        assert div(4, 2) == 2\n\n"
        "    def test_zero(self):\n        with pytest.raises(ZeroDivisionError):\n            div(1, 0)\n"
    )
    v = _verify(calc_repo, generated, existing_tests=["tests/test_calc.py"], threshold=100)
    verdicts = {t["name"]: (t["verdict"], t["reason"]) for t in v.tests}
    assert verdicts["test_add_again"][0] == "rejected" and "beyond" in verdicts["test_add_again"][1]
    assert verdicts["TestDiv::test_div"][0] == "kept"  # both parametrized cases pass
    assert verdicts["TestDiv::test_div_again"][0] == "rejected"  # same lines as test_div, kept before it
    assert verdicts["TestDiv::test_zero"][0] == "kept"
    # existing: def add, return a + b, def div (imported) = 3 of 6; existing + kept = all.
    assert (v.coverage_before, v.coverage, v.reason) == (50.0, 100.0, None)
    pruned = (v.content or b"").decode()
    assert "test_add_again" not in pruned and "test_div_again" not in pruned
    assert "@pytest.mark.parametrize" in pruned and "def test_zero" in pruned


def test_missing_existing_test_is_named(calc_repo: Path, runner_temp: Path) -> None:
    v = _verify(calc_repo, MIXED, existing_tests=["tests/nope.py"])
    assert v.reason == "existing test 'tests/nope.py' does not exist at the tested commit"


def test_prune_drops_decorators_emptied_classes_and_shadowed_duplicates() -> None:
    source = (
        "import pytest\n\n"
        "@pytest.mark.parametrize('x', [1, 2])\n"
        "def test_a(x):\n    assert x\n\n"
        "class TestOnly:\n    def test_b(self):\n        assert True\n\n"
        "def test_a():\n    assert 1\n\n"
        "def helper():\n    assert 0\n\n"
        "def test_c():\n    helper()\n\n"
        "def test_d():\n    print('x')\n"
    )
    candidates = find_candidates(source)
    assert [(c.key, c.shadowed, c.asserts) for c in candidates] == [
        ("test_a", True, True), ("TestOnly::test_b", False, True), ("test_a", False, True),
        ("test_c", False, True), ("test_d", False, False),
    ]  # fmt: skip
    pruned = prune(source, [candidates[0], candidates[1]])
    tree = ast.parse(pruned)
    assert [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)] == [
        "test_a", "helper", "test_c", "test_d",
    ]  # fmt: skip
    assert "parametrize" not in pruned and "TestOnly" not in pruned


def test_in_process_coverage_reader_equals_the_json_report(calc_repo: Path, tmp_path: Path) -> None:
    """Per-context lines read with coverage.py's API equal ``coverage json --show-contexts``'s."""
    import os
    import subprocess

    from runner.openhands.judge import (
        PLUGIN_MODULE,
        PLUGIN_SOURCE,
        REPORT_ENV,
        read_coverage_data,
        read_coverage_json,
        read_items,
    )

    from .conftest import PY

    (tmp_path / f"{PLUGIN_MODULE}.py").write_text(PLUGIN_SOURCE)
    (calc_repo / "tests").mkdir()
    (calc_repo / "tests" / "test_gen.py").write_text(MIXED)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), REPORT_ENV: str(tmp_path / "items.json")}
    data = tmp_path / "data"
    subprocess.run(
        [PY, "-m", "coverage", "run", f"--data-file={data}", "--include=calc.py", "-m", "pytest", "-q",
         "-p", "no:cacheprovider", "-p", PLUGIN_MODULE, "tests/test_gen.py"],
        cwd=calc_repo, env=env, capture_output=True, check=False,
    )  # fmt: skip
    subprocess.run(
        [PY, "-m", "coverage", "json", f"--data-file={data}", "--show-contexts",
         "-o", str(tmp_path / "c.json")],
        cwd=calc_repo, capture_output=True, check=True,
    )  # fmt: skip
    in_process = read_coverage_data(data, calc_repo)
    report = read_coverage_json(tmp_path / "c.json")
    assert in_process is not None and report is not None
    assert in_process.statements == report.statements and len(report.statements) == 6
    assert in_process.by_context == report.by_context
    items = read_items(tmp_path / "items.json")
    good = next(n for n, info in items.items() if info["key"] == "test_good")
    assert items[good]["outcome"] == "passed"
    assert in_process.by_context[good] == {("calc.py", 2)}  # return a + b: the line test_good runs


# A generated test that says where it ran and holds a marker file while it runs: two of them running at
# once find the other's marker.
WHERE = """\
import os
import time
from pathlib import Path

from calc import add

MARKERS = Path({markers!r})


def test_add():
    Path({where!r}).write_text(os.getcwd())
    mine = MARKERS / str(os.getpid())
    mine.touch()
    try:
        time.sleep(0.2)
        others = [p.name for p in MARKERS.iterdir() if p != mine]
        if others:
            (MARKERS.parent / "overlaps").touch()
    finally:
        mine.unlink()
    assert add(1, 2) == 3
"""


def test_one_verifier_verifies_modules_side_by_side_in_their_own_worktrees(
    calc_repo: Path, runner_temp: Path, tmp_path: Path
) -> None:
    """One private repository for all modules, a worktree each; ``processes=1``: never two test
    processes at once, though both modules are verified concurrently."""
    from runner.openhands.verify import Verification, Verifier

    markers = tmp_path / "running"
    markers.mkdir()
    before = worktree_list(calc_repo)

    def content(n: int) -> bytes:
        return WHERE.format(markers=str(markers), where=str(tmp_path / f"where-{n}")).encode()

    async def both() -> list[Verification]:
        async with Verifier(calc_repo, processes=1) as verifier:
            return list(
                await asyncio.gather(*(
                    verifier.verify(
                        content=content(n), module_path="calc.py", output_path=f"tests/test_{n}.py",
                        threshold=0.0, reruns=1,
                    )
                    for n in (1, 2)
                ))
            )  # fmt: skip

    results = asyncio.run(both())
    for v in results:
        assert v.tests_passed and v.reason is None and v.kept_tests == 1, v
    first, second = (Path((tmp_path / f"where-{n}").read_text()) for n in (1, 2))
    assert first != second and first.parent == second.parent  # two worktrees of one private root
    assert not (tmp_path / "overlaps").exists()  # a coverage run and a re-run each, one at a time
    assert worktree_list(calc_repo) == before and list(runner_temp.iterdir()) == []


def test_waiting_for_a_process_slot_does_not_count_against_the_timeout() -> None:
    from runner.openhands.verify import _Clock

    async def scenario() -> tuple[float, float, float]:
        slots = asyncio.Semaphore(1)
        clock = _Clock(60.0, slots)
        before = clock.deadline
        await slots.acquire()  # another module's process runs
        waiting = asyncio.ensure_future(_enter(clock))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        slots.release()
        await waiting
        return before, clock.deadline, clock.waited

    async def _enter(clock: _Clock) -> None:
        async with clock.slot():
            pass

    before, after, waited = asyncio.run(scenario())
    assert waited > 0 and after == before + waited


@pytest.mark.parametrize(
    "name, text, configured",
    [
        (".coveragerc", "", True),
        ("setup.cfg", "[metadata]\nname = calc\n\n[coverage:report]\nexclude_also = if b == 0:\n", True),
        ("setup.cfg", "[metadata]\nname = calc\n[tool:pytest]\naddopts = -q\n", False),
        ("tox.ini", "[tox]\nenvlist = py311\n\n[coverage:run]\nbranch = true\n", True),
        ("pyproject.toml", "[project]\nname = 'calc'\ndependencies = ['coverage']\n", False),
        ("pyproject.toml", "[tool.coverage.report]\nexclude_also = ['if b == 0:']\n", True),
        ("pyproject.toml", "[tool]\ncoverage.run.branch = true\n", True),
        ("pyproject.toml", "[project\n", True),  # unreadable: let coverage itself decide
    ],
)
def test_a_coverage_configuration_is_noticed(tmp_path: Path, name: str, text: str, configured: bool) -> None:
    from runner.openhands.verify import _coverage_configured

    assert not _coverage_configured(tmp_path)
    (tmp_path / name).write_text(text)
    assert _coverage_configured(tmp_path) is configured


def test_coverage_data_is_read_here_only_for_the_same_python(tmp_path: Path) -> None:
    import sys

    from runner.engine.environments import HypothesisEnvironment
    from runner.openhands.verify import _same_python

    layer = HypothesisEnvironment(venv=tmp_path / "venv")
    (tmp_path / "venv").mkdir()
    assert layer.python is not None
    assert _same_python(sys.executable, HypothesisEnvironment())
    assert not _same_python(layer.python, layer)  # no pyvenv.cfg: unknown
    major, minor = sys.version_info[:2]
    for version, same in [(f"{major}.{minor}.0", True), (f"{major}.{minor + 1}.1", False), ("2.7.18", False)]:
        (tmp_path / "venv" / "pyvenv.cfg").write_text(f"home = /usr/bin\nversion = {version}\n")
        assert _same_python(layer.python, layer) is same, version
        assert not _same_python("/usr/bin/python3-other", layer)  # not the layer's own python


def test_in_process_reader_refuses_another_coverage_version(calc_repo: Path, tmp_path: Path) -> None:
    import sqlite3
    import subprocess

    import coverage

    from runner.openhands.judge import coverage_writer_version, read_coverage_data

    from .conftest import PY

    data = tmp_path / "data"
    subprocess.run(
        [PY, "-m", "coverage", "run", f"--data-file={data}", "--include=calc.py", "-m", "calc"],
        cwd=calc_repo, capture_output=True, check=True,
    )  # fmt: skip
    assert coverage_writer_version(data) == coverage.__version__
    assert read_coverage_data(data, calc_repo) is not None
    with sqlite3.connect(data) as db:
        db.execute("update meta set value = '6.0' where key = 'version'")
    with pytest.raises(ValueError, match=r"coverage\.py 6\.0 wrote"):
        read_coverage_data(data, calc_repo)
    assert coverage_writer_version(tmp_path / "missing") is None


def test_the_projects_coverage_configuration_counts(calc_repo: Path, runner_temp: Path) -> None:
    """An exclusion in the project's configuration shrinks the module's statements, as `coverage json`
    in the worktree sees them: the if-block of div (2 of 6 statements) is not counted."""
    (calc_repo / ".coveragerc").write_text("[report]\nexclude_also =\n    if b == 0:\n")
    git(calc_repo, "add", ".")
    git(calc_repo, "commit", "-q", "-m", "coverage config")
    v = _verify(calc_repo, "from calc import add\n\ndef test_add():\n    assert add(1, 2) == 3\n")
    assert v.coverage == 75.0 and v.kept_tests == 1  # def add, return a + b, def div of 4
    (calc_repo / ".coveragerc").unlink()
    git(calc_repo, "commit", "-q", "-am", "no coverage config")
    v = _verify(calc_repo, "from calc import add\n\ndef test_add():\n    assert add(1, 2) == 3\n")
    assert v.coverage == 50.0
