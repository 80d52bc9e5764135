"""Who may use the server: a token (or, on a cluster, a system password), as a Bearer header or traded for a session.

Every route but the login answers 401 without it. A browser session is a
random id in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS) with its
own CSRF token, which every state-changing request made with the cookie must
carry (``X-CSRF-Token`` header or ``csrf`` form field); a Bearer request
carries no ambient authority and needs none. Who is asking is an
:class:`Identity` with a role: a read-only one may look at everything and
change nothing (403); failed logins are limited per address (429).
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Protocol

from aiohttp import web

from .errors import Problem
from .uploads import posted

COOKIE = "confmerge_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC = frozenset({"/login"})
ADMIN, READ_ONLY = "admin", "read-only"
ROLES = (ADMIN, READ_ONLY)
PURE = ("/compare", "/check", "/merge", "/merges", "/api/v1/check", "/api/v1/diff", "/api/v1/merges", "/logout")
"""Paths whose POST/PATCH compute and change nothing kept (compare, check, merge drafts, log out): any role may."""


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


@dataclass(frozen=True, slots=True)
class Identity:
    """Who made a request: ``who`` for the audit log, ``role`` (admin or read-only), ``token``: the API token's name."""

    who: str
    role: str
    token: str | None = None


class Authority(Protocol):
    """Who may log in: tokens, and (where ``passwords``) system users."""

    @property
    def token(self) -> str: ...

    @property
    def passwords(self) -> bool: ...

    def identify(self, token: str) -> Identity | None: ...

    def current(self, identity: Identity) -> bool: ...

    async def password(self, user: str, password: str) -> Identity | None: ...


@dataclass
class OneToken:
    """``confmerge serve``'s authority: one token, the admin."""

    token: str
    passwords: bool = False

    def identify(self, token: str) -> Identity | None:
        return Identity("the token", ADMIN) if same(token, self.token) else None

    def current(self, identity: Identity) -> bool:
        return True

    async def password(self, user: str, password: str) -> Identity | None:
        return None


@dataclass
class Session:
    csrf: str
    expires: float
    identity: Identity = Identity("the token", ADMIN)


@dataclass
class Sessions:
    """The browser sessions of one server, in memory: a restart logs everybody out."""

    authority: Authority
    lifetime: float = 12 * 3600
    sessions: dict[str, Session] = field(default_factory=dict)

    @property
    def token(self) -> str:
        return self.authority.token

    def identify(self, given: str) -> Identity | None:
        return self.authority.identify(given)

    def valid_token(self, given: str) -> bool:
        return self.identify(given) is not None

    def open(self, identity: Identity = Identity("the token", ADMIN)) -> tuple[str, Session]:
        now = time.monotonic()
        self.sessions = {key: s for key, s in self.sessions.items() if s.expires > now}
        key = secrets.token_urlsafe(32)
        session = Session(secrets.token_urlsafe(32), now + self.lifetime, identity)
        self.sessions[key] = session
        return key, session

    def get(self, key: str | None) -> Session | None:
        """The session of ``key``; none once it expired or its token was revoked (the session ends with it)."""
        session = self.sessions.get(key) if key else None
        if session is None or session.expires <= time.monotonic():
            return None
        if not self.authority.current(session.identity):
            self.close(key)
            return None
        return session

    def close(self, key: str | None) -> None:
        if key:
            self.sessions.pop(key, None)


@dataclass
class Throttle:
    """Failed logins per source address: ``limit`` in ``window`` seconds, then refused until the oldest ages out."""

    limit: int = 5
    window: float = 60.0
    failures: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, address: str) -> deque[float]:
        now = time.monotonic()
        times = self.failures.setdefault(address, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self.failures[address]
        return times

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None when it may now."""
        times = self._recent(address)
        if len(times) < self.limit:
            return None
        return max(1, int(times[0] + self.window - time.monotonic() + 0.999))

    def succeeded(self, address: str) -> None:
        """The attempt :meth:`failed` counted was a login after all."""
        times = self.failures.get(address)
        if times:
            times.pop()
            if not times:
                del self.failures[address]

    def failed(self, address: str) -> None:
        self._recent(address)
        self.failures.setdefault(address, deque()).append(time.monotonic())
        if len(self.failures) > 10000:
            self.failures.pop(next(iter(self.failures)))


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
        identity = sessions.identify(token)
        if identity is None:
            raise Unauthorized("the token is not valid")
        request["session"], request["identity"] = None, identity
        return await handler(request)
    session = sessions.get(request.cookies.get(COOKIE))
    if session is None:
        raise Unauthorized("log in first: a Bearer token, or a session from /login")
    request["session"], request["identity"] = session, session.identity
    if request.method not in SAFE_METHODS:
        await require_csrf(request, session)
    return await handler(request)


def changes(request: web.Request) -> bool:
    """A request that changes something kept: any method but GET/HEAD/OPTIONS, outside :data:`PURE`."""
    path = request.path
    return request.method not in SAFE_METHODS and not any(path == p or path.startswith(p + "/") for p in PURE)


@web.middleware
async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A change needs the admin role: a read-only identity gets 403."""
    identity = request.get("identity")
    if identity is not None and identity.role != ADMIN and changes(request):
        raise Problem(403, f"{identity.who} is read-only: {request.method} {request.path} needs the admin role")
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
