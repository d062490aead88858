"""A real ``openhands-agent-server`` process for end-to-end tests (see ../shared/docs/openhands.md §4.2).

The server runs from the Python >= 3.12 virtualenv that ``scripts/agent-server-venv.sh`` makes, in its own
scratch directory (conversations persist under ``<cwd>/workspace``), with its own ``HOME`` and tmux socket
directory, bound to 127.0.0.1 on a free port. Every process it starts (the uvicorn server, its tmux server
and the shells inside) carries a marker variable in its environment, so ``stop()`` can find and kill all
of them, even those that left the process group.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_SCRIPT = REPO_ROOT / "scripts" / "agent-server-venv.sh"
REQUIRE_ENV = "WORKTREE_RUNNER_REQUIRE_AGENT_SERVER"
MARKER_ENV = "WORKTREE_RUNNER_AGENT_SERVER_ID"

# Variables of the test process that must not leak into the server (they would change its auth or storage).
_DROP_PREFIXES = ("OH_", "OPENHANDS_", "SESSION_API_KEY", "LITELLM_", "TMUX")


class AgentServerError(RuntimeError):
    """The agent-server could not be started (the message includes the tail of its log)."""


class AgentServerUnavailable(AgentServerError):
    """No interpreter with openhands-agent-server could be made (tests skip unless REQUIRE_ENV is set)."""


@functools.cache
def agent_server_python() -> str:
    """The interpreter of the pinned agent-server venv, made by ``scripts/agent-server-venv.sh`` if needed.

    Raises AgentServerUnavailable with the script's stderr tail when it fails.
    """
    try:
        out = subprocess.run(
            ["bash", str(VENV_SCRIPT)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except OSError as exc:
        raise AgentServerUnavailable(f"cannot run {VENV_SCRIPT}: {exc}") from exc
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        tail = "\n".join(out.stderr.strip().splitlines()[-15:])
        raise AgentServerUnavailable(f"{VENV_SCRIPT.name} failed (exit {out.returncode}):\n{tail}")
    python = Path(lines[-1])
    if not python.is_absolute():
        python = REPO_ROOT / python
    if not os.access(python, os.X_OK):
        raise AgentServerUnavailable(f"{VENV_SCRIPT.name} printed {python}, which is not executable")
    return str(python)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def marked_pids(marker: str) -> list[int]:
    """PIDs of this user's live processes whose environment has ``MARKER_ENV=marker``."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(int(entry.name))
    return found


class AgentServer:
    """One ``python -m openhands.agent_server`` process; a context manager.

    ``url`` is ``http://127.0.0.1:PORT``; send ``X-Session-API-Key: api_key``. ``restart()`` keeps the port,
    key, secret key and working directory, like a server restarting between submit and collect.
    """

    def __init__(
        self,
        python: str,
        cwd: Path,
        *,
        api_key: str | None = None,
        secret_key: str | None = None,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 180.0,
    ) -> None:
        self.python = python
        self.cwd = Path(cwd).resolve()
        self.api_key = api_key or f"test-session-{secrets.token_hex(8)}"
        self.secret_key = secret_key or secrets.token_hex(16)
        self.port = port or free_port()
        self.extra_env = dict(env or {})
        self.ready_timeout = ready_timeout  # a hang guard, not a speed assertion
        self.marker = uuid.uuid4().hex
        self.log_path = self.cwd / "agent-server.log"
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        # tmux socket paths must fit in 107 bytes, so the socket directory lives directly in /tmp.
        self._tmux_dir: str | None = None
        # The server's TMPDIR (its file editor's history, browser-use downloads): removed by close(), so
        # that test runs leave nothing in /tmp; short, like the tmux directory, for any socket in it.
        self._tmp_dir: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Session-API-Key": self.api_key}

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP_PREFIXES)}
        home = self.cwd / "home"
        home.mkdir(parents=True, exist_ok=True)
        if self._tmux_dir is None:
            self._tmux_dir = tempfile.mkdtemp(prefix="oh-tmux-", dir="/tmp")
        if self._tmp_dir is None:
            self._tmp_dir = tempfile.mkdtemp(prefix="oh-tmp-", dir="/tmp")
        no_proxy = ",".join(x for x in (env.get("NO_PROXY", ""), "127.0.0.1,localhost") if x)
        env.update(
            {
                "SESSION_API_KEY": self.api_key,
                "OH_SECRET_KEY": self.secret_key,
                "OH_ENABLE_VSCODE": "false",
                "OH_ENABLE_VNC": "false",
                "OH_PRELOAD_TOOLS": "false",
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_TELEMETRY": "False",
                "DO_NOT_TRACK": "1",
                "OPENHANDS_SUPPRESS_BANNER": "1",
                "PYTHONUNBUFFERED": "1",
                "HOME": str(home),
                "TMUX_TMPDIR": self._tmux_dir,
                "TMPDIR": self._tmp_dir,
                "NO_PROXY": no_proxy,
                "no_proxy": no_proxy,
                MARKER_ENV: self.marker,
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> AgentServer:
        """Start the server and wait for ``GET /ready``; AgentServerError (with the log tail) if it dies."""
        if self.running():
            return self
        self.cwd.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts} on port {self.port} =====\n".encode())
            log.flush()
            self._log_offset = log.tell()
            self._proc = subprocess.Popen(
                [
                    self.python,
                    "-m",
                    "openhands.agent_server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while True:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                raise AgentServerError(f"agent-server exited with {code} before /ready:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AgentServerError(
                    f"agent-server not ready after {self.ready_timeout:.0f}s:\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines the server wrote since its latest start."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_offset)
                text = fh.read().decode(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Kill the server, its tmux server and everything else it started; idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                self._signal_group(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
            self._signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        self._kill_tmux()
        for _ in range(50):
            pids = marked_pids(self.marker)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    def restart(self) -> AgentServer:
        """Stop and start again with the same port, keys and working directory (conversations persist)."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """stop() and remove the tmux socket and temp directories (the scratch cwd is left for inspection)."""
        self.stop()
        for name in ("_tmux_dir", "_tmp_dir"):
            directory = getattr(self, name)
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)
                setattr(self, name, None)

    def __enter__(self) -> AgentServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def _kill_tmux(self) -> None:
        if self._tmux_dir is None or shutil.which("tmux") is None:
            return
        for sock in Path(self._tmux_dir).glob("tmux-*/*"):
            if sock.is_socket():
                subprocess.run(
                    ["tmux", "-S", str(sock), "kill-server"],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    check=False,
                    timeout=10,
                )


def conversation_request(
    llm_base_url: str,
    working_dir: Path | str,
    text: str,
    *,
    conversation_id: str | None = None,
    max_iterations: int = 20,
    num_retries: int = 0,
    model: str = "openai/fake",
) -> dict[str, Any]:
    """A ``POST /api/conversations`` body (doc §2.3) that runs ``text`` in ``working_dir`` right away."""
    body: dict[str, Any] = {
        "agent": {
            "kind": "Agent",
            "llm": {
                "model": model,
                "base_url": llm_base_url,
                "api_key": "dummy",
                "usage_id": "agent",
                "num_retries": num_retries,
            },
            "tools": [{"name": "terminal"}, {"name": "file_editor"}],
        },
        "workspace": {"kind": "LocalWorkspace", "working_dir": str(working_dir)},
        "initial_message": {"role": "user", "content": [{"type": "text", "text": text}], "run": True},
        "max_iterations": max_iterations,
    }
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    return body
