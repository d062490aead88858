"""The executor on real processes: statuses, process trees, output handling, the compatible API."""

from __future__ import annotations

import asyncio
import os
import textwrap
import time
from pathlib import Path

import pytest

from runner import AsyncTestExecutor, ExecutionSettings, Hypothesis, Status, TestExecutionResult, TestExecutor
from runner.async_test_executor import TAIL_BYTES

from .conftest import PY, pid_alive


def hyp(name: str, command: list[str] | str, **kw: object) -> Hypothesis:
    return Hypothesis(name=name, ref="HEAD", command=command, **kw)  # type: ignore[arg-type]


def py(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    d = tmp_path / "wt"
    d.mkdir()
    return d


def run(
    settings: dict[str, object], hyps: list[Hypothesis], work: Path, **kw: object
) -> list[TestExecutionResult]:
    executor = TestExecutor({"command": "true", **settings}, logs_dir=work.parent / "logs", **kw)  # type: ignore[arg-type]
    return executor.execute_parallel(hyps, [work] * len(hyps))


def test_statuses_and_fields(work: Path) -> None:
    results = run(
        {"timeout": 5},
        [
            hyp("ok", py("print('hello')")),
            hyp("bad", py("import sys; print('nope'); sys.exit(3)")),
            hyp("slow", ["sleep", "30"], timeout=0.5),
            hyp("missing", ["definitely-not-a-command-xyz"]),
            hyp("segv", py("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")),
        ],
        work,
    )
    by = {r.name: r for r in results}
    assert [r.name for r in results] == ["ok", "bad", "slow", "missing", "segv"]  # input order
    assert by["ok"].status is Status.PASSED and by["ok"].exit_code == 0 and "hello" in by["ok"].output_tail
    assert by["bad"].status is Status.FAILED and by["bad"].exit_code == 3 and "nope" in by["bad"].output_tail
    assert by["bad"].error == "exit code 3"
    assert by["slow"].status is Status.TIMEOUT and by["slow"].exit_code is None
    assert 0.4 < by["slow"].duration_s < 5
    assert by["missing"].status is Status.ERROR and "command not found" in (by["missing"].error or "")
    assert by["segv"].status is Status.FAILED and by["segv"].error == "killed by SIGSEGV"
    for r in results:
        assert r.ref == "HEAD"
        if r.status is not Status.ERROR:
            assert r.log_path and Path(r.log_path).is_file()


def test_setup_runs_first_and_its_failure_is_an_error(work: Path) -> None:
    results = run(
        {"setup": py("open('marker', 'w').write('set up')")},
        [
            hyp("uses-setup", py("import sys; sys.exit(0 if open('marker').read() == 'set up' else 1)")),
            hyp("setup-fails", "true", setup=py("import sys; sys.exit(4)")),
        ],
        work,
    )
    assert results[0].status is Status.PASSED
    assert results[1].status is Status.ERROR and results[1].error == "setup failed with exit code 4"


def test_env_is_layered_and_identifies_the_hypothesis(work: Path) -> None:
    code = (
        "import os, sys; env = os.environ; "
        "sys.exit(0 if (env['A'], env['B'], env['WORKTREE_RUNNER_HYPOTHESIS']) == ('top', 'mine', 'e') "
        "else 1)"
    )
    results = run({"env": {"A": "top", "B": "top"}}, [hyp("e", py(code), env={"B": "mine"})], work)
    assert results[0].status is Status.PASSED, results[0].output_tail


def test_timeout_kills_a_tree_that_ignores_sigterm(work: Path, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # The child ignores SIGTERM, starts a grandchild that ignores it too, and one that escapes
    # into its own session (so killpg cannot reach it; the environment token still does).
    code = f"""
        import os, signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        ignore = 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'
        g = subprocess.Popen([sys.executable, '-c', ignore])
        e = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True)
        open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{g.pid}} {{e.pid}}')
        time.sleep(60)
    """
    started = time.monotonic()
    results = run({"kill-grace": 0.5}, [hyp("stubborn", py(code), timeout=1.5)], work)
    elapsed = time.monotonic() - started
    assert results[0].status is Status.TIMEOUT
    assert elapsed < 10  # wait() never hangs
    recorded = [int(p) for p in pids.read_text().split()]
    assert len(recorded) == 3
    deadline = time.monotonic() + 3
    while any(pid_alive(p) for p in recorded) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in recorded if pid_alive(p)], "a descendant survived the timeout"


def test_daemon_left_behind_by_a_passing_command_is_reaped(work: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon.pid"
    code = f"""
        import subprocess, sys
        p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True)
        open({str(pidfile)!r}, 'w').write(str(p.pid))
    """
    results = run({}, [hyp("leaves-daemon", py(code))], work)
    assert results[0].status is Status.PASSED
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)


def test_fail_fast_cancels_running_and_queued(work: Path) -> None:
    results = run(
        {"fail-fast": True, "max-parallel": 2},
        [
            hyp("fails-fast", py("import sys; sys.exit(1)")),
            hyp("long", ["sleep", "30"]),
            hyp("queued-1", ["sleep", "30"]),
            hyp("queued-2", ["sleep", "30"]),
        ],
        work,
    )
    by = {r.name: r for r in results}
    assert by["fails-fast"].status is Status.FAILED
    assert by["long"].status is Status.CANCELLED and by["long"].duration_s < 10
    assert by["queued-1"].status is Status.CANCELLED and by["queued-2"].status is Status.CANCELLED
    assert "fail-fast" in (by["queued-1"].error or "")


def test_results_are_reported_as_they_complete(work: Path) -> None:
    seen: list[tuple[str, int, int]] = []
    run(
        {"max-parallel": 3},
        [hyp("slowest", ["sleep", "0.6"]), hyp("middle", ["sleep", "0.3"]), hyp("fastest", ["true"])],
        work,
        progress=lambda r, done, total: seen.append((r.name, done, total)),
    )
    assert seen == [("fastest", 1, 3), ("middle", 2, 3), ("slowest", 3, 3)]


def test_longest_expected_first_with_durations(work: Path, tmp_path: Path) -> None:
    order = tmp_path / "order"
    cmd = py(f"import os; open({str(order)!r}, 'a').write(os.environ['WORKTREE_RUNNER_HYPOTHESIS'] + ' ')")
    hyps = [hyp(n, cmd) for n in ("a", "b", "c", "new")]
    run({"max-parallel": 1}, hyps, work, durations={"a": 1.0, "b": 9.0, "c": 3.0})
    # b (9) > c (3) > new (unknown: average 4.33 -> before c) ... LPT on expected durations.
    assert order.read_text().split() == ["b", "new", "c", "a"]
    order.unlink()
    run({"max-parallel": 1}, hyps, work)
    assert order.read_text().split() == ["a", "b", "c", "new"]  # no durations: config order


def test_huge_and_non_utf8_output_is_bounded(work: Path) -> None:
    big = py(
        "import sys; out = sys.stdout.buffer; "
        "out.write(b'x' * (20 * 1024 * 1024)); out.write(b'\\nEND \\xff\\xfe bytes\\n')"
    )
    results = run({}, [hyp("big", big)], work)
    r = results[0]
    assert r.status is Status.PASSED
    assert Path(r.log_path or "").stat().st_size > 20 * 1024 * 1024  # the log has everything
    assert len(r.output_tail.encode()) <= TAIL_BYTES + 16
    assert r.output_tail.endswith("END \ufffd\ufffd bytes\n")


def test_compatible_api_accepts_dicts_and_mappings(work: Path) -> None:
    executor = TestExecutor({"command": ["true"], "max_parallel": 2})
    hyps = [{"name": "one", "ref": "HEAD"}, {"name": "two", "ref": "HEAD"}]
    assert executor.should_parallelize(hyps)
    assert not TestExecutor({"command": "true", "max_parallel": 1}).should_parallelize(hyps)
    assert not executor.should_parallelize(hyps[:1])
    results = executor.execute_parallel(hyps, {"one": work, "two": str(work)})
    assert [r.status for r in results] == [Status.PASSED, Status.PASSED]
    single = executor.execute_single({"name": "solo", "ref": "HEAD"}, work)
    assert isinstance(single, TestExecutionResult) and single.passed and single.success
    with pytest.raises(ValueError, match="2 hypotheses but 1 worktrees"):
        executor.execute_parallel(hyps, [work])
    missing = executor.execute_single({"name": "gone", "ref": "HEAD"}, work / "nope")
    assert missing.status is Status.ERROR and "does not exist" in (missing.error or "")


def test_classes_are_not_collected_by_pytest() -> None:
    assert TestExecutor.__test__ is False  # type: ignore[attr-defined]
    assert TestExecutionResult.__test__ is False  # type: ignore[attr-defined]


def test_async_api_and_sync_wrapper_inside_a_running_loop(work: Path) -> None:
    executor = AsyncTestExecutor(ExecutionSettings(command="true", max_parallel=2))

    async def main() -> tuple[list[TestExecutionResult], TestExecutionResult]:
        many = await executor.execute_parallel_async([hyp("a", "true"), hyp("b", "false")], [work, work])
        # The sync wrapper must work even when called from inside a running loop.
        one = executor.execute_single(hyp("c", "true"), work)
        return many, one

    many, one = asyncio.run(main())
    assert [r.status for r in many] == [Status.PASSED, Status.FAILED]
    assert one.status is Status.PASSED


def test_external_cancellation_stops_children(work: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    executor = AsyncTestExecutor(ExecutionSettings(command="true", kill_grace=0.2))
    code = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"

    async def main() -> None:
        task = asyncio.create_task(executor.execute_single_async(hyp("x", py(code)), work))
        while not pidfile.exists():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    pid = int(pidfile.read_text())
    assert not pid_alive(pid)


def test_stop_marks_everything_cancelled(work: Path) -> None:
    executor = AsyncTestExecutor(ExecutionSettings(command="true", max_parallel=1, kill_grace=0.2))

    async def main() -> list[TestExecutionResult]:
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, executor.stop, "cancelled by test")
        return await executor.execute_parallel_async(
            [hyp("a", ["sleep", "20"]), hyp("b", ["sleep", "20"])], [work] * 2
        )

    started = time.monotonic()
    results = asyncio.run(main())
    assert time.monotonic() - started < 5
    assert [r.status for r in results] == [Status.CANCELLED, Status.CANCELLED]
    assert all(r.error == "cancelled by test" for r in results)
    # A stopped executor can be used again.
    again = executor.execute_single(hyp("c", "true"), work)
    assert again.status is Status.PASSED


def test_no_thread_per_child_on_311(work: Path) -> None:
    import threading

    counts: list[int] = []
    cmd = py("import time; time.sleep(0.3)")
    run({"max-parallel": 8}, [hyp(f"h{i}", cmd) for i in range(8)], work,
        progress=lambda r, d, t: counts.append(threading.active_count()))  # fmt: skip
    # With the pidfd watcher (3.11: installed by us; 3.12+: default) no waitpid thread per child.
    assert max(counts) <= 2, counts


def test_log_files_do_not_collide_for_similar_names(work: Path) -> None:
    results = run(
        {},
        [
            hyp("a/b", py("print('first')")),
            hyp("a_b", py("print('second')")),
            hyp("a b", py("print('third')")),
        ],
        work,
    )
    paths = {r.log_path for r in results}
    assert len(paths) == 3
    assert [Path(p or "").read_text().splitlines()[-1] for p in (r.log_path for r in results)] == [
        "first",
        "second",
        "third",
    ]
    assert os.path.dirname(results[0].log_path or "") == str(work.parent / "logs")
