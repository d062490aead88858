"""Children started without asyncio's transport, awaited with pidfds (runner/engine/spawn.py), for real."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from pathlib import Path

import pytest

from runner.engine import spawn
from runner.engine.aio import run_sync
from runner.engine.process import TASK_ENV, marked_pids, run_in_group

pytestmark = pytest.mark.skipif(not spawn.available(), reason="needs Linux pidfd_open")


def _env(token: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], TASK_ENV: token}


def test_exit_codes_signals_and_output_to_the_log(tmp_path: Path) -> None:
    async def main() -> list[int | None]:
        codes = []
        fd = spawn.open_log(tmp_path / "out.log")
        try:
            for argv in (["sh", "-c", "echo hello; exit 3"], ["sh", "-c", "kill -TERM $$"], ["true"]):
                proc = spawn.start(argv, cwd=tmp_path, env=_env("x"), log_fd=fd)
                codes.append(await proc.wait_until(asyncio.get_running_loop().time() + 10))
        finally:
            os.close(fd)
        return codes

    assert run_sync(main()) == [3, -15, 0]
    assert (tmp_path / "out.log").read_text() == "hello\n"


def test_a_deadline_returns_none_and_the_child_is_still_waitable(tmp_path: Path) -> None:
    async def main() -> tuple[int | None, int]:
        proc = spawn.start(["sleep", "30"], cwd=tmp_path, env=_env("x"), log_fd=1)
        early = await proc.wait_until(asyncio.get_running_loop().time() + 0.2)
        os.killpg(proc.pid, 9)
        return early, await proc.wait()

    assert run_sync(main()) == (None, -9)


def test_run_in_group_cancelled_kills_the_tree(tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    pids = tmp_path / "pids"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        argv = ["sh", "-c", f"sleep 30 & echo $! > {pids}; wait"]
        task = asyncio.ensure_future(run_in_group(
            argv, cwd=tmp_path, env=_env(token), log_fd=1, deadline=loop.time() + 30, grace=0.5, token=token,
        ))  # fmt: skip
        while not pids.exists() or not pids.read_text().strip():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_sync(main())
    assert marked_pids(token) == []


def test_no_thread_whatever_the_number_of_children(tmp_path: Path) -> None:
    before = {t.ident for t in threading.enumerate()}

    async def main() -> int:
        loop = asyncio.get_running_loop()
        procs = [spawn.start(["sleep", "0.3"], cwd=tmp_path, env=_env("x"), log_fd=1) for _ in range(8)]
        threads = len({t.ident for t in threading.enumerate()} - before)
        await asyncio.gather(*(p.wait_until(loop.time() + 10) for p in procs))
        return threads

    assert run_sync(main()) == 0


def test_without_pidfds_asyncio_starts_and_times_out_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where pidfd_open is missing (not Linux, old kernels) asyncio's own subprocess path runs."""
    monkeypatch.setattr(spawn, "_available", False)
    token = uuid.uuid4().hex

    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        out = []
        for argv, seconds in ((["sh", "-c", "exit 4"], 10.0), (["sh", "-c", "sleep 30 & wait"], 0.3)):
            outcome = await run_in_group(argv, cwd=tmp_path, env=_env(token), log_fd=1,
                                         deadline=loop.time() + seconds, grace=0.2, token=token)  # fmt: skip
            out.append((outcome.kind, outcome.exit_code))
        return out

    assert run_sync(main()) == [("exited", 4), ("timeout", None)]
    assert marked_pids(token) == []
