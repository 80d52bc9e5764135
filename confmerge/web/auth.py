"""Who may use the server: one token, given as a Bearer header by scripts or traded for a session cookie.

Every route but the login answers 401 without it. A browser session is a
random id in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS) with its
own CSRF token, which every state-changing request made with the cookie must
carry (``X-CSRF-Token`` header or ``csrf`` form field); a Bearer request
carries no ambient authority and needs none.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

from aiohttp import web

from .errors import Problem
from .uploads import posted

COOKIE = "confmerge_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC = frozenset({"/login"})


def token_from_file(path: Path) -> str:
    """The token in ``path``; if there is no such file, a new random one written there with mode 0600.

    As ssh does with a key, a token file that others could read or change (not ours, or any group or other
    permission) is refused: anyone who can read it holds the server.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        token = secrets.token_urlsafe(32)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
        return token
    with os.fdopen(fd, "r", encoding="utf-8") as handle:
        found = os.fstat(handle.fileno())
        if found.st_uid != os.geteuid() or found.st_mode & 0o077:
            raise ValueError(f"{path}: others can read or change the token (mode {found.st_mode & 0o777:04o}, "
                             f"owner uid {found.st_uid}); chmod 600 it, as its owner")
        token = handle.read().strip()
    if len(token) < 16:
        raise ValueError(f"{path}: the token is shorter than 16 characters")
    return token


def same(given: str, expected: str) -> bool:
    """A constant-time comparison that takes any text a client sends (a header's undecodable bytes too)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


@dataclass
class Session:
    csrf: str
    expires: float


@dataclass
class Sessions:
    """The browser sessions of one server, in memory: a restart logs everybody out."""

    token: str
    lifetime: float = 12 * 3600
    sessions: dict[str, Session] = field(default_factory=dict)

    def valid_token(self, given: str) -> bool:
        return same(given, self.token)

    def open(self) -> tuple[str, Session]:
        now = time.monotonic()
        self.sessions = {key: s for key, s in self.sessions.items() if s.expires > now}
        key = secrets.token_urlsafe(32)
        session = Session(secrets.token_urlsafe(32), now + self.lifetime)
        self.sessions[key] = session
        return key, session

    def get(self, key: str | None) -> Session | None:
        session = self.sessions.get(key) if key else None
        if session is None or session.expires <= time.monotonic():
            return None
        return session

    def close(self, key: str | None) -> None:
        if key:
            self.sessions.pop(key, None)


SESSIONS = web.AppKey("sessions", Sessions)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 without the token or a session; 403 for a cookie request that changes state without its CSRF token."""
    sessions = request.app[SESSIONS]
    if request.path in PUBLIC:
        return await handler(request)
    token = bearer(request)
    if token is not None:
        if not sessions.valid_token(token):
            raise Unauthorized("the token is not valid")
        request["session"] = None
        return await handler(request)
    session = sessions.get(request.cookies.get(COOKIE))
    if session is None:
        raise Unauthorized("log in first: a Bearer token, or a session from /login")
    request["session"] = session
    if request.method not in SAFE_METHODS:
        await require_csrf(request, session)
    return await handler(request)


async def require_csrf(request: web.Request, session: Session) -> None:
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise Problem(403, "cross-origin request refused")
    given = request.headers.get("X-CSRF-Token")
    if given is None and request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        value = (await posted(request)).get("csrf")
        given = value if isinstance(value, str) else None
    if given is None or not same(given, session.csrf):
        raise Problem(403, "missing or wrong CSRF token (reload the page)")


class Unauthorized(Problem):
    def __init__(self, why: str) -> None:
        super().__init__(401, why)
        self.headers["WWW-Authenticate"] = 'Bearer realm="confmerge"'


def set_session(response: web.StreamResponse, key: str, secure: bool) -> None:
    response.set_cookie(COOKIE, key, httponly=True, secure=secure, samesite="Strict", path="/")


def clear_session(response: web.StreamResponse, secure: bool) -> None:
    response.del_cookie(COOKIE, path="/", secure=secure, httponly=True, samesite="Strict")
