"""Python re-implementations of the GitHub runner's parsers, for tests.

Written from the behaviour of actions/runner (``src/Runner.Worker/FileCommandManager.cs``
``EnvFileKeyValuePairs``, ``src/Runner.Common/ActionCommand.cs`` ``TryParseV2`` /
``TryParse``, ``src/Runner.Worker/ActionCommandManager.cs`` stop-commands handling and
``StreamReader.ReadLine`` line splitting of process output).  Comparisons are
ordinal; the runner's culture-sensitive ``StartsWith``/``IndexOf`` may in
addition ignore zero-width characters, which is one more reason untrusted
output is always wrapped in stop-commands.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# Commands the runner registers (ActionCommandManager + its extensions);
# "internal-set-repo-path" is only registered for internal plugins.
REGISTERED_COMMANDS = frozenset(
    {
        "stop-commands",
        "set-env",
        "set-output",
        "save-state",
        "add-mask",
        "add-path",
        "add-matcher",
        "remove-matcher",
        "debug",
        "warning",
        "error",
        "notice",
        "group",
        "endgroup",
        "echo",
    }
)

# Char.IsWhiteSpace: categories Zs/Zl/Zp plus U+0009-U+000D, U+0085, U+00A0.
_CS_WHITESPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

_DATA_UNESCAPES = (("%0D", "\r"), ("%0A", "\n"), ("%25", "%"))
_PROPERTY_UNESCAPES = (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%"))
_LEGACY_UNESCAPES = (("%3B", ";"), ("%0D", "\r"), ("%0A", "\n"), ("%5D", "]"), ("%25", "%"))


# --------------------------------------------------------------------------
# File commands (GITHUB_OUTPUT / GITHUB_ENV / GITHUB_STATE)
# --------------------------------------------------------------------------


class EnvFileError(Exception):
    """The runner would fail the step: "Unable to process file command ..."."""


def _read_line(text: str, index: int, windows: bool) -> tuple[str | None, int, str | None]:
    """Port of ``EnvFileKeyValuePairs.ReadLine``: (line, new index, newline)."""
    if index >= len(text):
        return None, index, None
    lf = text.find("\n", index)
    if lf < 0:
        return text[index:], len(text), None
    if windows:
        crlf = text.find("\r\n", index)
        if 0 <= crlf < lf:
            return text[index:crlf], crlf + 2, "\r\n"
    return text[index:lf], lf + 1, "\n"


def decode_file(data: bytes) -> str:
    """``File.ReadAllText``: UTF-8 (BOM skipped), invalid bytes replaced."""
    return data.decode("utf-8-sig", errors="replace")


def parse_env_file(content: str | bytes, *, windows: bool = False) -> list[tuple[str, str]]:
    """Port of ``EnvFileKeyValuePairs``: the (name, value) records of a file.

    Raises :class:`EnvFileError` where the runner throws."""
    text = decode_file(content) if isinstance(content, bytes) else content
    pairs: list[tuple[str, str]] = []
    index = 0
    line, index, _ = _read_line(text, index, windows)
    while line is not None:
        if line:
            equals = line.find("=")
            heredoc = line.find("<<")
            if equals >= 0 and (heredoc < 0 or equals < heredoc):
                # NAME=VALUE.  (The runner's empty-name check tests the whole
                # line, so "=value" is accepted with an empty name.)
                key, value = line.split("=", 1)
            elif heredoc >= 0 and (equals < 0 or heredoc < equals):
                key, delimiter = line.split("<<", 1)
                if not key or not delimiter:
                    raise EnvFileError(
                        f"Invalid format '{line}'. Name must not be empty and delimiter must not be empty"
                    )
                start = end = index
                temp, index, newline = _read_line(text, index, windows)
                while temp != delimiter:
                    if temp is None:
                        raise EnvFileError(f"Invalid value. Matching delimiter not found '{delimiter}'")
                    if newline is None:
                        raise EnvFileError("Invalid value. EOF marker missing new line.")
                    end = index - len(newline)
                    temp, index, newline = _read_line(text, index, windows)
                value = text[start:end] if end > start else ""
            else:
                raise EnvFileError(f"Invalid format '{line}'")
            pairs.append((key, value))
        line, index, _ = _read_line(text, index, windows)
    return pairs


# --------------------------------------------------------------------------
# Workflow commands on stdout
# --------------------------------------------------------------------------


@dataclass
class ActionCommand:
    command: str
    properties: dict[str, str] = field(default_factory=dict)
    data: str = ""

    def prop(self, name: str) -> str | None:
        """Property lookup, case-insensitive like the runner's dictionary."""
        for key, value in self.properties.items():
            if key.lower() == name.lower():
                return value
        return None


def _unescape(text: str, mappings: Iterable[tuple[str, str]]) -> str:
    for escaped, plain in mappings:
        text = text.replace(escaped, plain)
    return text


def _set_property(props: dict[str, str], key: str, value: str) -> None:
    for existing in list(props):
        if existing.lower() == key.lower():
            del props[existing]
    props[key] = value


def _split_pair(text: str) -> list[str]:
    """``Split('=', count: 2, RemoveEmptyEntries)``."""
    pieces: list[str] = []
    rest = text
    while rest:
        if len(pieces) == 1:
            pieces.append(rest)
            break
        head, sep, rest = rest.partition("=")
        if head:
            pieces.append(head)
        if not sep:
            break
    return pieces


def _is_registered(name: str, registered: Iterable[str]) -> bool:
    return name.lower() in {r.lower() for r in registered}


def try_parse_v2(message: str, registered: Iterable[str] = REGISTERED_COMMANDS) -> ActionCommand | None:
    """Port of ``ActionCommand.TryParseV2`` (``::name k=v,k=v::data``)."""
    if not message:
        return None
    message = message.lstrip(_CS_WHITESPACE)
    if not message.startswith("::"):
        return None
    end = message.find("::", 2)
    if end < 0:
        return None
    info = message[2:end]
    space = info.find(" ")
    name = info if space < 0 else info[:space]
    if not _is_registered(name, registered):
        return None
    command = ActionCommand(name)
    if space > 0:
        props = info[space + 1 :].strip(_CS_WHITESPACE)
        for item in (p for p in props.split(",") if p):
            pair = _split_pair(item)
            if len(pair) == 2:
                _set_property(command.properties, pair[0], _unescape(pair[1], _PROPERTY_UNESCAPES))
    command.data = _unescape(message[end + 2 :], _DATA_UNESCAPES)
    return command


def try_parse_legacy(message: str, registered: Iterable[str] = REGISTERED_COMMANDS) -> ActionCommand | None:
    """Port of ``ActionCommand.TryParse`` (``##[name k=v;k=v]data`` anywhere in the line)."""
    if not message:
        return None
    prefix = message.find("##[")
    if prefix < 0:
        return None
    close = message.find("]", prefix)
    if close < 0:
        return None
    info = message[prefix + 3 : close]
    space = info.find(" ")
    name = info if space < 0 else info[:space]
    if not _is_registered(name, registered):
        return None
    command = ActionCommand(name)
    if space > 0:
        for item in (p for p in info[space + 1 :].split(";") if p):
            pair = _split_pair(item)
            if len(pair) == 2:
                _set_property(command.properties, pair[0], _unescape(pair[1], _LEGACY_UNESCAPES))
    command.data = _unescape(message[close + 1 :], _LEGACY_UNESCAPES)
    return command


def parse_command(line: str, registered: Iterable[str] = REGISTERED_COMMANDS) -> ActionCommand | None:
    """What ``ActionCommandManager.TryProcessCommand`` parses from one line."""
    return try_parse_v2(line, registered) or try_parse_legacy(line, registered)


_READLINE_RE = re.compile(r"\r\n|\r|\n")


def split_output_lines(text: str) -> list[str]:
    """``StreamReader.ReadLine`` over process output: CR, LF and CRLF all end a line."""
    lines = _READLINE_RE.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


class StopTokenError(Exception):
    """``::stop-commands::`` with an invalid token fails the step."""


class CommandProcessor:
    """Emulates the runner's handling of a step's output, including stop-commands.

    ``executed`` holds the commands the runner would act on; ``stop_events``
    records ``("stop", token)`` / ``("resume", token)``; ``log`` the lines that
    are printed as plain output.
    """

    def __init__(self, registered: Iterable[str] = REGISTERED_COMMANDS) -> None:
        self.registered = {name.lower() for name in registered}
        self.stop_token: str | None = None
        self.executed: list[ActionCommand] = []
        self.stop_events: list[tuple[str, str]] = []
        self.log: list[str] = []

    @property
    def stopped(self) -> bool:
        return self.stop_token is not None

    def feed(self, text: str) -> list[ActionCommand]:
        """Process output text; returns the commands executed from it."""
        before = len(self.executed)
        for line in split_output_lines(text):
            if not self._process(line):
                self.log.append(line)
        return self.executed[before:]

    def _process(self, line: str) -> bool:
        if not line or ("##[" not in line and "::" not in line):
            return False
        command = parse_command(line, self.registered)
        if command is None:
            return False
        if self.stop_token is not None:
            if command.command.lower() == self.stop_token.lower():
                self.registered.discard(self.stop_token.lower())
                self.stop_events.append(("resume", self.stop_token))
                self.stop_token = None
                return True
            return False
        if command.command.lower() == "stop-commands":
            token = command.data
            if not token or token.lower() in self.registered or token.lower() == "pause-logging":
                raise StopTokenError(f"invalid stop-commands token {token!r}")
            self.stop_token = token
            self.registered.add(token.lower())
            self.stop_events.append(("stop", token))
            return True
        self.executed.append(command)
        return True
