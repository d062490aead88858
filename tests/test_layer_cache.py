"""The template layer kept between runs (runner/engine/layer_cache.py), on real virtualenvs.

The base is a real virtualenv (made here, first on PATH); each test changes one thing the cached
template was made from and checks that the next run makes a new one instead of trusting the old.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.engine.aio import run_sync
from runner.engine.environments import EnvironmentPool

SCRIPT = "#!{python}\nimport sys\nprint('tool', sys.prefix)\n"


@pytest.fixture
def base(tmp_path: Path) -> Path:
    venv = tmp_path / "base"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / "bin" / "tool").write_text(SCRIPT.format(python=venv / "bin" / "python"))
    (venv / "bin" / "tool").chmod(0o755)
    return venv


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "cache"
    monkeypatch.setenv("WORKTREE_RUNNER_LAYER_CACHE", str(root))
    yield root


def template_of(base: Path, tmp_path: Path) -> tuple[Path, str]:
    """(the template layer a run used, what the base's console script says run from a layer)."""
    env = {**os.environ, "PATH": f"{base / 'bin'}{os.pathsep}{os.environ['PATH']}"}

    async def main() -> tuple[Path, str]:
        pool = EnvironmentPool("venv", base_dir=tmp_path)
        try:
            template = await pool._template(env)
            async with pool.environment(0, env) as environment:
                out = subprocess.run(["tool"], env=environment.apply(env), capture_output=True, text=True)
                return template.path, out.stdout.strip()
        finally:
            await pool.close()

    return run_sync(main())


def test_a_second_run_uses_the_kept_template_and_isolates_the_same(
    base: Path, cache: Path, tmp_path: Path
) -> None:
    first, said_first = template_of(base, tmp_path)
    second, said_second = template_of(base, tmp_path)
    assert not first.is_relative_to(cache) and second.is_relative_to(cache)
    # The base's script, run from a layer, runs in that layer (not in the base), made new or kept.
    for said in (said_first, said_second):
        assert said.startswith("tool ") and "/venv" in said and str(base) not in said, said
    assert template_of(base, tmp_path)[0] == second  # and again


@pytest.mark.parametrize("change", ["install into the base", "rewrite a script", "tamper with the entry"])
def test_any_change_to_what_it_was_made_from_means_a_new_template(
    change: str, base: Path, cache: Path, tmp_path: Path
) -> None:
    template_of(base, tmp_path)
    kept, _ = template_of(base, tmp_path)
    assert kept.is_relative_to(cache)
    if change == "install into the base":
        site = next((base / "lib").glob("python*/site-packages"))
        (site / "newpkg.pth").write_text("")
    elif change == "rewrite a script":  # same size, in place: only its stamp tells
        script = base / "bin" / "tool"
        script.write_text(script.read_text().replace("tool", "TOOL"))
    else:
        (kept.parent / "scripts" / "tool").write_text("#!/bin/sh\necho planted\n")
    again, said = template_of(base, tmp_path)
    assert again != kept, change
    if change == "rewrite a script":
        assert said.startswith("TOOL ")
    if change == "tamper with the entry":
        assert said.startswith("tool ")  # the planted script is not what runs


def test_a_base_that_is_a_script_is_never_cached(base: Path, cache: Path, tmp_path: Path) -> None:
    wrapper = tmp_path / "wrapper-bin"
    wrapper.mkdir()
    (wrapper / "python3").write_text(f'#!/bin/sh\nexec {base / "bin" / "python"} "$@"\n')
    (wrapper / "python3").chmod(0o755)
    env = {**os.environ, "PATH": f"{wrapper}{os.pathsep}{base / 'bin'}{os.pathsep}{os.environ['PATH']}"}

    async def main() -> Path:
        pool = EnvironmentPool("venv", base_dir=tmp_path)
        try:
            return (await pool._template(env)).path
        finally:
            await pool.close()

    for _ in range(2):
        assert not run_sync(main()).is_relative_to(cache)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_the_cache_can_be_turned_off(base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKTREE_RUNNER_LAYER_CACHE", "0")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    for _ in range(2):
        template_of(base, tmp_path)
    assert not (tmp_path / "xdg").exists()
