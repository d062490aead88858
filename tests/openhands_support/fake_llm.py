"""A scripted OpenAI-compatible LLM for offline end-to-end tests of the OpenHands agent-server.

The agent-server's litellm talks to it as ``model="openai/fake"``, ``base_url=FakeLLM.base_url``. It serves
``POST /v1/chat/completions`` (plain JSON and server-sent events) and ``GET /v1/models``; anything else gets
a 404 and is recorded in ``other_requests``.

A conversation is scripted by the first scenario whose ``match`` string occurs in its first user message.
Each scenario is a list of steps; each step is one assistant turn with exactly one native tool call
(``write_file`` of a large text becomes several turns). The turn to play is the number of assistant turns
with tool calls already in the request's messages, which equals the number of tool results the agent has
sent back. A request without ``tools`` (the agent-server's title call) gets a short plain-text answer.
When the steps run out without ``finish`` the model answers in plain text, which ends the run as well.
``delay(seconds)`` is no turn of its own: it makes the answer to the next step come that much later (a slow
model; benchmarks use it to make a generation take a known time).

Example::

    with FakeLLM() as llm:
        llm.add_scenario("calc.py", [write_file("tests/test_calc.py", "def test(): pass\\n"),
                                     terminal("python -m pytest -q"), finish("done")])
        ...  # llm.base_url goes into the conversation's LLM config
"""

from __future__ import annotations

import base64
import itertools
import json
import posixpath
import re
import shlex
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal

from tests.openhands_support.threaded_server import ThreadedHTTPService

__all__ = [
    "FakeLLM",
    "Step",
    "delay",
    "finish",
    "llm_error",
    "loop",
    "terminal",
    "think",
    "tool_call",
    "write_file",
]

TITLE = "Fake title"
# Base64 characters per terminal command when writing a file; tmux rejects commands near 16 KiB.
WRITE_CHUNK = 6000
_WORKDIR_RE = re.compile(r"Your current working directory is: (/\S*)")


@dataclass(frozen=True)
class Step:
    """One scripted assistant turn (see the constructors below rather than building these directly)."""

    kind: Literal["tool", "write_file", "write_chunk", "error", "loop", "delay"]
    tool: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    path: str = ""
    text: str = ""
    status: int = 500
    times: int | None = None  # error: how many requests fail before the scenario moves on (None = always)
    delay: float = 0.0  # seconds to wait before answering this turn (set by a preceding ``delay`` step)


def tool_call(tool: str, **arguments: Any) -> Step:
    """Any native tool call, e.g. ``tool_call("file_editor", command="view", path="/abs/file")``."""
    return Step("tool", tool=tool, arguments=dict(arguments))


def terminal(command: str) -> Step:
    """Run ``command`` with the terminal tool (in the conversation's working directory at first)."""
    return tool_call("terminal", command=command)


def think(thought: str) -> Step:
    return tool_call("think", thought=thought)


def finish(message: str) -> Step:
    """The agent's FinishAction with ``message``; the conversation then goes to ``finished``."""
    return tool_call("finish", message=message)


def write_file(relpath: str, text: str) -> Step:
    """Write ``text`` to ``relpath`` (relative to the conversation's working dir), creating parent dirs.

    Done with the terminal tool: ``mkdir -p`` plus ``printf <base64> | base64 -d``, so any text is safe
    (quotes, heredoc markers, no trailing newline). Texts above ~4.5 KB take several turns. The path is
    made absolute with the working dir the agent-server states in its tool descriptions ("Your current
    working directory is: ..."); without that line it is relative to the terminal's current directory.
    """
    return Step("write_file", path=relpath, text=text)


def llm_error(status: int = 500, times: int | None = None) -> Step:
    """The LLM answers HTTP ``status``. With ``num_retries: 0`` the conversation goes to ``error``.

    ``times``: after that many failed requests at this step the scenario continues with the next step
    (for retry tests); by default every request at this step fails.
    """
    return Step("error", status=status, times=times)


def delay(seconds: float) -> Step:
    """Answer the next step ``seconds`` later (several delays in a row add up; not a turn of its own).

    The wait happens in the request's handler thread, so other conversations are answered meanwhile. A
    delay before ``loop()`` slows every repetition; a delay after the last step is an error.
    """
    if not seconds >= 0:
        raise ValueError(f"delay must be >= 0 seconds, got {seconds!r}")
    return Step("delay", delay=float(seconds))


def loop(command: str = "echo fake-llm-still-working") -> Step:
    """Never finish: repeat the same harmless terminal command forever (max_iterations or stuck ends it)."""
    return Step("loop", tool="terminal", arguments={"command": command})


@dataclass
class _Scenario:
    match: str
    turns: list[Step]
    errors_served: dict[int, int] = field(default_factory=dict)


def _expand(steps: Sequence[Step]) -> list[Step]:
    """One step per assistant turn: a large write_file becomes several ``write_chunk`` turns; ``delay``
    steps are folded into the next turn's ``delay``."""
    turns: list[Step] = []
    pending = 0.0
    for step in steps:
        if step.kind == "delay":
            pending += step.delay
            continue
        if pending:
            step, pending = replace(step, delay=step.delay + pending), 0.0
        if step.kind != "write_file":
            turns.append(step)
            continue
        encoded = base64.b64encode(step.text.encode()).decode()
        # Each chunk is a whole number of base64 quanta (WRITE_CHUNK % 4 == 0), so they decode apart.
        chunks = [encoded[i : i + WRITE_CHUNK] for i in range(0, len(encoded), WRITE_CHUNK)] or [""]
        for n, chunk in enumerate(chunks):
            turns.append(
                Step(
                    "write_chunk",
                    tool="terminal",
                    path=step.path,
                    text=chunk,
                    arguments={"part": n, "parts": len(chunks)},
                    delay=step.delay if n == 0 else 0.0,
                )
            )
    if pending:
        raise ValueError("a delay() step must come before the step it delays")
    return turns


def _chunk_command(turn: Step, working_dir: str | None) -> str:
    """The shell command for one write_chunk turn; relative paths are made absolute when the working dir
    is known (the agent-server puts it in the tool descriptions), so an earlier ``cd`` does not matter."""
    path = turn.path
    if working_dir and not path.startswith("/"):
        path = posixpath.join(working_dir, path)
    quoted = shlex.quote(path)
    part, parts = int(turn.arguments["part"]), int(turn.arguments["parts"])
    command = f"printf %s {shlex.quote(turn.text)} | base64 -d {'>' if part == 0 else '>>'} {quoted}"
    if part == 0:
        command = f'mkdir -p -- "$(dirname -- {quoted})" && {command}'
    if parts > 1:
        # Distinct commands even for repetitive text, or stuck detection would stop the run.
        command = f": part {part + 1} of {parts} && {command}"
    return command


def _working_dir(tools: Sequence[Any]) -> str | None:
    for tool in tools:
        function = tool.get("function", {}) if isinstance(tool, dict) else {}
        found = _WORKDIR_RE.search(str(function.get("description") or ""))
        if found:
            return found.group(1)
    return None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and "text" in part
        )
    return ""


class FakeLLM(ThreadedHTTPService):
    """The scripted LLM server; a context manager. ``requests`` holds the parsed chat-completion bodies."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self._lock = threading.Lock()
        self._scenarios: list[_Scenario] = []
        self._requests: list[dict[str, Any]] = []
        self._other: list[tuple[str, str]] = []
        self._unmatched: list[str] = []
        self._ids = itertools.count(1)

    thread_name = "fake-llm"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(_Handler):
            owner = fake

        return Handler

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}/v1"

    # -- scripting and inspection ---------------------------------------------------------------------

    def add_scenario(self, match: str, steps: Sequence[Step]) -> None:
        """Script conversations whose first user message contains ``match`` (first added wins)."""
        if not match:
            raise ValueError("match must be a non-empty string")
        with self._lock:
            self._scenarios.append(_Scenario(match, _expand(steps)))

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A copy of the parsed ``/chat/completions`` request bodies, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def other_requests(self) -> list[tuple[str, str]]:
        """``(method, path)`` of requests to anything but ``/chat/completions``."""
        with self._lock:
            return list(self._other)

    @property
    def unmatched(self) -> list[str]:
        """First user messages (truncated) of requests that matched no scenario (they got HTTP 400)."""
        with self._lock:
            return list(self._unmatched)

    def requests_for(self, match: str) -> list[dict[str, Any]]:
        """The recorded requests whose first user message contains ``match``."""
        return [r for r in self.requests if match in _first_user_text(r)]

    # -- the script ----------------------------------------------------------------------------------

    def _record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(body)

    def _record_other(self, method: str, path: str) -> None:
        with self._lock:
            self._other.append((method, path))

    def _respond(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(HTTP status, payload): payload is an OpenAI error body or ``{"content"|"tool": ...}``."""
        tools = body.get("tools") or []
        if not tools:
            return 200, {"content": TITLE}
        first = _first_user_text(body)
        with self._lock:
            scenario = next((s for s in self._scenarios if s.match in first), None)
            if scenario is None:
                self._unmatched.append(first[:500])
                return 400, _error_body(
                    400, f"fake-llm: no scenario matches the first user message {first[:200]!r}"
                )
            index = sum(
                1 for m in body.get("messages") or [] if m.get("role") == "assistant" and m.get("tool_calls")
            )
            position, turn = self._turn_at(scenario, index)
            if turn is None:
                return 200, {"content": "fake-llm: the scripted steps are exhausted."}
            if turn.kind == "error":
                scenario.errors_served[position] = scenario.errors_served.get(position, 0) + 1
        if turn.delay > 0:
            time.sleep(turn.delay)  # outside the lock: other conversations go on meanwhile
        if turn.kind == "error":
            return turn.status, _error_body(turn.status, f"fake-llm: scripted HTTP {turn.status}")
        if turn.kind == "write_chunk":
            turn = terminal(_chunk_command(turn, _working_dir(tools)))
        return 200, {"tool": turn.tool, "arguments": _fit_arguments(turn, tools)}

    @staticmethod
    def _turn_at(scenario: _Scenario, index: int) -> tuple[int, Step | None]:
        """(position, turn) to play after ``index`` tool-call turns; exhausted error steps are passed over."""
        played = 0
        for position, turn in enumerate(scenario.turns):
            if turn.kind == "error":
                live = turn.times is None or scenario.errors_served.get(position, 0) < turn.times
                if live and played == index:
                    return position, turn
                continue
            if turn.kind == "loop" or played == index:
                return position, turn
            played += 1
        return -1, None


def _first_user_text(body: Mapping[str, Any]) -> str:
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _fit_arguments(turn: Step, tools: Sequence[Any]) -> dict[str, Any]:
    """The step's arguments plus whatever the offered tool schema requires (security_risk, summary)."""
    arguments = dict(turn.arguments)
    schema: dict[str, Any] = {}
    for tool in tools:
        function = tool.get("function", {}) if isinstance(tool, dict) else {}
        if function.get("name") == turn.tool:
            schema = function.get("parameters") or {}
            break
    properties = schema.get("properties") or {}
    required = schema.get("required") or []
    if "security_risk" in properties and "security_risk" not in arguments:
        arguments["security_risk"] = "LOW"
    if "summary" in required and "summary" not in arguments:
        arguments["summary"] = f"fake-llm {turn.tool}"
    return arguments


def _error_body(status: int, message: str) -> dict[str, Any]:
    kind = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error"}
    return {
        "error": {"message": message, "type": kind.get(status, "server_error"), "param": None, "code": None}
    }


class _Handler(BaseHTTPRequestHandler):
    owner: FakeLLM
    server_version = "fake-llm/1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [{"id": "fake", "object": "model", "created": 0, "owned_by": "fake-llm"}],
                },
            )
            return
        self.owner._record_other("GET", self.path)
        self._send_json(404, _error_body(404, f"fake-llm: no route GET {path}"))

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self.owner._record_other("POST", self.path)
            self._send_json(404, _error_body(404, f"fake-llm: no route POST {path}"))
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_json(400, _error_body(400, "fake-llm: body is not JSON"))
            return
        self.owner._record(body)
        status, payload = self.owner._respond(body)
        if status != 200:
            headers = {"Retry-After": "0"} if status == 429 else {}
            self._send_json(status, payload, headers)
            return
        completion_id = f"chatcmpl-fake{next(self.owner._ids)}"
        model = str(body.get("model") or "fake")
        if body.get("stream"):
            self._stream(
                completion_id, model, payload, bool((body.get("stream_options") or {}).get("include_usage"))
            )
        else:
            self._send_json(200, _completion(completion_id, model, payload))

    def _stream(self, completion_id: str, model: str, payload: Mapping[str, Any], usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        for chunk in _chunks(completion_id, model, payload, usage):
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


_USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}


def _message(payload: Mapping[str, Any], call_id: str) -> tuple[dict[str, Any], str]:
    if "tool" in payload:
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": payload["tool"], "arguments": json.dumps(payload["arguments"])},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    return {"role": "assistant", "content": str(payload["content"])}, "stop"


def _completion(completion_id: str, model: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    message, reason = _message(payload, completion_id.replace("chatcmpl-", "call_"))
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": reason}],
        "usage": dict(_USAGE),
    }


def _chunks(
    completion_id: str, model: str, payload: Mapping[str, Any], usage: bool
) -> Iterator[dict[str, Any]]:
    base = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    message, reason = _message(payload, completion_id.replace("chatcmpl-", "call_"))
    yield {
        **base,
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
    }
    if message.get("tool_calls"):
        call = message["tool_calls"][0]
        delta = {
            "tool_calls": [
                {
                    "index": 0,
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": ""},
                }
            ]
        }
        yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        arguments = call["function"]["arguments"]
        for i in range(0, len(arguments), 200):
            delta = {"tool_calls": [{"index": 0, "function": {"arguments": arguments[i : i + 200]}}]}
            yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    else:
        yield {
            **base,
            "choices": [{"index": 0, "delta": {"content": message["content"]}, "finish_reason": None}],
        }
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}
    if usage:
        yield {**base, "choices": [], "usage": dict(_USAGE)}
