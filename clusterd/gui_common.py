"""What the cluster's pages share: the daemon as the web application sees it, the page frame, the audit log."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, Protocol

import asyncssh
from aiohttp import web

from confmerge.web import READ_ONLY, Problem, changes, compare_page, page

from .admin import Admin
from .audit import AuditLog, Entry
from .changes import Changes
from .config import ClusterConfig
from .core import Core
from .throughput import Board
from .updates import Updates


class Daemon(Protocol):
    """What the web application needs of the daemon that runs it (:class:`clusterd.daemon.Daemon`)."""

    @property
    def config(self) -> ClusterConfig: ...

    core: Core
    admin: Admin
    changes: Changes
    board: Board
    updates: Updates
    key: asyncssh.SSHKey
    stopping: asyncio.Event


DAEMON: web.AppKey[Any] = web.AppKey("daemon")
AUDIT = web.AppKey("audit log", AuditLog)
NAV = (("/throughput", "Throughput"), ("/cluster", "Cluster"), ("/backups", "Backups"),
       ("/tools", "Compare · Merge · Check"), ("/updates", "Software update"), ("/admin", "Administration"))
READ_ONLY_STYLE = ('<style>main button:not(.look), main form, main .actions:not(.look) {display: none !important}</style>'
                   '<p class="warn-note" id="read-only">You are logged in read-only: you can look, not change.</p>')
"""What a read-only session sees in place of the change buttons (the server refuses the changes anyway: 403);
a button of class ``look`` only shows something and stays."""


def daemon_of(request: web.Request) -> Daemon:
    daemon: Daemon = request.app[DAEMON]
    return daemon


def csrf_of(request: web.Request) -> str:
    session = request.get("session")
    return session.csrf if session is not None else ""


def frame(request: web.Request, title: str, body: str) -> web.Response:
    daemon = daemon_of(request)
    identity = request.get("identity")
    if identity is not None and identity.role == READ_ONLY:
        body = READ_ONLY_STYLE + body
    text = page(f"{title} · server {daemon.config.id}", body, csrf_of(request), links=NAV,
                      scripts=("/static/cluster.js",))
    return web.Response(text=text, content_type="text/html")


def titled_compare(request: web.Request, result: Any, old: str, new: str, head: str) -> web.Response:
    """Part 1's compare page of ``result`` (old text against new) with ``head`` (a card saying what is compared) on top."""
    text = compare_page(result, old.splitlines(), new.splitlines(), csrf_of(request))
    return web.Response(text=text.replace("<main>", f"<main>{head}", 1), content_type="text/html")


def audit(request: web.Request, what: str) -> None:
    """A change done: in the daemon's events (status shows them), and as the ``what`` of its audit log line."""
    identity = request.get("identity")
    who = identity.who if identity is not None else "?"
    request["audit"] = what
    daemon_of(request).core.events.add(f"web: {what} (by {who} from {request.remote})")


@web.middleware
async def record(request: web.Request,
                 handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Every change asked (done or refused) as a line of the audit log, written before the answer goes out."""
    identity = request.get("identity")
    if identity is None or not changes(request):  # the login: nobody yet, nothing changed
        return await handler(request)
    status, result = 500, "internal error"
    try:
        response = await handler(request)
        status, result = response.status, "done"
        return response
    except Problem as problem:
        status, result = problem.status, problem.message
        raise
    except web.HTTPException as error:
        status, result = error.status, "done" if error.status < 400 else error.reason
        raise
    finally:
        what = request.get("audit") or f"{request.method} {request.path}"
        entry = Entry(identity.who, identity.role, time.time(), what, request.remote or "", status, result)
        await asyncio.to_thread(request.app[AUDIT].append, entry)
