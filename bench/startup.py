#!/usr/bin/env python3
"""Start to first test command: a prebuilt image from a registry, a cold Dockerfile build, the host variant.

What a job pays before the action's first test command runs, measured the three ways in one run:

* **prebuilt** (a released action.yml, ``image: docker://…``): ``docker pull`` of the released image
  from a real registry on 127.0.0.1 (Debian's ``docker-registry``, pushed with the release steps of
  tests/registry_support.py), every layer downloaded and unpacked as on a fresh VM (timed from the
  registry: the daemon here already has the layers, since it built the image), plus the step
  (``docker pull`` of the released name, then ``docker run`` exactly as the runner does).
* **cold build** (``image: Dockerfile``, every job on a hosted runner): ``docker build --no-cache`` (no
  layer cache, as on a fresh VM), then the same step.
* **host** (the composite variant, ``host/action.yml``): its two steps as the runner runs them
  (tests/test_host_action.py's emulation), in a fresh ``RUNNER_TEMP`` with an empty pip cache, as a
  hosted runner's first use in a job: ``host/install.sh`` makes the private virtualenv from the
  package index, then the entry point runs.

The clock stops when the first hypothesis' command starts: it writes ``time.time()`` into the
workspace (host and container share the clock). Also reported: the image's size on this machine's
stand-in base and the estimate for the official base (the method of tests/test_docker_image.py), and
the compressed bytes a pull downloads (the registry's manifest).

Caveats, printed with the figures: the machine is shared (load); the cold build finds the base image
locally (on GitHub it is pulled too, ~45 MB compressed for python:3.12-slim) while pip reaches PyPI;
the pull runs over loopback, so a hosted runner adds the download time of the compressed bytes at
its bandwidth (printed); the stand-in base is larger than the official one (so is its pull).

    python3 bench/startup.py [--reps N]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.conftest import make_check_repo  # noqa: E402
from tests.docker_support import build_image, image_size, make_github_dirs, run_like_github  # noqa: E402
from tests.registry_support import (  # noqa: E402
    Released,
    docker,
    forget_locally,
    local_registry,
    registry_binary,
    release_to_registry,
)
from tests.test_docker_action import action_inputs  # noqa: E402
from tests.test_docker_image import GIT_ON_SLIM_BYTES, MB, OFFICIAL_BASE_BYTES_ESTIMATE  # noqa: E402
from tests.test_host_action import Job, _job_env  # noqa: E402
from tests.test_host_action import _step as host_step  # noqa: E402

MARK_FILE = "first-command-at"


def _step_until_first_command(image: str, root: Path) -> tuple[float, float]:
    """Run one action step; returns (unix time the first test command started, step wall seconds)."""
    dirs = make_github_dirs(root)
    make_check_repo(dirs.workspace)
    mark = f"/github/workspace/{MARK_FILE}"
    command = json.dumps(["python", "-c", f"import time; open({mark!r}, 'w').write(repr(time.time()))"])
    inputs = action_inputs(hypotheses=f"- {{name: first, ref: HEAD, command: {command}}}", max_parallel="1")
    started = time.monotonic()
    result = run_like_github(
        image, inputs=inputs, workspace=dirs.workspace, runner_temp=dirs.runner_temp,
        file_commands=dirs.file_commands, home=dirs.home, workflow_dir=dirs.workflow_dir, timeout=600,
    )  # fmt: skip
    seconds = time.monotonic() - started
    text = (dirs.workspace / MARK_FILE).read_text() if (dirs.workspace / MARK_FILE).exists() else ""
    if not text:
        raise RuntimeError(
            f"the test command did not run (exit {result.returncode}):\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return float(text), seconds


def prebuilt(released: Released, root: Path) -> dict[str, float]:
    forget_locally(released)
    t0 = time.time()
    docker("pull", released.pinned)
    pulled = time.time()
    first, _ = _step_until_first_command(released.pinned, root)
    return {"pull_s": pulled - t0, "run_to_first_s": first - pulled, "first_command_s": first - t0}


def cold_pull(registry: str, released: Released) -> float:
    """Seconds to download and unpack every layer of the released image from the registry, as a pull
    into an empty daemon does (the layers are read through gunzip and tar, the data discarded).

    Not a second Docker daemon: one started beside the main one (even with ``--bridge none``)
    removed the main daemon's docker0 bridge here, which breaks every container on the machine."""
    started = time.monotonic()
    for digest in _manifest(registry, released)["layers"]:
        url = f"http://{registry}/v2/worktree-runner/blobs/{digest['digest']}"
        with (
            urllib.request.urlopen(url, timeout=300) as answer,
            tarfile.open(fileobj=answer, mode="r|*") as tar,
        ):
            for member in tar:
                data = tar.extractfile(member) if member.isfile() else None
                while data is not None and data.read(1 << 20):
                    pass
    return time.monotonic() - started


def cold_build(root: Path) -> dict[str, float]:
    tag = f"worktree-runner:bench-cold-{secrets.token_hex(4)}"
    t0 = time.time()
    try:
        build_image(tag, REPO_ROOT, no_cache=True)
        built = time.time()
        first, _ = _step_until_first_command(tag, root)
    finally:
        subprocess.run(["docker", "image", "rm", tag], capture_output=True, check=False, timeout=120)
    return {"build_s": built - t0, "run_to_first_s": first - built, "first_command_s": first - t0}


def host(root: Path) -> dict[str, float]:
    """The host variant's first use in a job: install (empty pip cache), then the run step."""
    workspace, files, runner_temp, pip_cache = (root / d for d in ("workspace", "files", "temp", "pip"))
    for directory in (workspace, files, runner_temp, pip_cache):
        directory.mkdir(parents=True)
    make_check_repo(workspace)
    (files / "step_summary").write_text("")
    mark = workspace / MARK_FILE
    command = json.dumps(["python", "-c", f"import time; open({str(mark)!r}, 'w').write(repr(time.time()))"])
    inputs = action_inputs(hypotheses=f"- {{name: first, ref: HEAD, command: {command}}}", max_parallel="1")
    job = Job(workspace, runner_temp, files, _job_env(
        runner_temp, workspace, files, os.environ["PATH"], PIP_CACHE_DIR=str(pip_cache)
    ))  # fmt: skip
    t0 = time.time()
    python, _ = job.install()
    installed = time.time()
    proc = job.start(host_step("run"), inputs, {"install": {"python": python}})
    out, err = proc.communicate(timeout=600)
    text = mark.read_text() if mark.exists() else ""
    if not text:
        raise RuntimeError(f"the host variant's command did not run (exit {proc.returncode}):\n{out}{err}")
    first = float(text)
    return {"install_s": installed - t0, "run_to_first_s": first - installed, "first_command_s": first - t0}


def _manifest(registry: str, released: Released) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://{registry}/v2/worktree-runner/manifests/{released.digest}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                 "application/vnd.oci.image.manifest.v1+json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as answer:
        manifest: dict[str, Any] = json.loads(answer.read())
    return manifest


def compressed_bytes(registry: str, released: Released) -> int:
    """Config + layer bytes of the pushed manifest: what a pull downloads."""
    manifest = _manifest(registry, released)
    return int(manifest["config"]["size"]) + sum(int(layer["size"]) for layer in manifest["layers"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=1, help="alternated repetitions of all three (default 1)")
    args = parser.parse_args()
    binary = registry_binary()
    if binary is None:
        print("no docker-registry binary: apt-get install docker-registry", file=sys.stderr)
        return 2
    tag = os.environ.get("WORKTREE_RUNNER_TEST_IMAGE") or "worktree-runner:test"
    base_info = build_image(tag, REPO_ROOT)
    base_line = next(
        line for line in (REPO_ROOT / "Dockerfile").read_text().splitlines() if line.startswith("FROM")
    )
    base = base_line.split()[1]
    added = base_info.size_bytes - image_size(base)
    rows: dict[str, list[dict[str, float]]] = {"prebuilt": [], "cold": [], "host": []}
    with tempfile.TemporaryDirectory(prefix="wr-startup-") as tmp:
        root = Path(tmp)
        with local_registry(root / "registry", binary) as registry:
            released = release_to_registry(
                tag, registry, "0.0.0-bench", REPO_ROOT / "action.yml", root / "released" / "action.yml"
            )
            download = compressed_bytes(registry, released)
            try:
                for rep in range(args.reps):
                    warm = prebuilt(released, root / f"pre-{rep}")
                    # The step on the daemon (its pull finds the layers); the download and unpack of
                    # every layer measured from the registry.
                    pull = cold_pull(registry, released)
                    rows["prebuilt"].append(
                        {**warm, "pull_s": pull, "first_command_s": pull + warm["run_to_first_s"],
                         "warm_pull_s": warm["pull_s"]}
                    )  # fmt: skip
                    rows["cold"].append(cold_build(root / f"cold-{rep}"))
                    rows["host"].append(host(root / f"host-{rep}"))
            finally:
                forget_locally(released)
    load = os.getloadavg()[0]
    pre = statistics.median(r["first_command_s"] for r in rows["prebuilt"])
    cold = statistics.median(r["first_command_s"] for r in rows["cold"])
    print(
        "| variant | start to first test command (s) | of which pull / build / install (s) "
        "| run to first command (s) |"
    )
    print("| --- | ---: | ---: | ---: |")
    for name, key in (
        ("prebuilt (pull of every layer + step)", "prebuilt"),
        ("cold Dockerfile build", "cold"),
        ("host variant (install, empty pip cache + run)", "host"),
    ):
        for r in rows[key]:
            step = r.get("pull_s", r.get("build_s", r.get("install_s", 0.0)))
            print(f"| {name} | {r['first_command_s']:.1f} | {step:.1f} | {r['run_to_first_s']:.1f} |")
    estimate = OFFICIAL_BASE_BYTES_ESTIMATE + GIT_ON_SLIM_BYTES + added
    print(
        f"\nimage on the stand-in base: {base_info.size_bytes / MB:.1f} MB "
        f"({added / MB:.1f} MB on top of {base}); "
        f"estimate on the official base: {estimate / MB:.0f} MB; a pull downloads {download / MB:.1f} MB "
        f"(compressed, here).\nload average (1 min) at the end: {load:.2f} on {os.cpu_count()} CPUs: the "
        "machine is shared, figures are indicative. The cold build found the base image locally; the "
        "prebuilt figure is every layer downloaded and unpacked plus the step (see the docstring)."
    )
    print(json.dumps({
        "reps": args.reps,
        "prebuilt_first_command_s": round(pre, 2),
        "cold_build_first_command_s": round(cold, 2),
        "speedup": round(cold / pre, 1) if pre > 0 else None,
        "image_mb_standin": round(base_info.size_bytes / MB, 1),
        "image_mb_added": round(added / MB, 1),
        "image_mb_official_estimate": round(estimate / MB, 1),
        "pull_download_mb": round(download / MB, 1),
        "prebuilt_pull_s": round(statistics.median(r["pull_s"] for r in rows["prebuilt"]), 2),
        "prebuilt_warm_pull_s": round(statistics.median(r["warm_pull_s"] for r in rows["prebuilt"]), 2),
        "cold_build_s": round(statistics.median(r["build_s"] for r in rows["cold"]), 2),
        "host_first_command_s": round(statistics.median(r["first_command_s"] for r in rows["host"]), 2),
        "host_install_s": round(statistics.median(r["install_s"] for r in rows["host"]), 2),
        "loadavg_1m": round(load, 2),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
