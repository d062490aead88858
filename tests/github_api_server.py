"""A stand-in for the GitHub REST API on 127.0.0.1, for the pull-request comment tests.

A stdlib ``ThreadingHTTPServer`` in a background thread that follows the real endpoints, status
codes, headers and JSON shapes (docs.github.com: "REST API endpoints for issue comments",
"... for pull requests", "Rate limits for the REST API", "Using pagination in the REST API") for
the calls PyGithub makes when it lists, creates and edits issue comments:

* ``GET /repos/{owner}/{repo}``, ``GET .../issues/{n}``, ``GET .../pulls/{n}``, ``GET .../pulls``
  (``state``, ``head=owner:branch``, ``base``);
* ``GET .../issues/{n}/comments`` with ``per_page`` (default 30, at most 100), ``page`` and a
  ``Link`` header (``rel="next"``, ``"last"``, ``"first"``, ``"prev"``) holding absolute URLs;
* ``POST .../issues/{n}/comments`` (201 with ``Location``), ``GET``/``PATCH
  .../issues/comments/{id}``; a body over 65,536 characters is 422 "body is too long".

Authentication is ``Authorization: token <t>`` or ``Bearer <t>``: unknown tokens get 401 "Bad
credentials", tokens registered as read-only get 403 "Resource not accessible by integration" on
writes (what ``GITHUB_TOKEN`` answers without ``pull-requests: write``).  Faults (secondary and
primary rate limits, server errors) are injected per method and path.  The whole API can be served
under a prefix (GitHub Enterprise Server: ``http://host/api/v3``).  Every request is recorded.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

MAX_COMMENT_CHARS = 65_536
BOT_LOGIN = "github-actions[bot]"
SECONDARY_RATE_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you "
    "reach out to GitHub Support for help, please include the request ID 0000:1111:2222:3333."
)
_DOCS = "https://docs.github.com/rest"


@dataclass
class RecordedRequest:
    method: str
    path: str  # as sent, prefix and query included
    route: str  # without the prefix and the query
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None

    @property
    def authorization(self) -> str:
        return self.headers.get("authorization", "")


@dataclass
class Fault:
    method: str
    route: re.Pattern[str]
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int


@dataclass
class _Comment:
    id: int
    issue: int
    body: str
    login: str
    user_type: str
    created_at: str
    updated_at: str


@dataclass
class _Pull:
    number: int
    head_sha: str
    head_ref: str
    head_repo: str | None  # full name; None: the fork was deleted
    state: str = "open"


@dataclass
class _TokenInfo:
    access: str  # "write" or "read"
    login: str
    user_type: str


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _user(login: str, user_type: str, api: str, web: str) -> dict[str, Any]:
    uid = 41898282 if user_type == "Bot" else 1000 + sum(map(ord, login))
    return {
        "login": login,
        "id": uid,
        "node_id": f"MDQ6VXNlcj{uid}",
        "avatar_url": f"https://avatars.example.invalid/u/{uid}?v=4",
        "gravatar_id": "",
        "url": f"{api}/users/{login}",
        "html_url": f"{web}/{login}",
        "type": user_type,
        "site_admin": False,
    }


@dataclass
class FakeGitHub:
    """The API's state, its faults and the request log; :meth:`serve` runs it."""

    owner: str = "octo-org"
    repo: str = "demo"
    prefix: str = ""  # "/api/v3" for GitHub Enterprise Server
    tokens: dict[str, _TokenInfo] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    port: int = 0
    _comments: dict[int, _Comment] = field(default_factory=dict)
    _pulls: dict[int, _Pull] = field(default_factory=dict)
    _faults: list[Fault] = field(default_factory=list)
    _next_id: int = 1_000_000
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # ---- setup -----------------------------------------------------------------------------

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_token(self, token: str, *, access: str = "write", login: str = BOT_LOGIN) -> None:
        self.tokens[token] = _TokenInfo(access, login, "Bot" if login.endswith("[bot]") else "User")

    def add_pull(
        self,
        number: int,
        *,
        head_sha: str = "a" * 40,
        head_ref: str = "feature",
        head_repo: str | None = None,
    ) -> None:
        self._pulls[number] = _Pull(number, head_sha, head_ref, head_repo or self.full_name)

    def add_comment(self, issue: int, body: str, *, login: str = "octocat", user_type: str = "User") -> int:
        with self._lock:
            self._next_id += 1
            stamp = _now()
            self._comments[self._next_id] = _Comment(
                self._next_id, issue, body, login, user_type, stamp, stamp
            )
            return self._next_id

    def comments(self, issue: int) -> list[dict[str, Any]]:
        """The issue's comments as the API returns them (ascending id)."""
        with self._lock:
            return [self._comment_json(c) for c in sorted(self._comments.values(), key=lambda c: c.id)
                    if c.issue == issue]  # fmt: skip

    def fail(
        self,
        method: str,
        route: str,
        status: int,
        *,
        message: str,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests whose route fully matches the regex ``route``."""
        body = {"message": message, "documentation_url": _DOCS, "status": str(status)}
        self._faults.append(Fault(method, re.compile(route), status, body, dict(headers or {}), times))

    def secondary_rate_limit(
        self, method: str, route: str, *, retry_after: int | None, times: int = 1
    ) -> None:
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        self.fail(method, route, 403, message=SECONDARY_RATE_LIMIT_MESSAGE, headers=headers, times=times)

    def primary_rate_limit(self, method: str, route: str, *, reset_in: int, times: int = 1) -> None:
        headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + reset_in)}
        message = "API rate limit exceeded for installation ID 1234."
        self.fail(method, route, 403, message=message, headers=headers, times=times)

    def made(self, method: str, route_regex: str) -> list[RecordedRequest]:
        pattern = re.compile(route_regex)
        return [r for r in self.requests if r.method == method and pattern.fullmatch(r.route)]

    # ---- JSON shapes -----------------------------------------------------------------------

    def _repo_json(self) -> dict[str, Any]:
        api, web = self.api_url, self.web_url
        return {
            "id": 4242,
            "node_id": "R_kgDOdemo",
            "name": self.repo,
            "full_name": self.full_name,
            "private": False,
            "owner": _user(self.owner, "Organization", api, web),
            "html_url": f"{web}/{self.full_name}",
            "url": f"{api}/repos/{self.full_name}",
            "issues_url": f"{api}/repos/{self.full_name}/issues{{/number}}",
            "pulls_url": f"{api}/repos/{self.full_name}/pulls{{/number}}",
            "default_branch": "main",
            "fork": False,
        }

    def _comment_json(self, c: _Comment) -> dict[str, Any]:
        api, web = self.api_url, self.web_url
        bot = c.user_type == "Bot"
        return {
            "id": c.id,
            "node_id": f"IC_kwDOdemo{c.id}",
            "url": f"{api}/repos/{self.full_name}/issues/comments/{c.id}",
            "html_url": f"{web}/{self.full_name}/pull/{c.issue}#issuecomment-{c.id}",
            "body": c.body,
            "user": _user(c.login, c.user_type, api, web),
            "created_at": c.created_at,
            "updated_at": c.updated_at,
            "issue_url": f"{api}/repos/{self.full_name}/issues/{c.issue}",
            "author_association": "NONE" if bot else "CONTRIBUTOR",
            "performed_via_github_app": {"id": 15368, "slug": "github-actions", "name": "GitHub Actions"}
            if bot
            else None,
            "reactions": {"url": f"{api}/repos/{self.full_name}/issues/comments/{c.id}/reactions",
                          "total_count": 0, "+1": 0, "-1": 0, "laugh": 0, "hooray": 0, "confused": 0,
                          "heart": 0, "rocket": 0, "eyes": 0},
        }  # fmt: skip

    def _branch_json(self, label_owner: str, ref: str, sha: str, repo: str | None) -> dict[str, Any]:
        api, web = self.api_url, self.web_url
        repo_json = None
        if repo is not None:
            owner, name = repo.split("/", 1)
            repo_json = {"full_name": repo, "name": name, "owner": _user(owner, "User", api, web),
                         "fork": repo != self.full_name, "url": f"{api}/repos/{repo}"}  # fmt: skip
        return {"label": f"{label_owner}:{ref}", "ref": ref, "sha": sha, "repo": repo_json,
                "user": _user(label_owner, "User", api, web)}  # fmt: skip

    def _pull_json(self, p: _Pull) -> dict[str, Any]:
        api, web = self.api_url, self.web_url
        head_owner = (p.head_repo or "ghost/x").split("/", 1)[0]
        return {
            "url": f"{api}/repos/{self.full_name}/pulls/{p.number}",
            "id": 70000 + p.number,
            "node_id": f"PR_kwDOdemo{p.number}",
            "html_url": f"{web}/{self.full_name}/pull/{p.number}",
            "issue_url": f"{api}/repos/{self.full_name}/issues/{p.number}",
            "comments_url": f"{api}/repos/{self.full_name}/issues/{p.number}/comments",
            "number": p.number,
            "state": p.state,
            "title": f"Pull request {p.number}",
            "user": _user(head_owner, "User", api, web),
            "head": self._branch_json(head_owner, p.head_ref, p.head_sha, p.head_repo),
            "base": self._branch_json(self.owner, "main", "b" * 40, self.full_name),
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        }

    def _issue_json(self, p: _Pull) -> dict[str, Any]:
        api, web = self.api_url, self.web_url
        return {
            "url": f"{api}/repos/{self.full_name}/issues/{p.number}",
            "repository_url": f"{api}/repos/{self.full_name}",
            "comments_url": f"{api}/repos/{self.full_name}/issues/{p.number}/comments",
            "html_url": f"{web}/{self.full_name}/pull/{p.number}",
            "id": 80000 + p.number,
            "node_id": f"PR_kwDOdemo{p.number}",
            "number": p.number,
            "title": f"Pull request {p.number}",
            "state": p.state,
            "comments": sum(1 for c in self._comments.values() if c.issue == p.number),
            "user": _user((p.head_repo or "ghost/x").split("/", 1)[0], "User", api, web),
            "pull_request": {
                "url": f"{api}/repos/{self.full_name}/pulls/{p.number}",
                "html_url": f"{web}/{self.full_name}/pull/{p.number}",
                "diff_url": f"{web}/{self.full_name}/pull/{p.number}.diff",
                "patch_url": f"{web}/{self.full_name}/pull/{p.number}.patch",
            },
        }

    # ---- request handling ------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: Mapping[str, str], raw_body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        route = parts.path
        body: Any = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body = raw_body.decode("utf-8", "replace")
        if self.prefix and route.startswith(self.prefix + "/"):
            route = route[len(self.prefix) :]
        elif self.prefix:
            route = "/__outside_prefix__" + route
        with self._lock:
            self.requests.append(RecordedRequest(method, raw_path, route, query, dict(headers), body))
            for fault in self._faults:
                if fault.times > 0 and fault.method == method and fault.route.fullmatch(route):
                    fault.times -= 1
                    return fault.status, fault.headers, fault.body
            return self._route(method, route, query, headers, body)

    def _error(self, status: int, message: str, **extra: Any) -> tuple[int, dict[str, str], Any]:
        return status, {}, {"message": message, "documentation_url": _DOCS, "status": str(status), **extra}

    def _route(
        self, method: str, route: str, query: Mapping[str, str], headers: Mapping[str, str], body: Any
    ) -> tuple[int, dict[str, str], Any]:
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        info = self.tokens.get(token) if scheme.lower() in ("token", "bearer") else None
        if info is None:
            return self._error(401, "Bad credentials")
        base = f"/repos/{self.full_name}"
        if not (route == base or route.startswith(base + "/")):
            return self._error(404, "Not Found")
        rest = route[len(base) :]
        if method == "GET" and rest == "":
            return 200, {}, self._repo_json()
        if method == "GET" and rest == "/pulls":
            return self._list_pulls(route, query)
        match = re.fullmatch(r"/(issues|pulls)/(\d+)", rest)
        if method == "GET" and match:
            pull = self._pulls.get(int(match.group(2)))
            if pull is None:
                return self._error(404, "Not Found")
            return 200, {}, self._issue_json(pull) if match.group(1) == "issues" else self._pull_json(pull)
        match = re.fullmatch(r"/issues/(\d+)/comments", rest)
        if match:
            number = int(match.group(1))
            if number not in self._pulls:
                return self._error(404, "Not Found")
            if method == "GET":
                return self._paginate(route, query, self.comments(number))
            if method == "POST":
                if info.access != "write":
                    return self._error(403, "Resource not accessible by integration")
                invalid = self._invalid_body(body)
                if invalid:
                    return invalid
                comment_id = self.add_comment(
                    number, body["body"], login=info.login, user_type=info.user_type
                )
                data = self._comment_json(self._comments[comment_id])
                return 201, {"location": data["url"]}, data
        match = re.fullmatch(r"/issues/comments/(\d+)", rest)
        if match:
            comment = self._comments.get(int(match.group(1)))
            if comment is None:
                return self._error(404, "Not Found")
            if method == "GET":
                return 200, {}, self._comment_json(comment)
            if method == "PATCH":
                if info.access != "write":
                    return self._error(403, "Resource not accessible by integration")
                invalid = self._invalid_body(body)
                if invalid:
                    return invalid
                comment.body = body["body"]
                comment.updated_at = _now()
                return 200, {}, self._comment_json(comment)
        return self._error(404, "Not Found")

    def _invalid_body(self, body: Any) -> tuple[int, dict[str, str], Any] | None:
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            return self._error(422, 'Invalid request.\n\n"body" wasn\'t supplied.')
        if len(body["body"]) > MAX_COMMENT_CHARS:
            error = {"resource": "IssueComment", "code": "custom", "field": "body",
                     "message": f"body is too long (maximum is {MAX_COMMENT_CHARS} characters)"}  # fmt: skip
            return self._error(422, "Validation Failed", errors=[error])
        return None

    def _list_pulls(self, route: str, query: Mapping[str, str]) -> tuple[int, dict[str, str], Any]:
        state = query.get("state", "open")
        head = query.get("head")
        pulls = []
        for pull in sorted(self._pulls.values(), key=lambda p: -p.number):  # newest first, like GitHub
            if state != "all" and pull.state != state:
                continue
            if head is not None:
                owner, _, ref = head.partition(":")
                head_owner = (pull.head_repo or "").split("/", 1)[0]
                if not ref or owner != head_owner or ref != pull.head_ref:
                    continue
            pulls.append(self._pull_json(pull))
        return self._paginate(route, query, pulls)

    def _paginate(
        self, route: str, query: Mapping[str, str], items: list[dict[str, Any]]
    ) -> tuple[int, dict[str, str], Any]:
        try:
            per_page = max(1, min(100, int(query.get("per_page", "30"))))
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            return self._error(422, "Invalid request.")
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        others = {k: v for k, v in query.items() if k not in ("page", "per_page")}

        def link(n: int) -> str:
            return f"<{self.api_url}{route}?{urlencode({'per_page': per_page, **others, 'page': n})}>"

        rels = []
        if page > 1:
            rels += [f'{link(page - 1)}; rel="prev"']
        if page < last:
            rels += [f'{link(page + 1)}; rel="next"', f'{link(last)}; rel="last"']
        if page > 1:
            rels += [f'{link(1)}; rel="first"']
        return 200, ({"link": ", ".join(rels)} if rels else {}), chunk

    # ---- serving ---------------------------------------------------------------------------

    @contextmanager
    def serve(self) -> Iterator[FakeGitHub]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as PyGithub's connection pool expects

            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra, data = api.handle(self.command, self.path, headers, raw)
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json; charset=utf-8")
                self.send_header("content-length", str(len(payload)))
                self.send_header("x-github-media-type", "github.v3; format=json")
                self.send_header("x-github-api-version-selected", "2022-11-28")
                self.send_header("x-github-request-id", f"0000:{len(api.requests):04d}")
                lower = {k.lower() for k in extra}
                if "x-ratelimit-remaining" not in lower:
                    self.send_header("x-ratelimit-limit", "5000")
                    self.send_header("x-ratelimit-remaining", "4999")
                    self.send_header("x-ratelimit-reset", str(int(time.time()) + 3600))
                    self.send_header("x-ratelimit-used", "1")
                    self.send_header("x-ratelimit-resource", "core")
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-github", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
