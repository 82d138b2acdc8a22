"""Who may use the review page, and which requests may change state.

- On a loopback address the page serves this machine only; its Host header must name that
  address, so a foreign site that rebinds its DNS name to 127.0.0.1 is still refused. On ports
  80 and 443 the name alone is accepted too: browsers leave a default port out of Host.
- On any other address a token is required (``--token``, SOUNDTAG_REVIEW_TOKEN). A first visit
  with ``?token=T`` opens a session: a random id in an HttpOnly, SameSite=Strict cookie, never
  the token itself (browsers send a host's cookies to all its ports, so any other service on the
  host would receive it); scripts may send the token in the ``X-Soundtag-Token`` header instead.
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

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from soundtag.errors import ConfigError

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


def check_exposure(host: str, token: str | None) -> None:
    """Raise ConfigError when the page would be served beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise ConfigError(f"review: --host {host} serves the page to other machines; give --token T "
                          "(or SOUNDTAG_REVIEW_TOKEN), or keep the default --host 127.0.0.1")


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class Guard:
    """Checks every request before the page handles it (``await guard.check(request)`` returns
    the refusal, or None)."""

    def __init__(self, host: str, port: int, token: str | None) -> None:
        self.token = token
        self.csrf = secrets.token_urlsafe(32)
        self.sessions: set[str] = set()
        # Without a token only the loopback names of this port reach the page (DNS rebinding).
        names = {"127.0.0.1", "localhost", "[::1]", host}
        with_port = {f"{name}:{port}" for name in names}
        self.hosts = None if token else with_port | (names if port in DEFAULT_PORTS else set())

    def check(self, request: Request) -> Response | None:
        host = request.headers.get("host", "")
        if self.hosts is not None and host not in self.hosts:
            return PlainTextResponse(f"review: unknown host {host!r}", status_code=403)
        if self.token:
            query_token = request.query_params.get("token")
            if query_token is not None:
                if not _same(query_token, self.token):
                    return PlainTextResponse("review: wrong token", status_code=401)
                rest = {k: v for k, v in request.query_params.items() if k != "token"}
                # One leading slash: a browser reads "//evil.example/x" (or "/\evil.example/x") as another site.
                path = "/" + request.url.path.lstrip("/\\")
                response = RedirectResponse(path + (f"?{urlencode(rest)}" if rest else ""), 303)
                session = secrets.token_urlsafe(32)
                self.sessions.add(session)
                response.set_cookie(COOKIE, session, httponly=True, samesite="strict")
                return response
            if not (request.cookies.get(COOKIE) in self.sessions
                    or _same(request.headers.get(TOKEN_HEADER), self.token)):
                return PlainTextResponse("review: a token is required: open the address `soundtag review` printed, "
                                         "with ?token=", status_code=401)
        if request.method not in SAFE_METHODS:
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
