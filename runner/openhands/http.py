"""One HTTP client for both backends: explicit timeouts, bounded retries, no secrets in errors.

Retried: connection errors and timeouts, 429 (waiting what ``Retry-After`` asks, up to a cap) and
5xx, with exponential backoff and full jitter. Not retried: other 4xx (401/403 become
OpenHandsAuthError). The transport is swappable (httpx), so tests run against real servers.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from runner.openhands.errors import OpenHandsAuthError, OpenHandsError, OpenHandsUnavailableError, redact
from runner.openhands.settings import OpenHandsSettings

__all__ = ["ApiClient", "parse_retry_after"]

log = logging.getLogger("worktree_runner.openhands")
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class ApiClient:
    """``request()`` with the retry policy; one per backend instance, closed with ``aclose()``."""

    def __init__(
        self,
        settings: OpenHandsSettings,
        headers: Mapping[str, str],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._client = httpx.AsyncClient(
            base_url=settings.base_url,
            headers=dict(headers),
            timeout=httpx.Timeout(settings.request_timeout, connect=settings.connect_timeout),
            transport=transport,
            follow_redirects=False,  # a redirect must not carry the key to another host
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _backoff(self, attempt: int) -> float:
        cap = min(self.settings.max_backoff, self.settings.backoff * (2**attempt))
        return random.uniform(0, cap)  # full jitter: retries from many jobs do not line up

    def _redact(self, text: str) -> str:
        return redact(text, *self.settings.secrets())

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        ok: tuple[int, ...] = (200, 201),
        passthrough: tuple[int, ...] = (),
        retries: int | None = None,
        timeout: float | None = None,
        before_retry: Callable[[], Awaitable[httpx.Response | None]] | None = None,
    ) -> httpx.Response:
        """The response with a status in ``ok`` or ``passthrough``; OpenHandsError otherwise.

        ``before_retry`` makes a non-idempotent request safe to retry: it is asked before every
        retry whether the earlier attempt took effect after all, and its response is returned if so.
        """
        attempts = 1 + (self.settings.retries if retries is None else retries)
        what = f"{method} {path}"
        last_problem = "no attempt made"
        for attempt in range(attempts):
            wait: float | None = None
            try:
                response = await self._client.request(
                    method, path, params=params, json=json,
                    timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
                )  # fmt: skip
            except httpx.TransportError as exc:
                last_problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                status = response.status_code
                if status in ok or status in passthrough:
                    return response
                if status in (401, 403):
                    raise OpenHandsAuthError(
                        f"{what}: HTTP {status}: the OpenHands server rejected the API key "
                        "(check openhands-api-key / OPENHANDS_API_KEY)"
                    )
                detail = self._redact(response.text.strip().replace("\n", " ")[:300])
                last_problem = f"HTTP {status}" + (f": {detail}" if detail else "")
                if status not in _RETRY_STATUS:
                    raise OpenHandsError(f"{what}: {last_problem}")
                if status == 429:
                    wait = parse_retry_after(response.headers.get("retry-after"))
                    if wait is not None and wait > self.settings.max_retry_after:
                        raise OpenHandsUnavailableError(
                            f"{what}: rate limited; the server asks to retry after {wait:.0f}s, "
                            f"more than the {self.settings.max_retry_after:.0f}s we wait"
                        )
            if attempt + 1 >= attempts:
                break
            delay = wait if wait is not None else self._backoff(attempt)
            log.info(
                "%s failed (%s); retry %d/%d in %.2fs", what, last_problem, attempt + 1, attempts - 1, delay
            )
            await self._sleep(delay)
            if before_retry is not None:
                done = await before_retry()
                if done is not None:
                    return done
        raise OpenHandsUnavailableError(
            f"{what}: {self._redact(last_problem)} (gave up after {attempts} attempt(s) to reach "
            f"{self.settings.base_url})"
        )

    async def get_json(self, path: str, **kwargs: Any) -> Any:
        response = await self.request("GET", path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise OpenHandsError(f"GET {path}: the server did not answer with JSON") from None
