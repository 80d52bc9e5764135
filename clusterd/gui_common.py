"""What the cluster's pages share: the daemon as the web application sees it, the page frame, the audit line."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import asyncssh
from aiohttp import web

from confmerge.web import page

from .admin import Admin
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
NAV = (("/throughput", "Throughput"), ("/cluster", "Cluster"), ("/backups", "Backups"),
       ("/tools", "Compare · Merge · Check"), ("/updates", "Software update"))


def daemon_of(request: web.Request) -> Daemon:
    daemon: Daemon = request.app[DAEMON]
    return daemon


def csrf_of(request: web.Request) -> str:
    session = request.get("session")
    return session.csrf if session is not None else ""


def frame(request: web.Request, title: str, body: str) -> web.Response:
    daemon = daemon_of(request)
    text = page(f"{title} · server {daemon.config.id}", body, csrf_of(request), links=NAV,
                      scripts=("/static/cluster.js",))
    return web.Response(text=text, content_type="text/html")


def audit(request: web.Request, what: str) -> None:
    """Every change made through the GUI or API, in the daemon's events (status shows them) and its log."""
    who = "a browser session" if request.get("session") is not None else "the API token"
    daemon_of(request).core.events.add(f"web: {what} (by {who} from {request.remote})")
