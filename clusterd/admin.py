"""The local socket ``state-dir/clusterd.sock`` (mode 0600): ``status``, ``reload``, ``sync``, ``diff`` and the safe changes for the CLI."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, Callable

from confmerge import ConfError

from .changes import Changes
from .core import Core
from .links import LinkDown, PeerLink
from .membership import Role
from .primary import Primary
from .protocol import MAX_FRAME, BadMessage, Diff, Fetch, Message, Reload, Status, Sync, read_frame
from .protocol import Compare, Confirm, Generations, Load, Rollback, Show
from .protocol import Board as BoardRequest, Throughput
from .protocol import Update
from .status import status
from .throughput import DAY_MINUTES, Board, ServerInfo
from .updates import Updates


READ_TIMEOUT = 10.0
"""Seconds a local client has to send its request (the CLI sends it at once)."""


class Admin:
    def __init__(self, core: Core, primary: Primary, links: dict[int, PeerLink],
                 reload: Callable[[], dict[str, Any]], changes: Changes | None = None,
                 board: Board | None = None, updates: Updates | None = None) -> None:
        self.updates = updates
        self.core = core
        self.changes = changes
        self.board = board or Board(core.config.id)
        self.primary = primary
        self.links = links
        self.reload = reload

    async def start(self) -> asyncio.AbstractServer:
        path = self.core.config.socket
        path.unlink(missing_ok=True)
        old = os.umask(0o177)
        try:
            server = await asyncio.start_unix_server(self.serve, str(path), limit=MAX_FRAME)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        return server

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request, one reply; a client that says nothing for :data:`READ_TIMEOUT` s, or leaves, is let go quietly."""
        try:
            try:
                async with asyncio.timeout(READ_TIMEOUT):
                    request = await read_frame(reader)
            except TimeoutError:
                return
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            except BadMessage as error:
                reply: dict[str, Any] = {"ok": False, "error": f"bad request: {error}"}
            else:
                reply = await self.answer(request)
            if writer.is_closing():
                return
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def answer(self, request: Message) -> dict[str, Any]:
        if isinstance(request, Status):
            return {"ok": True, "status": self.status()}
        if isinstance(request, Update) and self.updates is not None:
            return await self.updates.local(request)
        if isinstance(request, Reload):
            return self.reload()
        if isinstance(request, Sync):
            return await self.force_sync()
        if isinstance(request, Diff):
            return await self.cluster_diff(request.peer)
        if isinstance(request, (Generations, Show, Compare, Load, Confirm, Rollback)) and self.changes is not None:
            return await self.changes.local(request)
        if isinstance(request, Throughput):
            return await self.throughput(request.server, request.seconds)
        return {"ok": False, "error": f"{request.type} is not a local request"}

    def status(self) -> dict[str, Any]:
        data = status(self.core, self.primary.pushes, {i: link.problem for i, link in self.links.items()})
        if self.updates is not None:
            data["update"] = self.updates.status()
        return data

    async def throughput(self, server: int | None, seconds: int, points: int | None = None) -> dict[str, Any]:
        """Every server's throughput (or one's) over the last ``seconds``.

        From the rings this server keeps; on a secondary of a sparse cluster,
        which hears only from its primary and neighbours, as the primary
        holds them (every server sends its samples there), and from its own
        rings when the primary cannot be asked.
        """
        config = self.core.config
        ids = sorted([config.id, *(p.id for p in config.peers)])
        if server is not None and server not in ids:
            return {"ok": False, "error": f"server {server} is not in the cluster (servers: {', '.join(map(str, ids))})"}
        if not 1 <= seconds <= DAY_MINUTES * 60:
            return {"ok": False, "error": f"seconds must be between 1 and {DAY_MINUTES * 60} (a day), not {seconds}"}
        held = await self._primary_board(server, seconds)
        if held is None:  # in a thread: an hour of 256 servers is a million samples, and heartbeats must not wait
            held = await asyncio.to_thread(self.held, server, seconds, points)
        return {"ok": True, "throughput": held["throughput"]}

    async def boxes(self) -> dict[int, dict[str, Any]]:
        """Each server's current throughput and what it says of itself (the home page's boxes), as :meth:`throughput`."""
        held = await self._primary_board(None, 1) or self.held(None, 1)
        return {int(k): v for k, v in held["info"].items()}

    def held(self, server: int | None, seconds: int, points: int | None = None) -> dict[str, Any]:
        """What this server's board holds: the series (``points`` per server at most), and each server's current
        throughput and description."""
        config = self.core.config
        ids = sorted([config.id, *(p.id for p in config.peers)]) if server is None else [server]
        up = {config.id: True} | {i: view.up for i, view in self.core.membership.peers.items()}
        info = {}
        for i in ids:
            about = self.board.info.get(i) or ServerInfo()
            info[str(i)] = {"hostname": about.hostname, "version": about.version, "web": about.web,
                            "problem": about.problem or None, "throughput": self.board.current(i, up.get(i, False))}
        return {"throughput": self.board.series(ids, seconds, up, points=points), "info": info}

    async def _primary_board(self, server: int | None, seconds: int) -> dict[str, Any] | None:
        membership, me = self.core.membership, self.core.config.id
        link = self.links.get(membership.primary) if membership.primary is not None else None
        if not membership.sparse or membership.primary == me or link is None or not link.up:
            return None
        try:
            reply = await link.request(BoardRequest(rid=0, server=server, seconds=seconds), timeout=2.0)
        except (LinkDown, TimeoutError):
            return None
        body = reply.body if reply.ok and isinstance(reply.body, dict) else {}
        if not isinstance(body.get("throughput"), dict) or not isinstance(body.get("info"), dict):
            return None
        for entry in body["throughput"].get("servers", []):
            if isinstance(entry, dict):
                entry["this"] = entry.get("id") == me
        return body

    async def force_sync(self) -> dict[str, Any]:
        """``clusterd sync`` on the primary: a new generation from its backup, sent to everyone at once."""
        core = self.core
        if core.role() is not Role.PRIMARY:
            return {"ok": False, "error": f"this server is not the primary; run clusterd sync on server "
                                          f"{core.membership.primary}"}
        async with core.backup_lock:
            await core.refresh_live(force=True)
            if core.live is None:
                return {"ok": False, "error": core.live_error}
            generation = core.record_edit(force=True)
        self.primary.retry_all()
        return {"ok": True, "generation": generation.number if generation else core.head.number}

    async def backup_text(self, server: int) -> str:
        """A server's whole live backup (this one's, or a peer's over its link): :class:`LinkDown` if it cannot be had.

        A diff of it is scoped to cluster-wide content and keeps its real line numbers.
        """
        core = self.core
        if server == core.config.id:
            await core.refresh_live(force=True)
            if core.live is None:
                raise LinkDown(core.live_error or "no live backup")
            return core.live.text
        link = self.links.get(server)
        if link is None:
            raise LinkDown(f"server {server} is not a peer")
        reply = await link.request(Fetch(rid=0), timeout=30)
        if not reply.ok or not isinstance(reply.body.get("text"), str):
            raise LinkDown(reply.error or "no text in the reply")
        return str(reply.body["text"])

    async def cluster_diff(self, peer_id: int | None) -> dict[str, Any]:
        """What each server's cluster-wide sections would gain or lose from the cluster's configuration."""
        from confmerge import Scope, diff, diff_text, parse

        core = self.core
        backup_text = self.backup_text
        primary = core.membership.primary
        if primary is None:
            return {"ok": False, "error": "no primary: the cluster is not ready"}
        targets = [peer_id] if peer_id is not None else [s for s in [core.config.id, *self.links] if s != primary]
        try:
            cluster = parse(await backup_text(primary), f"cluster (server {primary}'s backup)")
            out = []
            for target in sorted(targets):
                result = diff(parse(await backup_text(target), f"server {target}'s backup"), cluster, Scope.CLUSTER)
                out.append({"server": target, "differences": len(result.changes),
                            "text": diff_text(result) if result else "no difference\n"})
        except (LinkDown, ConfError) as error:
            return {"ok": False, "error": str(error)}
        return {"ok": True, "primary": primary, "diffs": out}
