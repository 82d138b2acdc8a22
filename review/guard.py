"""Who may use the review page, and which requests may change state.

- On a loopback address the page serves this machine only; its Host header must name that
  address, so a foreign site that rebinds its DNS name to 127.0.0.1 is still refused. On ports
  80 and 443 the name alone is accepted too: browsers leave a default port out of Host.
- On any other address a token is required (``--token``, SOUNDTAG_REVIEW_TOKEN). A first visit
  with ``?token=T`` opens a session: a random id in an HttpOnly, SameSite=Strict cookie, never
  the token itself (browsers send a host's cookies to all its ports, so any other service on the
  host would receive it). The cookie is named for the port: a person signed in to two review
  servers of one host (a team's page and an adjudication) keeps both sessions; scripts may send the token in the ``X-Soundtag-Token`` header instead.
- With a team defined (``soundtag reviewers``), each person signs in with their own token:
  ``?token=T`` checks it once (a scrypt hash) and opens a session that remembers who they are;
  every later request reads again whether they are still in the team (a primary-key read), so a
  removed person's open page is refused from its next request. Only sessions sign a person in
  then, never a header, so no request but the first pays for a hash. A ``viewer`` may look and
  listen; any other method is refused.
- A POST must come from the page itself: ``Sec-Fetch-Site`` and ``Origin``, when the browser
  sends them, must say same origin, and the ``X-Soundtag-CSRF`` header must carry the token the
  page was served with. A cross-site form can send neither that header nor its value.
- A request body over ``BODY_LIMIT`` is answered 413 before it is read, or as soon as the bytes
  read pass the limit when its length is not declared.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from urllib.parse import urlencode

from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from db.reviewers import Reviewer, signed_in, still_in
from soundtag.errors import ConfigError
from soundtag.states import Role

COOKIE = "soundtag_review"
TOKEN_HEADER = "x-soundtag-token"
CSRF_HEADER = "x-soundtag-csrf"
SAFE_METHODS = {"GET", "HEAD"}
DEFAULT_PORTS = {80, 443}
# A verdict is a few dozen bytes; nothing the page posts comes near this.
BODY_LIMIT = 64 * 1024


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None, team: bool = False) -> None:
    """Raise ConfigError when the page would be served beyond this machine without a token (a
    team's people have theirs)."""
    if not is_loopback(host) and not token and not team:
        raise ConfigError(f"review: --host {host} serves the page to other machines; give --token T "
                          "(or SOUNDTAG_REVIEW_TOKEN), or keep the default --host 127.0.0.1")


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class Guard:
    """Checks every request before the page handles it (``guard.check(request)`` returns the
    refusal, or None). With ``team`` (the engine of a database whose ``reviewer`` table names
    people), a request let through carries its person as ``request.state.reviewer``."""

    def __init__(self, host: str, port: int, token: str | None, team: Engine | None = None) -> None:
        self.token, self.team = token, team
        self.cookie = f"{COOKIE}_{port}"
        self.csrf = secrets.token_urlsafe(32)
        self.sessions: set[str] = set()
        self.people: dict[str, int] = {}  # a team's sessions: the random id, then whose it is
        # Without a token only the loopback names of this port reach the page (DNS rebinding).
        names = {"127.0.0.1", "localhost", "[::1]", host}
        with_port = {f"{name}:{port}" for name in names}
        self.hosts = None if token or team is not None else with_port | (names if port in DEFAULT_PORTS else set())

    def check(self, request: Request) -> Response | None:
        host = request.headers.get("host", "")
        if self.hosts is not None and host not in self.hosts:
            return PlainTextResponse(f"review: unknown host {host!r}", status_code=403)
        if self.team is not None:
            return self._person(request, host)
        if self.token:
            query_token = request.query_params.get("token")
            if query_token is not None:
                if not _same(query_token, self.token):
                    return PlainTextResponse("review: wrong token", status_code=401)
                session, response = _signed_in(request, self.cookie)
                self.sessions.add(session)
                return response
            if not (request.cookies.get(self.cookie) in self.sessions
                    or _same(request.headers.get(TOKEN_HEADER), self.token)):
                return PlainTextResponse("review: a token is required: open the address `soundtag review` printed, "
                                         "with ?token=", status_code=401)
        if request.method not in SAFE_METHODS:
            return self._forgery(request, host)
        return None

    def _person(self, request: Request, host: str) -> Response | None:
        query_token = request.query_params.get("token")
        if query_token is not None:
            person = signed_in(self.team, query_token)
            if person is None:
                return PlainTextResponse("review: unknown token; ask for yours (`soundtag reviewers add`)",
                                         status_code=401)
            session, response = _signed_in(request, self.cookie)
            self.people[session] = person.id
            return response
        session = request.cookies.get(self.cookie)
        person_id = self.people.get(session) if session is not None else None
        person: Reviewer | None = still_in(self.team, person_id) if person_id is not None else None
        if person is None:
            if person_id is not None:
                self.people.pop(session, None)
                return PlainTextResponse("review: you are no longer in the team", status_code=401)
            return PlainTextResponse("review: sign in: open the address with ?token=YOUR_TOKEN "
                                     "(`soundtag reviewers add` printed it)", status_code=401)
        request.state.reviewer = person
        if request.method not in SAFE_METHODS:
            if person.role == Role.VIEWER:
                return PlainTextResponse(f"review: {person.name} is a viewer: verdicts are refused",
                                         status_code=403)
            return self._forgery(request, host)
        return None

    def _forgery(self, request: Request, host: str) -> Response | None:
        site = request.headers.get("sec-fetch-site")
        origin = request.headers.get("origin")
        if site is not None and site != "same-origin":
            return PlainTextResponse(f"review: refused a {site} request", status_code=403)
        if origin is not None and origin != f"{request.url.scheme}://{host}":
            return PlainTextResponse("review: refused a request from another origin", status_code=403)
        if not _same(request.headers.get(CSRF_HEADER), self.csrf):
            return PlainTextResponse("review: missing or wrong X-Soundtag-CSRF header", status_code=403)
        return None


def _signed_in(request: Request, cookie: str) -> tuple[str, Response]:
    """A new session's id, and the answer that sets it and sends the browser to the same address
    without the token."""
    rest = {k: v for k, v in request.query_params.items() if k != "token"}
    # One leading slash: a browser reads "//evil.example/x" (or "/\\evil.example/x") as another site.
    path = "/" + request.url.path.lstrip("/\\")
    response = RedirectResponse(path + (f"?{urlencode(rest)}" if rest else ""), 303)
    session = secrets.token_urlsafe(32)
    response.set_cookie(cookie, session, httponly=True, samesite="strict")
    return session, response


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413, by its declared
    Content-Length before a byte is read, else as soon as the bytes read pass the limit. A body
    within it is read here and handed on whole (the page's bodies are a few dozen bytes)."""

    def __init__(self, app: ASGIApp, limit: int = BODY_LIMIT) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or len(declared) > 18 or int(declared) > self.limit:
            return await self._refuse(scope, receive, send)
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                return await self._refuse(scope, receive, send)
            more = message.get("more_body", False)
        given = False

        async def replay() -> Message:
            nonlocal given
            if given:
                return await receive()  # what follows a body: the client leaving
            given = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse(f"review: request body over {self.limit} bytes", 413)(scope, receive, send)
