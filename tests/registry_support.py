"""A real container registry on 127.0.0.1 and the release steps against it (tests and bench/startup.py).

The registry is Debian's ``docker-registry`` (the CNCF distribution registry, ``serve CONFIG``),
listening on 127.0.0.1 with its storage in a temporary directory. Docker treats 127.0.0.0/8 as an
insecure (plain HTTP) registry by default, and act pulls ``docker://`` images through the host's
daemon, so ``127.0.0.1:<port>/…`` works for ``docker push``, ``docker pull`` and act alike.

The release steps are those of .github/workflows/release.yml: tag the built image as
``<registry>/worktree-runner:<version>``, push it, and write a released action.yml naming it (by
digest) with scripts/release-action-yml.py.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RELEASE_SCRIPT = REPO_ROOT / "scripts" / "release-action-yml.py"
REGISTRY_BINARIES = ("docker-registry", "registry")  # Debian's name, upstream's name
_DIGEST_RE = re.compile(r"digest: (sha256:[0-9a-f]{64})")


def registry_binary() -> str | None:
    for name in REGISTRY_BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def local_registry(root: Path, binary: str) -> Iterator[str]:
    """A registry serving on 127.0.0.1; yields its address ``127.0.0.1:<port>``."""
    port = _free_port()
    address = f"127.0.0.1:{port}"
    (root / "data").mkdir(parents=True, exist_ok=True)
    config = root / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn, accesslog: {disabled: true}}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: '{address}'}}\n"
    )
    log = open(root / "registry.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [binary, "serve", str(config)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"registry exited with {proc.returncode}: {(root / 'registry.log').read_text()}"
                )
            try:
                with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"registry on {address} did not answer within 30 s")
            time.sleep(0.1)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@dataclass(frozen=True)
class Released:
    image: str  # registry/worktree-runner:version
    digest: str  # sha256:… of the pushed manifest
    push_seconds: float

    @property
    def pinned(self) -> str:
        return f"{self.image}@{self.digest}"


def docker(*args: str, timeout: float = 600, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(
            f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )
    return proc.stdout


def release_to_registry(
    built_image: str, registry: str, version: str, action_yml: Path, released_action_yml: Path
) -> Released:
    """Tag, push, and write the released action.yml naming the pushed image by digest."""
    image = f"{registry}/worktree-runner:{version}"
    docker("tag", built_image, image)
    started = time.monotonic()
    pushed = docker("push", image)
    push_seconds = time.monotonic() - started
    found = _DIGEST_RE.search(pushed)
    if found is None:
        raise RuntimeError(f"no digest in the output of docker push:\n{pushed}")
    proc = subprocess.run(
        [sys.executable, str(RELEASE_SCRIPT), "--image", image, "--digest", found.group(1),
         "--action", str(action_yml), "--output", str(released_action_yml)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"release-action-yml.py failed: {proc.stderr}")
    return Released(image=image, digest=found.group(1), push_seconds=push_seconds)


def image_present(ref: str) -> bool:
    proc = subprocess.run(["docker", "image", "inspect", ref], capture_output=True, timeout=60, check=False)
    return proc.returncode == 0


def forget_locally(released: Released) -> None:
    """Remove the pushed names from the local daemon, so that using them means pulling them.

    Only the names go: the layers stay (they belong to the built image too)."""
    for ref in (released.image, released.pinned, f"{released.image.rsplit(':', 1)[0]}@{released.digest}"):
        subprocess.run(["docker", "image", "rm", ref], capture_output=True, timeout=60, check=False)
