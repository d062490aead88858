"""The host variant in a two-leg Python matrix (tests/fixtures/workflows/host-matrix-act.yml), run with act.

Each leg puts one of this machine's pyenv builds first on PATH (bind-mounted into the job container at
the same path, ``--container-options`` through an ``.actrc`` as in tests/test_act_shards.py), runs
``uses: ./host`` twice (test, then merge: the second use reuses the runner's venv), and a later step
asserts that the leg's hypotheses ran the leg's Python. Here the printed lines of every leg are
checked, and the install times the action logged are printed (cold: first use in a job; warm: second).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from . import test_act
from .docker_support import REPO_ROOT
from .test_act import _unavailable, require_act, run_act, snapshot_repository, step_lines

pytestmark = pytest.mark.docker

WORKFLOW = "tests/fixtures/workflows/host-matrix-act.yml"
LEGS = ("3.10.13", "3.12.1")  # as in the workflow's matrix
JOB_IMAGE_PYTHON = "/usr/bin/python3.11"  # Debian's, in the job image

_INSTALL_LINE = re.compile(
    r"worktree-runner host: runner venv (?P<venv>\S+) "
    r"(?P<what>installed|reused \(made earlier in this job\)) in (?P<seconds>[0-9.]+) s "
    r"\(Python (?P<version>\S+) from (?P<python>\S+)\)"
)


def test_host_variant_matrix_with_act(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    act = require_act()
    versions = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    missing = [v for v in LEGS if not (versions / v / "bin" / "python3").is_file()]
    if missing:
        _unavailable(f"the matrix needs the pyenv builds {missing} under {versions}")
    repo = tmp_path / "repo"
    snapshot_repository(REPO_ROOT, repo)
    # PIP_CERT: this sandbox reaches the package index through a TLS proxy whose CA is in the job image's
    # system bundle; Debian's pip uses that bundle, a pyenv build's venv pip only its own certifi. A
    # site setting like a company proxy's, so it comes from act's command line, not the workflow.
    (repo / ".actrc").write_text(
        f"--container-options -v {versions}:/root/.pyenv/versions:ro\n"
        "--env PIP_CERT=/etc/ssl/certs/ca-certificates.crt\n"
    )
    monkeypatch.setattr(test_act, "WORKFLOW", WORKFLOW)

    returncode, output, seconds = run_act(act, repo, timeout=900)
    print(f"\n[act] host matrix workflow: exit {returncode} in {seconds:.1f} s")
    assert returncode == 0, output[-8000:]
    assert output.count("Job succeeded") == 2, output[-8000:]

    lines = step_lines(output)
    legs = sorted(line for line in lines if line.startswith("host-leg "))
    assert legs == [
        f"host-leg python={v} hypothesis-version={v} "
        f"hypothesis-executable=/root/.pyenv/versions/{v}/bin/python{v[:4]}"
        for v in LEGS
    ], output[-8000:]
    outputs = sorted(line for line in lines if line.startswith("host-outputs "))
    assert len(outputs) == len(LEGS), output[-8000:]
    for leg, line in zip(LEGS, outputs, strict=True):
        assert re.fullmatch(
            rf"host-outputs python={re.escape(leg)} conclusion=success passed=2 failed=1 "
            r"best=(which-python|patched) results-file=\.worktree-runner/results\.json "
            r"merged-passed=2 merged-file=merged/results\.json",
            line,
        ), line

    installs = [m for m in map(_INSTALL_LINE.search, output.splitlines()) if m]
    assert [m["what"] for m in installs].count("installed") == 2, output[-8000:]  # one cold install per leg
    assert len(installs) == 4, output[-8000:]  # and one reuse per leg
    by_version = {m["version"] for m in installs}
    # The 3.10 leg's runner runs on the job image's 3.11 (python3 is too old); the 3.12 leg's on 3.12.
    assert {m["python"] for m in installs if m["version"].startswith("3.11")} == {JOB_IMAGE_PYTHON}
    assert "3.12.1" in by_version
    for m in installs:
        what, version = m["what"].split()[0], m["version"]
        print(f"[act] host install: {what} in {m['seconds']} s on Python {version} ({m['python']})")
