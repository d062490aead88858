"""The run's summary as a pull-request comment: one per workflow and job, edited in place.

:func:`post_summary_comment` renders a results document (schema 1) with the job-summary renderer
(:func:`~runner.github.summary.render_summary`, the same staged degradation, here to GitHub's
65,536-character limit for a comment body), finds the comment an earlier run of the same workflow
and job left (a hidden marker on its first line) and edits it, or creates one.  It talks to the
REST API through PyGithub at ``$GITHUB_API_URL`` (GitHub Enterprise Server included), with
:class:`github.GithubRetry` configured so that rate limits are waited out only when the wait is
short (``Retry-After``, or ``x-ratelimit-remaining: 0`` + ``x-ratelimit-reset``, at most
:attr:`ClientSettings.max_wait` seconds each) and a ``POST`` is never repeated after a server error
(it may have created the comment).

It never raises for API trouble and never fails the step: no pull request, a pull request from a
fork (its token is read-only) and a token without ``pull-requests: write`` (403 "Resource not
accessible by integration") are skipped with a ``::notice``; anything else is a ``::warning``.
The token is sent in the ``Authorization`` header only and never logged.

PyGithub is imported on first use, so importing :mod:`runner.github` stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from runner.engine import signals
from runner.github.commands import ActionsLog
from runner.github.summary import render_summary

if TYPE_CHECKING:
    from github.GithubRetry import GithubRetry
    from github.Issue import Issue
    from github.IssueComment import IssueComment
    from github.Repository import Repository

__all__ = [
    "COMMENT_MAX_CHARS",
    "ClientSettings",
    "comment_marker",
    "post_summary_comment",
    "render_comment",
]

#: GitHub rejects a longer comment body: "body is too long (maximum is 65536 characters)".
COMMENT_MAX_CHARS: Final = 65_536
DEFAULT_API_URL: Final = "https://api.github.com"
_TITLE: Final = "worktree-runner: pull-request comment"
_MARKER_RE: Final = re.compile(r"<!-- worktree-runner:v1 id=[0-9a-f]{16} -->")
_REPOSITORY_RE: Final = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_SHA_RE: Final = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SERVER_URL_RE: Final = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]*)?")
_PR_EVENTS_WITH_WRITE_TOKEN: Final = frozenset({"pull_request_target"})
_MIN_SECRET_CHARS: Final = 4
_MAX_REASON_CHARS: Final = 400


@dataclass(frozen=True)
class ClientSettings:
    """How the API client behaves; the defaults are for real use, tests shorten the waits."""

    timeout: int = 20  #: seconds per HTTP request
    per_page: int = 100  #: comments per page (GitHub's maximum)
    retries: int = 3  #: retries per request (rate limits, 5xx on idempotent requests)
    max_wait: float = 60.0  #: longest single rate-limit wait; a longer one gives up at once
    secondary_rate_wait: float = 60.0  #: wait after a secondary rate limit without a Retry-After
    backoff_factor: float = 1.0  #: exponential back-off for server errors (1, 2, 4 s …)
    seconds_between_requests: float | None = 0.25  #: PyGithub's throttle
    seconds_between_writes: float | None = 1.0  #: GitHub asks for >= 1 s between writes


class _Skip(Exception):
    """Nothing to comment on, or not allowed to: a notice, not a warning."""


@dataclass(frozen=True)
class _Target:
    """The pull request, from the event payload; ``number`` is None when it has to be looked
    up by the head branch (``workflow_run`` for a pull request from a fork)."""

    number: int | None
    head_sha: str | None
    head_owner: str | None = None
    head_branch: str | None = None
    run_id: int | None = None  # the run whose results these are, when not the current one


# --------------------------------------------------------------------------------------------
# Marker, body
# --------------------------------------------------------------------------------------------


def comment_marker(workflow: str, job: str) -> str:
    """The hidden first line that identifies this workflow and job's comment.

    Only a truncated SHA-256 of the names goes into it, so no untrusted text ends up inside an
    HTML comment (where ``-->`` would end it)."""
    digest = hashlib.sha256(f"{workflow}\0{job}".encode()).hexdigest()[:16]
    return f"<!-- worktree-runner:v1 id={digest} -->"


def render_comment(
    results: Mapping[str, Any],
    *,
    marker: str,
    title: str = "worktree-runner",
    footer: str = "",
    cancelled_run: bool = False,
    max_chars: int = COMMENT_MAX_CHARS,
) -> str:
    """``marker``, the summary and ``footer``, at most ``max_chars`` characters in all (counted
    as UTF-16 code units, never fewer than code points)."""
    if not _MARKER_RE.fullmatch(marker):
        raise ValueError(f"not a worktree-runner marker: {marker!r}")
    head = marker + "\n"
    budget = max_chars - _utf16_len(head) - _utf16_len(footer)
    summary = render_summary(results, title=title, cancelled_run=cancelled_run, max_chars=budget)
    return head + summary + footer


def _utf16_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-16-le", errors="surrogatepass")) // 2


def _footer(env: Mapping[str, str], repository: str, target: _Target) -> str:
    parts: list[str] = []
    server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    run_id = str(target.run_id) if target.run_id is not None else env.get("GITHUB_RUN_ID", "")
    if _SERVER_URL_RE.fullmatch(server) and run_id.isdigit():
        parts.append(f"[workflow run {run_id}]({server}/{repository}/actions/runs/{run_id})")
    if target.head_sha:
        parts.append(f"commit `{target.head_sha[:7]}`")
    parts.append("this comment is updated in place by every run")
    return "\n<sub>" + " · ".join(parts) + "</sub>\n"


def _title(env: Mapping[str, str]) -> str:
    workflow, job = env.get("GITHUB_WORKFLOW", ""), env.get("GITHUB_JOB", "")
    names = " / ".join(name for name in (workflow, job) if name)
    return f"worktree-runner — {names}" if names else "worktree-runner"


def _redact(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` with every secret replaced by ``***`` in every string (the runner masks the
    job summary, but nothing masks what is posted through the API)."""
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, "***")
        return value
    if isinstance(value, Mapping):
        return {key: _redact(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item, secrets) for item in value]
    return value


# --------------------------------------------------------------------------------------------
# Which pull request
# --------------------------------------------------------------------------------------------


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _sha(value: object) -> str | None:
    return value if isinstance(value, str) and _SHA_RE.fullmatch(value) else None


def _is_fork(pull: Mapping[str, Any], repository: str) -> bool:
    head_repo = _dict(pull.get("head")).get("repo")
    if not isinstance(head_repo, Mapping):
        return True  # the head repository was deleted: only happens to forks
    base_name = _dict(_dict(pull.get("base")).get("repo")).get("full_name") or repository
    return head_repo.get("full_name") != base_name


def _load_event(env: Mapping[str, str]) -> tuple[str, Mapping[str, Any]]:
    name = env.get("GITHUB_EVENT_NAME", "")
    path = env.get("GITHUB_EVENT_PATH", "")
    if not path:
        raise _Skip("no pull request: GITHUB_EVENT_PATH is not set")
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _Skip(f"the event payload cannot be read ({type(exc).__name__})") from None
    if not isinstance(payload, Mapping):
        raise _Skip("the event payload is not a JSON object")
    return name, payload


def _target_from_event(name: str, payload: Mapping[str, Any], repository: str) -> _Target:
    pull = payload.get("pull_request")
    if isinstance(pull, Mapping):  # pull_request, pull_request_target, pull_request_review…
        number = _number(pull.get("number"))
        if number is None:
            raise _Skip(f"the {name or 'event'} payload has no pull_request.number")
        if name not in _PR_EVENTS_WITH_WRITE_TOKEN and _is_fork(pull, repository):
            raise _Skip(
                f"pull request #{number} comes from a fork, whose token cannot write comments; "
                "the job summary has the results (see the README for the workflow_run pattern)"
            )
        return _Target(number, _sha(_dict(pull.get("head")).get("sha")))
    if name == "workflow_run":
        run = _dict(payload.get("workflow_run"))
        if run.get("event") not in ("pull_request", "pull_request_target"):
            raise _Skip(f"the workflow run was triggered by {run.get('event')!r}, not by a pull request")
        head_sha = _sha(run.get("head_sha"))
        pulls = [p for p in run.get("pull_requests") or [] if isinstance(p, Mapping)]
        same_head = [p for p in pulls if head_sha and _dict(p.get("head")).get("sha") == head_sha]
        for candidate in same_head or pulls:
            number = _number(candidate.get("number"))
            if number is not None:
                return _Target(number, head_sha, run_id=_number(run.get("id")))
        # Empty for pull requests from forks: find it by head branch and commit instead.
        owner = _dict(_dict(run.get("head_repository")).get("owner")).get("login")
        branch = run.get("head_branch")
        if not (head_sha and isinstance(owner, str) and owner and isinstance(branch, str) and branch):
            raise _Skip("the workflow_run payload names no pull request and no head branch")
        return _Target(None, head_sha, owner, branch, run_id=_number(run.get("id")))
    issue = payload.get("issue")
    if isinstance(issue, Mapping):  # issue_comment and the like
        number = _number(issue.get("number"))
        if number is None or not isinstance(issue.get("pull_request"), Mapping):
            raise _Skip(f"issue #{number} is not a pull request")
        return _Target(number, None)
    raise _Skip(f"no pull request in a {name or 'unknown'!s} event")


def _find_pull_by_head(repo: Repository, target: _Target) -> int:
    head = f"{target.head_owner}:{target.head_branch}"
    for pull in repo.get_pulls(state="open", head=head):
        if pull.head.sha == target.head_sha:
            return pull.number
    raise _Skip(f"no open pull request has head {head} at commit {target.head_sha}")


# --------------------------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------------------------


@cache
def _retry_class() -> type[GithubRetry]:
    """:class:`GithubRetry` with bounded waits and no risky repeats (built on first use)."""
    from github.GithubException import RateLimitExceededExceedsMaxWait
    from github.GithubRetry import GithubRetry
    from urllib3.response import BaseHTTPResponse

    class BoundedGithubRetry(GithubRetry):
        """Waits out a rate limit only up to ``max_rate_limit_wait`` seconds (each time).

        * 403 and 429 with ``Retry-After``, or with ``x-ratelimit-remaining: 0`` and
          ``x-ratelimit-reset``, wait that long; a 403 secondary rate limit without either waits
          ``secondary_rate_wait`` (GithubRetry's own logic, which also reads the message), and so
          does a bare 429;
        * a longer required wait raises :class:`RateLimitExceededExceedsMaxWait` at once;
        * ``POST`` is retried on 403/429 (the request was refused, nothing was created) but not
          on a 5xx or a read timeout, where the comment may exist already.
        """

        def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
            if method.upper() == "POST" and status_code in (403, 429):
                return bool(self.total)
            return bool(super().is_retry(method, status_code, has_retry_after))

        def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
            retry_after = super().get_retry_after(response)
            if retry_after is not None or response.status not in (403, 429):
                return retry_after
            reset = response.headers.get("x-ratelimit-reset", "")
            if response.headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
                return max(0.0, int(reset) - time.time()) + 1.0
            return float(self.secondary_rate_wait) if response.status == 429 else None

        def sleep_for_retry(self, response: BaseHTTPResponse) -> bool:
            wait = self.get_retry_after(response)
            if wait is None:
                return False
            limit = self.max_rate_limit_wait
            if limit is not None and wait > limit:
                message = (
                    f"rate limited: GitHub asks to wait {wait:.0f} s, more than the {limit:.0f} s allowed"
                )
                raise RateLimitExceededExceedsMaxWait(
                    response.status, {"message": message}, dict(response.headers.items()), wait=wait
                )
            if wait > 0:
                time.sleep(wait)
            return True

    return BoundedGithubRetry


def _make_retry(settings: ClientSettings) -> GithubRetry:
    from urllib3.util.retry import Retry

    return _retry_class()(
        total=settings.retries,
        backoff_factor=settings.backoff_factor,
        backoff_max=settings.max_wait,
        status_forcelist=[429, 500, 502, 503, 504],  # GithubRetry adds 403
        allowed_methods=Retry.DEFAULT_ALLOWED_METHODS | {"GET", "PATCH"},  # POST: see is_retry
        raise_on_status=False,  # hand the last answer to PyGithub: it says what went wrong
        secondary_rate_wait=settings.secondary_rate_wait,
        max_rate_limit_wait=settings.max_wait,
    )


def _upsert(issue: Issue, marker: str, body: str) -> tuple[str, IssueComment]:
    """Edit this workflow and job's comment (first line ``marker``), else create it.

    A comment by a bot (how ``GITHUB_TOKEN`` posts) wins over one by a user that merely starts
    with the marker; among equals the oldest wins, so later duplicates are never multiplied."""
    found: IssueComment | None = None
    for comment in issue.get_comments():
        if not (comment.body or "").lstrip().startswith(marker):
            continue
        if comment.user is not None and comment.user.type == "Bot":
            found = comment
            break
        if found is None:
            found = comment
    if found is None:
        return "created", issue.create_comment(body)
    found.edit(body)
    return "updated", found


def _api_reason(exc: Exception, settings: ClientSettings) -> tuple[bool, str]:
    """(skip rather than warn, why) for an exception from PyGithub or the network."""
    from github.GithubException import GithubException, RateLimitExceededExceedsMaxWait

    if isinstance(exc, RateLimitExceededExceedsMaxWait):
        wait = f"{exc.wait:.0f} s" if exc.wait is not None else "longer"
        return (
            False,
            f"rate limited: GitHub asks to wait {wait}; this action waits at most {settings.max_wait:.0f} s",
        )
    if not isinstance(exc, GithubException):
        return False, f"{type(exc).__name__}: {exc}"
    data = exc.data if isinstance(exc.data, Mapping) else {}
    message = str(data.get("message") or exc.message or "").strip()
    details = [
        str(e.get("message")) for e in data.get("errors") or [] if isinstance(e, Mapping) and e.get("message")
    ]
    if details:
        message = f"{message} ({'; '.join(details)})"
    if exc.status == 403 and "resource not accessible by integration" in message.lower():
        return True, (
            "the token may not write pull-request comments (403 Resource not accessible by integration); "
            "give the job `permissions: pull-requests: write`, or use the workflow_run pattern for forks"
        )
    if exc.status == 401:
        return False, f"the github-token was refused (401 {message or 'Bad credentials'})"
    if exc.status == 404:
        return False, "not found (404): the pull request does not exist or the token cannot see it"
    return False, f"GitHub answered {exc.status}: {message or 'no message'}"


def _shorten(text: str, secrets: tuple[str, ...]) -> str:
    text = " ".join(str(_redact(text, secrets)).split())
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 1] + "…"


def post_summary_comment(
    results: Mapping[str, Any],
    log: ActionsLog,
    *,
    token: str | None,
    env: Mapping[str, str] | None = None,
    cancelled_run: bool = False,
    settings: ClientSettings | None = None,
) -> str:
    """Post (or edit) the summary of ``results`` as this workflow and job's pull-request comment.

    Returns ``"created"``, ``"updated"``, ``"skipped: <why>"`` (also written as a ``::notice``)
    or ``"failed: <why>"`` (also written as a ``::warning``).  Never raises for API or network
    failures.  ``env`` defaults to :data:`os.environ`.
    """
    env = os.environ if env is None else env
    settings = settings or ClientSettings()
    secrets = tuple(
        s for s in {token or "", env.get("INPUT_OPENHANDS-API-KEY", "")} if len(s) >= _MIN_SECRET_CHARS
    )

    def skip(why: str) -> str:
        why = _shorten(why, secrets)
        log.notice(f"Pull-request comment skipped: {why}", title=_TITLE)
        return f"skipped: {why}"

    def fail(why: str) -> str:
        why = _shorten(why, secrets)
        log.warning(f"Pull-request comment not posted: {why}", title=_TITLE)
        return f"failed: {why}"

    if signals.first_signal() is not None:
        return skip("the step is being cancelled")
    repository = env.get("GITHUB_REPOSITORY", "")
    if not _REPOSITORY_RE.fullmatch(repository):
        return skip("GITHUB_REPOSITORY is not set (not running in GitHub Actions?)")
    try:
        target = _target_from_event(*_load_event(env), repository)
    except _Skip as exc:
        return skip(str(exc))
    if not token:
        return skip("the github-token input is empty")
    api_url = (env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
    if not api_url.startswith(("https://", "http://")):
        return fail("GITHUB_API_URL is not an http(s) URL")

    marker = comment_marker(env.get("GITHUB_WORKFLOW", ""), env.get("GITHUB_JOB", ""))
    body = render_comment(
        _redact(results, secrets), marker=marker, title=_title(env),
        footer=_footer(env, repository, target), cancelled_run=cancelled_run,
    )  # fmt: skip

    try:
        from github import Auth, Github
    except ImportError as exc:  # a broken installation: say so, keep the step
        return fail(f"PyGithub is not available ({exc})")
    client = Github(
        auth=Auth.Token(token),
        base_url=api_url,
        timeout=settings.timeout,
        per_page=settings.per_page,
        retry=_make_retry(settings),
        user_agent="worktree-runner",
        lazy=True,  # no GET of the repository or the issue: only the calls that matter
        seconds_between_requests=settings.seconds_between_requests,
        seconds_between_writes=settings.seconds_between_writes,
    )
    try:
        repo = client.get_repo(repository)
        number = target.number if target.number is not None else _find_pull_by_head(repo, target)
        outcome, comment = _upsert(repo.get_issue(number), marker, body)
    except _Skip as exc:
        return skip(str(exc))
    except Exception as exc:  # PyGithub, requests, urllib3: anything must end in a warning
        as_skip, why = _api_reason(exc, settings)
        return skip(why) if as_skip else fail(why)
    finally:
        client.close()
    url = comment.html_url if isinstance(comment.html_url, str) else ""
    shown = url if _SERVER_URL_RE.fullmatch(url.split("#", 1)[0]) else f"id {comment.id}"
    log.write(f"worktree-runner: pull-request comment {outcome} on #{number}: {shown}")
    return outcome
