"""Every hypothesis in an environment of its own (runner/engine/environments.py), for real.

Real repositories with real Python packages, real ``pip install -e .`` (setuptools, PEP 660) into
real layered virtualenvs, run concurrently; what each hypothesis imported is read back from its log.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from runner import RunnerConfig, RunOptions, TestExecutionResult, TestExecutor, run_config
from runner.config import Status
from runner.engine.environments import EDITABLES_FIRST_PTH, PARENT_PTH
from runner.engine.naming import safe_name

from .conftest import REPO_ROOT, git, worktree_list
from .wheels import make_wheel

PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "mypkg"
version = "0.1"
"""

# Prints what it imported (run with -s) and checks it is this worktree's code, run in this layer.
TEST_FILE = """\
import os, sys
import mypkg


def test_imports_its_own_worktree_in_its_own_layer():
    here = os.path.realpath(mypkg.__file__)
    print("IMPORTED", here)
    assert sys.prefix == os.environ["VIRTUAL_ENV"], sys.prefix
    assert here.startswith(os.path.realpath(os.environ["WORKTREE_RUNNER_WORKTREE"]) + os.sep), here


def test_answer():
    assert mypkg.answer() == 42
"""


def shared_pip_trap(root: Path) -> Path:
    """A directory of ``pip`` programs that stand for the shared environment's pip: put on PATH, it is
    what an install that escaped the layer would run, and it refuses (nothing on this machine changes)."""
    trap = root / "shared-pip"
    trap.mkdir()
    for name in ("pip", "pip3", "pip{}.{}".format(*sys.version_info[:2])):
        (trap / name).write_text("#!/bin/sh\necho 'the shared pip was run' >&2\nexit 97\n")
        (trap / name).chmod(0o755)
    return trap


def module(value: int) -> str:
    return f"def answer():\n    return {value}\n"


def make_package_repo(root: Path, layout: str) -> Path:
    """``mypkg`` in src or flat layout; ``fix-good`` and ``fix-bad`` change ``answer()`` only."""
    repo = root / f"repo-{layout}"
    package = repo / ("src/mypkg" if layout == "src" else "mypkg")
    package.mkdir(parents=True)
    (repo / "tests").mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "pyproject.toml").write_text(PYPROJECT)
    (repo / "tests" / "test_answer.py").write_text(TEST_FILE)
    (package / "__init__.py").write_text(module(0))
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    for branch, value in (("fix-good", 42), ("fix-bad", 41)):
        git(repo, "checkout", "-q", "-b", branch, "main")
        (package / "__init__.py").write_text(module(value))
        git(repo, "commit", "-q", "-am", branch)
    git(repo, "checkout", "-q", "main")
    return repo


SCENARIO = [("base", "main"), ("good", "fix-good"), ("bad", "fix-bad"),
            ("good2", "fix-good"), ("bad2", "fix-bad"), ("good3", "fix-good")]  # fmt: skip


README_CONFIG = RunnerConfig.model_validate({
    "setup": "pip install -e .",
    "command": "pytest -q -s -p no:cacheprovider",
    "max-parallel": 6,
    "timeout": 600,
    "hypotheses": [{"name": name, "ref": ref} for name, ref in SCENARIO],
})  # fmt: skip


def assert_each_ran_its_own_code(results: list[TestExecutionResult]) -> None:
    """Right verdicts for SCENARIO, and each hypothesis imported the code of its own worktree."""
    statuses = {r.name: r.status for r in results}
    assert statuses == {
        name: Status.PASSED if ref == "fix-good" else Status.FAILED for name, ref in SCENARIO
    }, [(r.name, r.status, r.error, r.output_tail[-1500:]) for r in results]
    for index, (result, (name, ref)) in enumerate(zip(results, SCENARIO, strict=True)):
        log = Path(result.log_path or "").read_text()
        imported = re.findall(r"^IMPORTED (\S+)$", log, flags=re.MULTILINE)
        assert len(imported) == 1, log[-2000:]
        assert f"/{safe_name(index, name)}/" in imported[0], (name, imported)
        # Only test_answer decides: the import check passed in every hypothesis.
        expected = "2 passed" if ref == "fix-good" else "1 failed, 1 passed"
        assert expected in log, log[-2000:]


@pytest.mark.parametrize("layout", ["src", "flat"])
def test_each_hypothesis_installs_and_imports_its_own_code(
    layout: str, tmp_path: Path, runner_temp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's configuration, 6 hypotheses at 6-way, twice: right verdicts, own code, every run."""
    monkeypatch.setenv("PATH", f"{shared_pip_trap(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    repo = make_package_repo(tmp_path, layout)
    before = worktree_list(repo)
    for run in range(2):
        report = run_config(README_CONFIG, RunOptions(repo=repo, logs_dir=tmp_path / f"logs-{run}"))
        assert_each_ran_its_own_code(report.results)
        assert list(runner_temp.iterdir()) == []  # worktrees and layers are gone
        assert worktree_list(repo) == before


def wheel_and_repo(tmp_path: Path, name: str, version: str, files: dict[str, str]) -> tuple[Path, Path]:
    """A wheel built on the spot (no index needed) and a one-commit repository to run hypotheses in."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = make_wheel(wheels, name, version, files)
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README").write_text("x\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    return wheel, repo


def _tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (bytecode caches aside)."""
    digest: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if "__pycache__" in path.parts or path.is_dir():
            continue
        data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
        digest[str(path.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return digest


def test_installs_never_reach_the_runners_environment(tmp_path: Path, runner_temp: Path) -> None:
    """The CLI installed in the user's virtualenv (the ``python3`` on PATH, so the hypotheses' base too):
    setups that install another ``pydantic`` (the runner's own dependency) change nothing there."""
    runner_env = tmp_path / "runner-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(runner_env)],
                   check=True)  # fmt: skip
    site = next(runner_env.glob("lib/python*/site-packages"))
    (site / "worktree_runner_checkout.pth").write_text(str(REPO_ROOT) + "\n")  # like `pip install -e`
    import pydantic

    real_pydantic = Path(pydantic.__file__).parent
    fake = {"pydantic/__init__.py": "VERSION = '1.0.0-fake'\n"}
    wheel, repo = wheel_and_repo(tmp_path, "pydantic", "1.0.0", fake)
    in_layer = (
        "import os, pydantic; assert pydantic.VERSION == '1.0.0-fake', pydantic.VERSION; "
        "assert pydantic.__file__.startswith(os.environ['VIRTUAL_ENV'] + os.sep), pydantic.__file__"
    )
    sees_base = (
        "import os, pydantic; assert pydantic.VERSION.startswith('2.'), pydantic.VERSION; "
        "assert not pydantic.__file__.startswith(os.environ['VIRTUAL_ENV'])"
    )
    cfg = {
        "max-parallel": 3,
        "hypotheses": [
            {"name": "pip", "ref": "main", "setup": f"pip install --no-index {wheel}",
             "command": ["python", "-c", in_layer]},
            {"name": "python -m pip", "ref": "main", "setup": f"python -m pip install --no-index {wheel}",
             "command": ["python", "-c", in_layer]},
            {"name": "base", "ref": "main", "command": ["python", "-c", sees_base]},
        ],
    }  # fmt: skip
    (tmp_path / "wr.yml").write_text(yaml.safe_dump(cfg))
    before = {"runner-env": _tree_digest(runner_env), "pydantic": _tree_digest(real_pydantic)}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(runner_env / "bin"), str(shared_pip_trap(tmp_path)), env["PATH"]])
    env["RUNNER_TEMP"] = str(runner_temp)
    results = tmp_path / "results.json"
    proc = subprocess.run(
        [str(runner_env / "bin" / "python"), "-m", "runner", "test", "--config", str(tmp_path / "wr.yml"),
         "--repo", str(repo), "--results-json", str(results), "--logs-dir", str(tmp_path / "logs")],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr + json.dumps(json.loads(results.read_text()), indent=1)[-4000:]
    assert {"runner-env": _tree_digest(runner_env), "pydantic": _tree_digest(real_pydantic)} == before
    assert list(runner_temp.iterdir()) == []
    still = subprocess.run(
        [str(runner_env / "bin" / "python"), "-c", "import pydantic; print(pydantic.VERSION)"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert still.stdout.startswith("2.")


def _probe_config(command: str, **settings: object) -> RunnerConfig:
    return RunnerConfig.model_validate({
        "command": ["python", "-c", command], "max-parallel": 3,
        "hypotheses": [{"name": f"h{i}", "ref": "main"} for i in range(3)], **settings,
    })  # fmt: skip


TMP_PROBE = (
    "import json, os, sys, tempfile; t = tempfile.gettempdir(); "
    "assert t == os.environ['TMPDIR'] == os.environ['TMP'] == os.environ['TEMP'], t; "
    "open(os.path.join(t, 'mine'), 'w').write(os.environ['WORKTREE_RUNNER_HYPOTHESIS']); "
    "print('SEEN', json.dumps({'tmp': t, 'prefix': sys.prefix, 'venv': os.environ.get('VIRTUAL_ENV'), "
    "'base': getattr(sys, 'base_prefix', sys.prefix)}))"
)


def _seen(report_results: list[object]) -> list[dict[str, str]]:
    seen = []
    for result in report_results:
        log = Path(result.log_path).read_text()  # type: ignore[attr-defined]
        seen.append(json.loads(log.split("SEEN ", 1)[1].splitlines()[0]))
    return seen


def test_private_tmpdir_and_layer_removed_with_the_hypothesis(
    repo: Path, tmp_path: Path, runner_temp: Path
) -> None:
    report = run_config(_probe_config(TMP_PROBE), RunOptions(repo=repo, logs_dir=tmp_path / "logs"))
    assert [r.status for r in report.results] == [Status.PASSED] * 3, [r.output_tail for r in report.results]
    seen = _seen(report.results)
    tmps = {s["tmp"] for s in seen}
    assert len(tmps) == 3  # one each
    for s in seen:
        assert s["prefix"] == s["venv"] and s["venv"] != s["base"]
        assert Path(s["tmp"]).is_relative_to(runner_temp) and Path(s["venv"]).is_relative_to(runner_temp)
        assert not Path(s["tmp"]).exists() and not Path(s["venv"]).exists()
    assert list(runner_temp.iterdir()) == []


def test_isolation_none_runs_in_the_shared_environment(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    probe = (
        "import json, os, sys, tempfile; print('SEEN', json.dumps({'tmp': tempfile.gettempdir(), "
        "'prefix': sys.prefix, 'venv': os.environ.get('VIRTUAL_ENV'), 'base': sys.base_prefix}))"
    )
    report = run_config(
        _probe_config(probe, isolation="none"), RunOptions(repo=repo, logs_dir=tmp_path / "l")
    )
    assert [r.status for r in report.results] == [Status.PASSED] * 3
    python3 = subprocess.run(["python3", "-c", "import sys; print(sys.prefix)"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    for s in _seen(report.results):
        assert s["venv"] == os.environ.get("VIRTUAL_ENV")
        assert s["prefix"] == python3
        assert s["tmp"] == os.path.realpath(os.environ.get("TMPDIR", "/tmp")) or s["tmp"] == "/tmp"
    assert list(runner_temp.iterdir()) == []


def test_the_python_api_isolates_too(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    dirs = []
    for i in range(2):
        d = tmp_path / f"d{i}"
        d.mkdir()
        dirs.append(d)
    check = "import os, sys; assert sys.prefix == os.environ['VIRTUAL_ENV'] != sys.base_prefix"
    executor = TestExecutor({"command": ["python", "-c", check], "max-parallel": 2})
    results = executor.execute_parallel([{"name": "a", "ref": "x"}, {"name": "b", "ref": "y"}], dirs)
    assert [r.status for r in results] == [Status.PASSED, Status.PASSED], [r.output_tail for r in results]
    assert list(runner_temp.iterdir()) == []


def test_a_broken_base_interpreter_is_an_error_naming_it(
    repo: Path, tmp_path: Path, runner_temp: Path
) -> None:
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    fake = fake_bin / "python3"
    fake.write_text("#!/bin/sh\necho 'no python here' >&2\nexit 3\n")
    fake.chmod(0o755)
    config = RunnerConfig.model_validate({
        "command": "true", "env": {"PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"},
        "hypotheses": [{"name": "a", "ref": "main"}, {"name": "b", "ref": "main"}],
    })  # fmt: skip
    report = run_config(config, RunOptions(repo=repo, logs_dir=tmp_path / "logs"))
    for result in report.results:
        assert result.status is Status.ERROR
        assert result.error and str(fake) in result.error and "no python here" in result.error
        assert "isolation" in result.error  # says how to run without
    assert list(runner_temp.iterdir()) == []


def test_layer_sees_the_base_but_not_its_pth_hooks(repo: Path, tmp_path: Path, runner_temp: Path) -> None:
    """The base's site-packages are plain path entries: its packages import, its `.pth` hooks do not
    run (an editable install of the main checkout must not stand in for a hypothesis' code)."""
    ours = sorted([PARENT_PTH, EDITABLES_FIRST_PTH])
    check = (
        "import os, sys, pytest, pydantic; "
        "assert not any(p.endswith('/src-of-main') for p in sys.path), sys.path; "
        f"pth = [n for n in os.listdir(os.path.join(sys.prefix, 'lib', 'python%d.%d' % sys.version_info[:2], "
        f"'site-packages')) if n.endswith('.pth')]; assert sorted(pth) == {ours!r}, pth"
    )
    config = RunnerConfig.model_validate({
        "command": ["python", "-c", check], "hypotheses": [{"name": "a", "ref": "main"}],
    })  # fmt: skip
    report = run_config(config, RunOptions(repo=repo, logs_dir=tmp_path / "logs"))
    assert report.results[0].status is Status.PASSED, report.results[0].output_tail


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not installed")
def test_uv_pip_install_goes_into_the_layer(tmp_path: Path, runner_temp: Path) -> None:
    wheel, repo = wheel_and_repo(tmp_path, "uvprobe", "1.0", {"uvprobe.py": "X = 1\n"})
    check = "import os, uvprobe; assert uvprobe.__file__.startswith(os.environ['VIRTUAL_ENV'] + os.sep)"
    config = RunnerConfig.model_validate({
        "setup": f"uv pip install --offline {wheel}", "command": ["python", "-c", check], "max-parallel": 2,
        "hypotheses": [{"name": "a", "ref": "main"}, {"name": "b", "ref": "main"}],
    })  # fmt: skip
    report = run_config(config, RunOptions(repo=repo, logs_dir=tmp_path / "logs"))
    assert [r.status for r in report.results] == [Status.PASSED] * 2, [r.output_tail for r in report.results]
    base = subprocess.run(["python3", "-c", "import importlib.util as u; print(u.find_spec('uvprobe'))"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert base.stdout.strip() == "None"


def test_an_editable_install_wins_over_the_same_package_in_the_base(
    tmp_path: Path, runner_temp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job already has ``mypkg`` installed (not editable). A flat-layout ``pip install -e .`` puts a
    finder at the *end* of ``sys.meta_path`` (setuptools), behind the path that holds the job's copy;
    the layer moves its editable finders first, so each hypothesis still imports its own worktree."""
    job_env = tmp_path / "job-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(job_env)],
                   check=True)  # fmt: skip
    site = next(job_env.glob("lib/python*/site-packages"))
    (site / "mypkg").mkdir()
    (site / "mypkg" / "__init__.py").write_text(module(-1))
    dist_info = site / "mypkg-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: mypkg\nVersion: 0.1\n")
    (dist_info / "RECORD").write_text("")
    path = os.pathsep.join([str(job_env / "bin"), str(shared_pip_trap(tmp_path)), os.environ["PATH"]])
    monkeypatch.setenv("PATH", path)
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    repo = make_package_repo(tmp_path, "flat")
    config = RunnerConfig.model_validate({
        "setup": "pip install -e .", "command": "pytest -q -s -p no:cacheprovider", "max-parallel": 2,
        "hypotheses": [{"name": "good", "ref": "fix-good"}, {"name": "bad", "ref": "fix-bad"}],
    })  # fmt: skip
    report = run_config(config, RunOptions(repo=repo, logs_dir=tmp_path / "logs"))
    assert [r.status for r in report.results] == [Status.PASSED, Status.FAILED], [
        (r.error, r.output_tail[-1500:]) for r in report.results
    ]
    assert "1 failed, 1 passed" in (report.results[1].output_tail or "")
    assert (site / "mypkg" / "__init__.py").read_text() == module(-1)  # the job's copy is untouched


def test_an_install_that_escapes_the_layer_is_an_error(
    tmp_path: Path, runner_temp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A setup that installs into the shared environment by an absolute path (no layer can stop
    that) turns the hypothesis into an error naming what changed, not into a verdict."""
    job_env = tmp_path / "job-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(job_env)],
                   check=True)  # fmt: skip
    monkeypatch.setenv("PATH", f"{job_env / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    wheel, repo = wheel_and_repo(tmp_path, "escaped", "1.0", {"escaped.py": "X = 1\n"})
    config = RunnerConfig.model_validate({
        "command": "true",
        "hypotheses": [
            {"name": "escapes", "ref": "main",
             "setup": [str(job_env / "bin" / "python"), "-m", "pip", "install", "--no-index", str(wheel)]},
        ],
    })  # fmt: skip
    report = run_config(config, RunOptions(repo=repo, logs_dir=tmp_path / "logs"))
    (result,) = report.results
    assert result.status is Status.ERROR, (result.error, result.output_tail)
    assert result.error and "changed during setup" in result.error and "escaped-1.0.dist-info" in result.error


# Run one after the other in the same run: what each saw of its layer, and what it then did to it.
LAYER_PROBE = """\
import json, os, stat, sys
venv, tmp = os.environ["VIRTUAL_ENV"], os.environ["TMPDIR"]
lib = os.path.join(venv, "lib")
site = os.path.join(lib, os.listdir(lib)[0], "site-packages")
with open(os.path.join(venv, "pyvenv.cfg")) as fh:
    cfg = fh.read()
try:
    import planted
    planted_seen = planted.WHO
except ImportError:
    planted_seen = None
print("SEEN", json.dumps({"venv": venv, "site": sorted(os.listdir(site)), "tmp": os.listdir(tmp),
                          "cfg_ok": "include-system-site-packages = false" in cfg, "planted": planted_seen,
                          "bin_mode": stat.S_IMODE(os.stat(os.path.join(venv, "bin")).st_mode),
                          "inode": os.stat(venv).st_ino}))
action = sys.argv[1]
who = os.environ["WORKTREE_RUNNER_HYPOTHESIS"]
if action == "plant":  # what an install does: a module in its site-packages
    with open(os.path.join(site, "planted.py"), "w") as fh:
        fh.write("WHO = %r\\n" % who)
elif action == "rewrite":  # same size, same second: only the mtime can tell
    with open(os.path.join(venv, "pyvenv.cfg"), "r+") as fh:
        fh.write(cfg.replace("false", "truee", 1)[: len(cfg)])
elif action == "chmod":
    os.chmod(os.path.join(venv, "bin"), 0o700)
elif action == "tmp":
    open(os.path.join(tmp, "left-behind"), "w").close()
elif action == "hold":  # keep the layer busy a while, so hypotheses run side by side
    import time
    time.sleep(1.0)
"""


def test_a_layer_serves_again_only_exactly_as_it_was_made(
    repo: Path, tmp_path: Path, runner_temp: Path
) -> None:
    """Hypotheses one after the other: a layer nobody changed is given to the next (same path, and it
    cannot tell), any change (an install, a rewritten file, a chmod, a temp file) means a new layer."""
    probe = tmp_path / "probe.py"
    probe.write_text(LAYER_PROBE)
    actions = ["none", "plant", "none", "rewrite", "none", "chmod", "none", "tmp", "none", "none"]
    config = RunnerConfig.model_validate({
        "max-parallel": 1,
        "hypotheses": [
            {"name": f"h{i}-{a}", "ref": "main", "command": ["python", str(probe), a]}
            for i, a in enumerate(actions)
        ],
    })  # fmt: skip
    report = run_config(config, RunOptions(repo=repo, logs_dir=tmp_path / "logs"))
    assert [r.status for r in report.results] == [Status.PASSED] * len(actions), [
        r.output_tail for r in report.results
    ]
    seen = _seen(report.results)
    for s in seen:  # every hypothesis got a layer exactly as a new one
        assert s["site"] == sorted([PARENT_PTH, EDITABLES_FIRST_PTH]) and s["tmp"] == []
        assert s["cfg_ok"] and s["planted"] is None and s["bin_mode"] == 0o755
    venvs = [s["venv"] for s in seen]
    for i, action in enumerate(actions[:-1]):
        if action == "none":
            assert venvs[i + 1] == venvs[i], (i, venvs)  # unchanged: served again
        else:
            assert venvs[i + 1] != venvs[i], (i, action, venvs)  # changed: removed, a new one made
            assert not Path(venvs[i]).exists()
    assert list(runner_temp.iterdir()) == []


def _spares(cache: Path) -> list[Path]:
    return sorted(cache.glob("*/spares/*"))


def test_a_later_run_gets_the_layers_left_unchanged_and_none_other(
    repo: Path, tmp_path: Path, runner_temp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unchanged layers wait in the layer cache for the next run (runner/engine/spare_layers.py); one
    changed while it waited (a module planted, a file rewritten) is removed, never given out."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("WORKTREE_RUNNER_LAYER_CACHE", str(cache))
    probe = tmp_path / "probe.py"
    probe.write_text(LAYER_PROBE)

    def run(tag: str) -> list[dict[str, str]]:
        config = RunnerConfig.model_validate({
            "max-parallel": 3,
            "hypotheses": [{"name": f"{tag}{i}", "ref": "main", "command": ["python", str(probe), "hold"]}
                           for i in range(3)],
        })  # fmt: skip
        report = run_config(config, RunOptions(repo=repo, logs_dir=tmp_path / f"logs-{tag}"))
        statuses = [r.status for r in report.results]
        assert statuses == [Status.PASSED] * 3, [r.output_tail for r in report.results]
        assert list(runner_temp.iterdir()) == []  # nothing left in the temp dir: the spares moved out
        seen = _seen(report.results)
        for s in seen:  # every hypothesis got a layer exactly as a new one
            assert s["site"] == sorted([PARENT_PTH, EDITABLES_FIRST_PTH]) and s["tmp"] == []
            assert s["cfg_ok"] and s["planted"] is None and s["bin_mode"] == 0o755
        assert len({s["inode"] for s in seen}) == 3  # side by side: three layers
        return seen

    run("a")
    spares = _spares(cache)
    assert len(spares) == 3
    planted, rewritten, untouched = spares
    site = next(planted.glob("venv/lib/python*/site-packages"))
    (site / "planted.py").write_text("WHO = 'the cache'\n")
    cfg = rewritten / "venv" / "pyvenv.cfg"
    text = cfg.read_text()
    cfg.write_text(text.replace("false", "truee", 1)[: len(text)])  # same size: only the mtime tells
    inodes = {p.name: os.stat(p / "venv").st_ino for p in spares}

    seen = run("b")
    got = {s["inode"] for s in seen}
    assert inodes[untouched.name] in got  # the unchanged spare served
    assert inodes[planted.name] not in got and inodes[rewritten.name] not in got
    assert not planted.exists() and not rewritten.exists() and not untouched.exists()
    assert len(_spares(cache)) == 3, _spares(cache)  # this run's three, unchanged, wait for the next


def test_hypotheses_on_spare_layers_install_and_import_their_own_code(
    tmp_path: Path, runner_temp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three layers left by one run serve the next run's first wave, where each hypothesis installs its
    own worktree: right verdicts, each imports its own code, and every spare is used up."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("WORKTREE_RUNNER_LAYER_CACHE", str(cache))
    monkeypatch.setenv("PATH", f"{shared_pip_trap(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    repo = make_package_repo(tmp_path, "src")
    idle = RunnerConfig.model_validate({
        "command": ["python", "-c", "import time; time.sleep(1)"],
        "max-parallel": 3,
        "hypotheses": [{"name": f"idle{i}", "ref": "main"} for i in range(3)],
    })  # fmt: skip
    report = run_config(idle, RunOptions(repo=repo, logs_dir=tmp_path / "logs-idle"))
    assert [r.status for r in report.results] == [Status.PASSED] * 3
    assert len(_spares(cache)) == 3
    report = run_config(README_CONFIG, RunOptions(repo=repo, logs_dir=tmp_path / "logs"))
    assert_each_ran_its_own_code(report.results)
    assert _spares(cache) == []  # all three served (and, installed into, none came back)
    assert list(runner_temp.iterdir()) == []


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs a second file system (/dev/shm)")
def test_a_cache_on_another_file_system_keeps_no_spares_and_leaves_nothing(
    repo: Path, tmp_path: Path, runner_temp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spares move by rename; with the cache on another file system (a tmpfs /tmp and a disk ~/.cache, or
    the other way round) the move fails, and the layers go with the run as before."""
    if os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("/dev/shm is on the same file system as the test's temp dir")
    cache = Path(tempfile.mkdtemp(prefix="wr-cache-", dir="/dev/shm"))
    try:
        monkeypatch.setenv("WORKTREE_RUNNER_LAYER_CACHE", str(cache))
        probe = tmp_path / "probe.py"
        probe.write_text(LAYER_PROBE)
        config = RunnerConfig.model_validate({
            "max-parallel": 2,
            "hypotheses": [{"name": f"h{i}", "ref": "main", "command": ["python", str(probe), "none"]}
                           for i in range(3)],
        })  # fmt: skip
        for run in range(2):
            report = run_config(config, RunOptions(repo=repo, logs_dir=tmp_path / f"logs-{run}"))
            statuses = [r.status for r in report.results]
            assert statuses == [Status.PASSED] * 3, [r.error for r in report.results]
            assert list(runner_temp.iterdir()) == []
            assert _spares(cache) == []
            assert len(list(cache.iterdir())) == 1  # the template entry is still kept (copied, not moved)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def test_two_runs_never_take_the_same_spare(tmp_path: Path) -> None:
    from runner.engine import layer_signature
    from runner.engine.spare_layers import SpareLayers

    spares = tmp_path / "spares"
    names: tuple[str, ...] = ()
    for i in range(4):
        home = tmp_path / f"made{i}"
        (home / "venv" / "bin").mkdir(parents=True)
        (home / "tmp").mkdir()
        layer_signature.backdate(home)
        made = layer_signature.signature(home)
        assert made is not None
        names = tuple(e[0] for e in made)
        assert SpareLayers(spares).keep(home, made)
    first, second = SpareLayers(spares), SpareLayers(spares)  # each lists all four, then they race
    taken: list[int] = []
    for i in range(8):
        got = (first if i % 2 else second).claim(tmp_path / f"run{i}", names)
        if got is not None:
            taken.append(os.stat(tmp_path / f"run{i}").st_ino)
    assert len(taken) == 4 and len(set(taken)) == 4
    assert list(spares.iterdir()) == []
