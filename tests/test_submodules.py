"""Submodules in hypothesis worktrees: each worktree sees the submodule commits its hypothesis pins.

The checkout is made like actions/checkout with ``submodules: recursive`` makes it: a depth-1 clone of
the superproject, then ``git submodule update --init --recursive --depth=1``, so the module
repositories hold only the commits the checkout's own HEAD pins.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from runner import RunnerConfig, RunOptions, Status, run_config

from .conftest import PY, git

FILE_ALLOWED = ("-c", "protocol.file.allow=always")
PROBE = [
    PY,
    "-c",
    "import os, subprocess; read = lambda p: open(p).read().strip() if os.path.exists(p) else '-';"
    " head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd='vendor/lib', capture_output=True, text=True);"
    " print('SEES', read('vendor/lib/l.txt'), read('vendor/lib/deep/n.txt'), head.stdout.strip(), sep='|')",
]


def commit_file(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text + "\n")
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", text)
    return git(repo, "rev-parse", "HEAD")


def bare_from(seed: Path, bare: Path, *refs: str) -> str:
    git(seed.parent, "init", "-q", "--bare", "-b", "main", str(bare))
    git(seed, "push", "-q", str(bare), *refs)
    return f"file://{bare}"


def set_gitlink(repo: Path, path: str, sha: str) -> None:
    git(repo, "update-index", "--cacheinfo", f"160000,{sha},{path}")


@pytest.fixture
def superproject(tmp_path: Path) -> dict[str, str]:
    """nested.git (n1, n2) <- lib.git (l1, l2 pins deep@n1, l3 pins deep@n2) <- super.git.

    super.git: ``main`` pins vendor/lib@l2 (deep@n1); ``pin-l3`` pins vendor/lib@l3 (deep@n2).
    """
    shas: dict[str, str] = {}
    nested = tmp_path / "nested-seed"
    nested.mkdir()
    git(nested, "init", "-q", "-b", "main")
    shas["n1"] = commit_file(nested, "n.txt", "nested 1")
    shas["n2"] = commit_file(nested, "n.txt", "nested 2")
    shas["nested_url"] = bare_from(nested, tmp_path / "nested.git", "main")

    lib = tmp_path / "lib-seed"
    lib.mkdir()
    git(lib, "init", "-q", "-b", "main")
    shas["l1"] = commit_file(lib, "l.txt", "lib 1")
    git(lib, *FILE_ALLOWED, "submodule", "add", "-q", shas["nested_url"], "deep")
    git(lib, "-C", "deep", "checkout", "-q", shas["n1"])
    git(lib, "add", "deep")
    shas["l2"] = commit_file(lib, "l.txt", "lib 2")
    set_gitlink(lib, "deep", shas["n2"])
    shas["l3"] = commit_file(lib, "l.txt", "lib 3")
    shas["lib_url"] = bare_from(lib, tmp_path / "lib.git", "main")

    sup = tmp_path / "super-seed"
    sup.mkdir()
    git(sup, "init", "-q", "-b", "main")
    commit_file(sup, "check.txt", "super")
    git(sup, *FILE_ALLOWED, "submodule", "add", "-q", shas["lib_url"], "vendor/lib")
    git(sup, "-C", "vendor/lib", "checkout", "-q", shas["l2"])
    git(sup, "add", "vendor/lib")
    git(sup, "commit", "-q", "-m", "pin lib 2")
    git(sup, "checkout", "-q", "-b", "pin-l3")
    set_gitlink(sup, "vendor/lib", shas["l3"])
    git(sup, "commit", "-q", "-m", "pin lib 3")
    git(sup, "checkout", "-q", "main")
    shas["url"] = bare_from(sup, tmp_path / "super.git", "main", "pin-l3")
    return shas


def checkout(url: str, dest: Path) -> Path:
    """What actions/checkout does with `submodules: recursive` (default fetch-depth 1)."""
    git(dest.parent, "clone", "-q", "--depth", "1", "--single-branch", "--no-tags", url, str(dest))
    git(dest, *FILE_ALLOWED, "submodule", "update", "-q", "--init", "--recursive", "--depth=1")
    return dest


def module_state(clone: Path) -> list[str]:
    out = []
    for gitdir in (
        clone / ".git" / "modules" / "vendor" / "lib",
        clone / ".git" / "modules" / "vendor" / "lib" / "modules" / "deep",
    ):
        out.append(git(gitdir, "for-each-ref", "--format=%(refname) %(objectname)"))
        out.append(git(gitdir, "worktree", "list", "--porcelain"))
        out.append((gitdir / "config").read_text())
    return out


def sees(output: str) -> tuple[str, ...]:
    line = next(line for line in output.splitlines() if line.startswith("SEES|"))
    return tuple(line.split("|")[1:])


def test_each_worktree_gets_its_own_submodule_commits(
    superproject: dict[str, str], tmp_path: Path, runner_temp: Path
) -> None:
    clone = checkout(superproject["url"], tmp_path / "clone")
    # Pushed after the checkout: lib 4 and a superproject branch pinning it; neither is in the checkout.
    lib, sup = tmp_path / "lib-seed", tmp_path / "super-seed"
    l4 = commit_file(lib, "l.txt", "lib 4")
    git(lib, "push", "-q", superproject["lib_url"], "main")
    git(sup, "checkout", "-q", "-b", "pin-l4", "main")
    set_gitlink(sup, "vendor/lib", l4)
    git(sup, "commit", "-q", "-m", "pin lib 4")
    git(sup, "push", "-q", superproject["url"], "pin-l4")
    before = module_state(clone)
    lib_module = clone / ".git" / "modules" / "vendor" / "lib"
    assert git(lib_module, "cat-file", "-t", superproject["l3"]) == "commit"  # the module's tip came along
    assert subprocess.run(["git", "cat-file", "-e", l4], cwd=lib_module).returncode != 0
    cfg = RunnerConfig.model_validate({
        "command": PROBE,
        "submodules": "recursive",
        "hypotheses": [
            {"name": "main", "ref": "HEAD"},
            {"name": "l3", "ref": "pin-l3"},
            {"name": "l4", "ref": "pin-l4"},
        ],
    })  # fmt: skip
    report = run_config(cfg, RunOptions(repo=clone, logs_dir=tmp_path / "logs"))
    by = {r.name: r for r in report.results}
    assert [r.status for r in report.results] == [Status.PASSED] * 3, [r.error for r in report.results]
    assert sees(by["main"].output_tail) == ("lib 2", "nested 1", superproject["l2"])
    # pin-l3 is not in the checkout (fetched); lib 3 and nested 2 are, as the module repositories' tips.
    assert sees(by["l3"].output_tail) == ("lib 3", "nested 2", superproject["l3"])
    assert sees(by["l4"].output_tail) == ("lib 4", "nested 2", l4)  # fetched into the module repository
    assert module_state(clone) == before  # module refs, worktrees and config as they were
    assert [p.name for p in runner_temp.iterdir()] == []


def test_submodules_from_the_checkout_need_no_network(
    superproject: dict[str, str], tmp_path: Path, runner_temp: Path
) -> None:
    clone = checkout(superproject["url"], tmp_path / "clone")
    for name in ("lib.git", "nested.git", "super.git"):  # every origin gone: offline
        shutil.move(tmp_path / name, tmp_path / f"{name}.away")
    base = {"command": PROBE, "hypotheses": [{"name": "main", "ref": "HEAD"}]}
    report = run_config(RunnerConfig.model_validate({**base, "submodules": True}), RunOptions(repo=clone))
    assert report.results[0].status is Status.PASSED, report.results[0].error
    # `true` is one level: lib's own submodule stays empty, as with actions/checkout.
    assert sees(report.results[0].output_tail) == ("lib 2", "-", superproject["l2"])
    report = run_config(RunnerConfig.model_validate(base), RunOptions(repo=clone))
    # Default false, as before: an empty directory (git there finds the superproject).
    assert sees(report.results[0].output_tail) == ("-", "-", git(clone, "rev-parse", "HEAD"))


def test_a_submodule_commit_nowhere_is_an_error_for_that_hypothesis(
    superproject: dict[str, str], tmp_path: Path, runner_temp: Path
) -> None:
    clone = checkout(superproject["url"], tmp_path / "clone")
    gone = "0123456789abcdef0123456789abcdef01234567"
    git(clone, "checkout", "-q", "-b", "dangling")
    set_gitlink(clone, "vendor/lib", gone)
    git(clone, "commit", "-q", "-m", "pin nothing")
    git(clone, "checkout", "-q", "main")
    cfg = RunnerConfig.model_validate({
        "command": PROBE, "submodules": True,
        "hypotheses": [{"name": "bad", "ref": "dangling"}, {"name": "good", "ref": "main"}],
    })  # fmt: skip
    report = run_config(cfg, RunOptions(repo=clone, logs_dir=tmp_path / "logs"))
    by = {r.name: r for r in report.results}
    assert by["good"].status is Status.PASSED
    assert by["bad"].status is Status.ERROR
    assert f"submodule 'vendor/lib': commit {gone} is not in the checkout" in (by["bad"].error or "")
    assert [p.name for p in runner_temp.iterdir()] == []
