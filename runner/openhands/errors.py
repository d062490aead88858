"""Errors of the OpenHands client. Messages never contain the API key (see ``redact``)."""

from __future__ import annotations

__all__ = [
    "InvalidTaskIdError",
    "OpenHandsAuthError",
    "OpenHandsError",
    "OpenHandsUnavailableError",
    "redact",
]


class OpenHandsError(RuntimeError):
    """The OpenHands server refused or failed a request; the message says which and why."""


class OpenHandsAuthError(OpenHandsError):
    """HTTP 401/403: the API key is missing or wrong. Never retried."""


class OpenHandsUnavailableError(OpenHandsError):
    """The server could not be reached (or kept failing) after every retry."""


class InvalidTaskIdError(ValueError):
    """A task ID that this client did not make, or that was damaged on the way."""


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every secret replaced by ``***``: the last line of defence for messages."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
