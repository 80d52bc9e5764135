"""The run loop: the control port, the local socket, and sync driven by the election.

Control traffic is SSH on ``address:port-base+id``: this server's node key is
its host key, and a peer logs in as its id with its own key, which must be
the one recorded in the cluster file. Inside, one channel per direction
carries :mod:`clusterd.protocol` frames: this server's heartbeats and
requests go out over the link it opened to each peer, and the peer's come in
over the link the peer opened. Nothing listens on any other address.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import os
import re
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Coroutine

import asyncssh

from confmerge import ConfError

from . import config as config_module
from . import keys, sshserver, transfer
from .config import ClusterConfig, Peer
from .links import LinkDown, PeerLink
from .membership import Membership, PeerView, Role
from .protocol import MAX_FRAME, BadMessage, OversizedFrame, encode, read_frame
from .sync import (
    NONE, Generation, Snapshot, Store, SyncError, SyncState, apply_generation, file_stamp, merge_edit,
    next_generation, snapshot, write_backup,
)

log = logging.getLogger("clusterd")

_NAME = re.compile(r"^generation-\d+-\d+\.conf$")


# ---------------------------------------------------------------------------
# Incoming: the control port


class _ControlServer(sshserver.KeyOnlyServer):
    """Accepts a login only as a peer's id with that peer's recorded key."""

    def __init__(self, daemon: "Daemon") -> None:
        self.daemon = daemon
        self.peer_id: int | None = None
        self.address = "?"

    def connection_made(self, connection: asyncssh.SSHServerConnection) -> None:
        peer = connection.get_extra_info("peername")
        self.address = peer[0] if peer else "?"

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        peer = self.daemon.config.peer(int(username)) if username.isdigit() else None
        if peer is not None and peer.key is not None and keys.same_key(keys.parse_public_key(peer.key), key):
            self.peer_id = peer.id
            return True
        log.warning("refused a control login from %s as %r with key %s: not a trusted peer",
                    self.address, username, key.get_fingerprint("sha256"))
        return False


# ---------------------------------------------------------------------------
# The daemon


@dataclass(slots=True)
class PushState:
    """The primary's record of copying generations to one secondary."""

    running: bool = False
    failures: int = 0
    retry_at: float = 0.0
    error: str | None = None
    confirmed: Generation | None = None
    confirmed_at: float = 0.0
    sent_bytes: int = 0


@dataclass(slots=True)
class Events:
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=50))

    def add(self, text: str) -> None:
        log.info("%s", text)
        self.lines.append(f"{time.strftime('%H:%M:%S')} {text}")


class Daemon:
    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.key = keys.load_or_create(config.identity)
        self.store = Store(config.state_dir)
        self.store.clear_inbox()
        self.generation = self.store.forget_uncommitted()
        self.generation_text = self.store.text(self.generation.number) if self.generation != NONE else None
        now = time.monotonic()
        self.membership = Membership.start(
            config.id, [p.id for p in config.peers], config.timing.detection, config.timing.hold, now,
            epoch=self._saved_epoch(),
        )
        self.membership.generation = self.generation.number
        self.started = now
        self.links: dict[int, PeerLink] = {}
        self.incoming: dict[int, object] = {}
        self.request_ids = itertools.count(1)
        self.events = Events()
        self.live: Snapshot | None = None
        self.live_error: str | None = None
        self._live_stat: tuple[int, int] | None = None
        self._last_full_check = now
        self.pushes: dict[int, PushState] = {}
        self.sent_digest: str | None = None
        self.edit_in_flight = False
        self.apply_error: str | None = None
        self.applying = False
        self.conflicts: deque[dict[str, Any]] = deque(maxlen=20)
        self.sync_lock = asyncio.Lock()
        self._live_lock = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.restart = False
        self._servers: list[Any] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._epoch_saved = self.membership.epoch

    # -- lifecycle ------------------------------------------------------

    async def run(self) -> bool:
        """Serve until stopped; True if a reload asked for a restart (a new id or address)."""
        config = self.config
        self._servers.append(await asyncssh.create_server(
            lambda: _ControlServer(self), config.address, config.control_port,
            server_host_keys=[self.key], process_factory=self._serve_channel, encoding=None,
            allow_scp=False, allow_pty=False, agent_forwarding=False, x11_forwarding=False,
            sftp_factory=None, reuse_address=True, line_editor=False,
        ))
        if config.ssh.serve:
            host_key = keys.load_or_create(config.state_dir / "ssh_host_key")
            self._servers.append(await sshserver.start(
                config.address, config.ssh_port, host_key,
                lambda: [keys.parse_public_key(p.key) for p in self.config.peers if p.key],
                area=self.store.inbox, user=config.ssh.user,
            ))
        self._servers.append(await self._start_socket())
        for peer in config.peers:
            self.links[peer.id] = PeerLink(self, peer)
        self.events.add(f"server {config.id} listening on {config.address}:{config.control_port}"
                        + (f", SFTP on {config.address}:{config.ssh_port}" if config.ssh.serve else ""))
        await self.refresh_live(force=True)
        ticker = asyncio.create_task(self._tick_forever())
        try:
            await self.stopping.wait()
        finally:
            ticker.cancel()
            for link in self.links.values():
                link.stop()
            for server in self._servers:
                server.close()
            self.config.socket.unlink(missing_ok=True)
        return self.restart

    def stop(self) -> None:
        self.stopping.set()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run a coroutine in the background, holding a reference (the event loop keeps only weak ones)."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_socket(self) -> asyncio.AbstractServer:
        path = self.config.socket
        path.unlink(missing_ok=True)
        old = os.umask(0o177)
        try:
            server = await asyncio.start_unix_server(self._serve_local, str(path), limit=MAX_FRAME)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        return server

    def _saved_epoch(self) -> int:
        try:
            return int(json.loads((self.config.state_dir / "epoch.json").read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def _save_epoch(self) -> None:
        if self.membership.epoch != self._epoch_saved:
            from confmerge import write_atomic

            write_atomic(self.config.state_dir / "epoch.json", json.dumps({"epoch": self.membership.epoch}) + "\n")
            self._epoch_saved = self.membership.epoch

    # -- membership -----------------------------------------------------

    def role(self) -> Role:
        return self.membership.role(time.monotonic())

    def heartbeat(self) -> dict[str, Any]:
        m = self.membership
        return {
            "type": "heartbeat", "id": self.config.id, "epoch": m.epoch, "primary": m.primary,
            "uptime": round(time.monotonic() - self.started, 3), "sees": sorted(m.up),
            "generation": self.generation.number, "digest": self.live.digest if self.live else "",
            "state": self.own_state().value, "edit": self.edit_pending(), "inbox": str(self.store.inbox),
        }

    def nudge(self) -> None:
        for link in self.links.values():
            link.wake.set()

    def _settle(self, changed: bool) -> None:
        """After any observation: run the election, log what happened, tell peers at once if the view changed."""
        before = (self.membership.epoch, self.membership.primary)
        self.membership.evaluate(time.monotonic())
        for line in self.membership.drain_log():
            self.events.add(line)
        if changed or (self.membership.epoch, self.membership.primary) != before:
            self._save_epoch()
            self.nudge()

    async def _tick_forever(self) -> None:
        while True:
            try:
                self._settle(self.membership.expire(time.monotonic()))
                if not self.applying:
                    await self.refresh_live()
                if self.role() is Role.PRIMARY:
                    self._primary_sync()
                elif self.role() is Role.SECONDARY:
                    self._secondary_sync()
            except Exception:  # a bug here must not stop heartbeats; it is logged with its traceback
                log.exception("tick failed")
            await asyncio.sleep(min(self.config.timing.heartbeat / 2, 0.1))

    async def _serve_channel(self, process: asyncssh.SSHServerProcess) -> None:
        owner = process.get_extra_info("connection").get_owner()
        peer_id = owner.peer_id
        token = object()
        self.incoming[peer_id] = token
        try:
            while True:
                try:
                    message = await read_frame(process.stdin)
                except OversizedFrame as error:
                    log.warning("server %d: %s; closing its channel", peer_id, error)
                    return
                except BadMessage as error:
                    log.warning("server %d: dropped a message: %s", peer_id, error)
                    continue
                kind = message["type"]
                if kind == "heartbeat":
                    if message["id"] != peer_id:
                        log.warning("server %d sent a heartbeat as server %d; dropped", peer_id, message["id"])
                        continue
                    self._settle(self.membership.heartbeat(message, time.monotonic()))
                elif kind in ("apply", "edit", "fetch"):
                    self.spawn(self._answer(message, peer_id, process.stdout))
                else:
                    log.warning("server %d: dropped a %s message on the control channel", peer_id, kind)
        except (asyncio.IncompleteReadError, asyncssh.Error, ConnectionError, BrokenPipeError):
            pass
        finally:
            if self.incoming.get(peer_id) is token:
                del self.incoming[peer_id]
                self._settle(self.membership.lost(peer_id, time.monotonic()))
            process.exit(0)

    async def _answer(self, message: dict[str, Any], peer_id: int, out: asyncssh.SSHWriter) -> None:
        handler = {"apply": self._on_apply, "edit": self._on_edit, "fetch": self._on_fetch}[message["type"]]
        try:
            reply = await handler(message, peer_id)
        except Exception as error:  # the requester gets the reason; the daemon goes on
            log.exception("%s from server %d failed", message["type"], peer_id)
            reply = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        try:
            out.write(encode({"type": "reply", "rid": message["rid"], **reply}))
        except (BadMessage, OSError, asyncssh.Error) as error:
            log.warning("could not answer server %d: %s", peer_id, error)

    # -- the live backup ------------------------------------------------

    async def refresh_live(self, force: bool = False, known: tuple[Snapshot, tuple[int, int]] | None = None) -> None:
        """Re-read the live backup when it changed (size and mtime), and fully every drift interval.

        Parsing runs in a thread (a 100,000-line backup takes about a second,
        which must not hold up heartbeats), one read at a time, so a slow
        read of an older file never overwrites a newer one. ``known`` is the
        backup as the daemon itself just wrote it, with the stamp of that write.
        """
        async with self._live_lock:
            now = time.monotonic()
            if now - self._last_full_check >= self.config.timing.drift:
                force, self._last_full_check = True, now
            if known is not None:
                self.live, self._live_stat = known
                self.live_error = None
                self.nudge()
                return
            try:
                key = file_stamp(self.config.backup.stat())
            except OSError as error:
                self._live_problem(f"cannot read the live backup {self.config.backup}: {error.strerror}")
                return
            if not force and key == self._live_stat:
                return
            self._live_stat = key
            try:
                live = await asyncio.to_thread(snapshot, self.config.backup)
            except ConfError as error:
                self._live_problem(f"the live backup is not valid: {error.diagnostics[0]}")
                return
            if self.live is None or live.digest != self.live.digest:
                self.nudge()
            self.live, self.live_error = live, None

    def _live_problem(self, text: str) -> None:
        if text != self.live_error:
            self.events.add(text)
        self.live_error = text

    # -- sync: the primary ---------------------------------------------

    def _primary_sync(self) -> None:
        if self.live is None:
            return
        if self.live.digest != self.generation.digest or self.membership.newest_generation() > self.generation.number:
            self._new_generation()
        text = self.generation_text
        if text is None:
            return
        now = time.monotonic()
        for peer in self.config.peers:
            view = self.membership.peers.get(peer.id)
            if view is None or not view.up or not view.inbox:
                continue
            push = self.pushes.setdefault(peer.id, PushState())
            if push.running or now < push.retry_at or view.edit:
                continue
            if view.generation == self.generation.number and view.digest == self.generation.digest:
                continue
            confirmed = push.confirmed == self.generation and now - push.confirmed_at < self.config.timing.detection
            if confirmed:
                continue
            push.running = True
            self.spawn(self._push(peer, self.generation, text, view.inbox))

    def _new_generation(self) -> None:
        assert self.live is not None
        lone = not self.config.peers
        generation = next_generation(self.generation, self.membership.newest_generation(),
                                     self.membership.epoch, self.live)
        self.store.save(generation, self.live.cluster, committed=lone)
        self.generation, self.generation_text = generation, self.live.cluster
        self.membership.generation = generation.number
        self.events.add(f"generation {generation.number} (epoch {generation.epoch}, sha256 {generation.sha256[:12]})")
        self.nudge()

    async def _push(self, peer: Peer, generation: Generation, text: str, inbox: str) -> None:
        push = self.pushes[peer.id]
        config = self.config
        target = transfer.Target(peer.address, peer.ssh_port, config.ssh.user, config.identity, config.known_hosts)
        name = f"generation-{generation.number}-{generation.epoch}.conf"
        started = time.monotonic()
        try:
            push.sent_bytes = await transfer.push(target, inbox, name, text.encode("utf-8"))
            copied = time.monotonic()
            link = self.links.get(peer.id)
            if link is None:
                raise LinkDown(f"server {peer.id} is no longer a peer")
            reply = await link.request({
                "type": "apply", "epoch": self.membership.epoch, "generation": generation.number,
                "generation_epoch": generation.epoch, "sha256": generation.sha256, "digest": generation.digest,
                "name": name,
            })
            if not reply["ok"]:
                raise SyncError(str(reply.get("error", "refused")))
            if (reply.get("sha256"), reply.get("digest")) != (generation.sha256, generation.digest):
                raise SyncError(f"server {peer.id} confirmed sha256 {str(reply.get('sha256'))[:12]} and digest "
                                f"{str(reply.get('digest'))[:12]}, not generation {generation.number}'s")
            push.confirmed, push.confirmed_at = generation, time.monotonic()
            push.failures, push.error = 0, None
            current, committed = self.store.current()
            if current == generation and not committed:
                self.store.commit(generation, True)
            done = time.monotonic()
            self.events.add(f"server {peer.id} applied generation {generation.number}"
                            + ("" if reply.get("written") else " (its backup already held it)")
                            + f" in {done - started:.2f} s (copy {copied - started:.2f} s, {push.sent_bytes} bytes)")
        except (transfer.TransferError, SyncError, LinkDown) as error:
            push.failures += 1
            push.retry_at = time.monotonic() + min(0.5 * 2 ** push.failures, config.timing.drift)
            reason = str(error)
            if reason != push.error:
                self.events.add(f"sync to server {peer.id} failed: {reason}")
            push.error = reason
        finally:
            push.running = False

    async def _on_edit(self, message: dict[str, Any], sender: int) -> dict[str, Any]:
        if self.role() is not Role.PRIMARY:
            return {"ok": False, "error": f"server {self.config.id} is not the primary"}
        async with self.sync_lock:
            await self.refresh_live(force=True)
            if self.live is None:
                return {"ok": False, "error": self.live_error or "the primary's backup is unreadable"}
            base = self.store.generation(message["base"])
            same_base = base is not None and base.epoch == message["base_epoch"]
            base_text = self.store.text(message["base"]) if same_base else None
            live = self.live
            try:
                outcome = await asyncio.to_thread(merge_edit, live, message["text"], base_text, self.config.backup,
                                                  sender)
            except SyncError as error:
                self.events.add(str(error))
                return {"ok": False, "error": str(error)}
            conflicts = [{"section": c.section, "statement": c.statement, "primary": c.values[0],
                          "edit": c.values[1], "chosen": c.chosen} for c in outcome.conflicts]
            for conflict in conflicts:
                self.conflicts.append({"from": sender, **conflict})
                self.events.add(f"conflict with server {sender}'s edit in {conflict['section']}"
                                f"{' / ' + conflict['statement'] if conflict['statement'] else ''}: "
                                f"kept the primary's {conflict['chosen']!r}, not {conflict['edit']!r}")
            if outcome.changed:
                upcoming = next_generation(self.generation, self.membership.newest_generation(),
                                           self.membership.epoch, live)
                try:
                    await asyncio.to_thread(write_backup, self.store, self.config.backup, live.text, outcome.text,
                                            self.config.apply_command, upcoming)
                except SyncError as error:
                    return {"ok": False, "error": f"the primary could not apply the merged edit: {error}"}
            await self.refresh_live(force=True)
            if self.live is not None and self.live.digest != self.generation.digest:
                self._new_generation()
            how = "three-way" if outcome.three_way else "as a union (its base generation is no longer kept)"
            self.events.add(f"merged an edit from server {sender} {how}: generation {self.generation.number}"
                            + (f", {len(conflicts)} conflict(s)" if conflicts else ""))
            return {"ok": True, "generation": self.generation.number, "conflicts": conflicts}

    async def _on_fetch(self, message: dict[str, Any], sender: int) -> dict[str, Any]:
        await self.refresh_live(force=True)
        if self.live is None:
            return {"ok": False, "error": self.live_error or "no live backup"}
        return {"ok": True, "text": self.live.text, "digest": self.live.digest,
                "generation": self.generation.number}

    # -- sync: a secondary ---------------------------------------------

    def local_edit(self) -> bool:
        """The live backup's cluster-wide content differs from the generation held: an edit made here."""
        return (self.live is not None and self.generation != NONE and self.live.digest != self.generation.digest)

    def edit_pending(self) -> bool:
        """A local edit the primary has not taken yet."""
        return self.local_edit() and self.live is not None and self.live.digest != self.sent_digest

    def _secondary_sync(self) -> None:
        primary = self.membership.primary
        if not self.local_edit() or self.edit_in_flight or primary is None or self.applying:
            return
        assert self.live is not None
        if self.live.digest == self.sent_digest or primary not in self.links:
            return
        view = self.membership.peers.get(primary)
        if view is None or not view.up:
            return
        self.edit_in_flight = True
        self.spawn(self._send_edit(self.links[primary], self.live))

    async def _send_edit(self, link: PeerLink, live: Snapshot) -> None:
        try:
            reply = await link.request({"type": "edit", "base": self.generation.number,
                                        "base_epoch": self.generation.epoch, "text": live.cluster})
            if reply["ok"]:
                self.sent_digest = live.digest
                conflicts = reply.get("conflicts") or []
                self.events.add(f"edit sent to primary {link.peer.id}: generation {reply.get('generation')}"
                                + (f"; {len(conflicts)} conflict(s) resolved to the primary's values" if conflicts else ""))
                for conflict in conflicts:
                    self.conflicts.append({"from": self.config.id, **conflict})
            else:
                self.events.add(f"primary {link.peer.id} did not take this server's edit: {reply.get('error')}")
        except LinkDown as error:
            self.events.add(f"edit not sent: {error}; will retry")
        finally:
            self.edit_in_flight = False

    async def _on_apply(self, message: dict[str, Any], sender: int) -> dict[str, Any]:
        m = self.membership
        if not m.accepts(message["epoch"]):
            m.log.append(f"refused: server {sender} sent a generation as primary of epoch {message['epoch']}, "
                         f"the cluster is in epoch {m.epoch}")
            self._settle(False)
            return {"ok": False, "error": f"stale epoch {message['epoch']} (this server knows {m.epoch})"}
        if message["epoch"] > m.epoch or (message["epoch"] == m.epoch and m.primary is None):
            m.epoch, m.primary = message["epoch"], sender
            self._settle(True)
        elif m.primary != sender:
            return {"ok": False, "error": f"server {m.primary} is the primary of epoch {m.epoch}, not server {sender}"}
        name = message["name"]
        if not _NAME.match(name):
            return {"ok": False, "error": f"bad file name {name!r}"}
        path = self.store.inbox / name
        async with self.sync_lock:
            await self.refresh_live()
            if self.edit_pending():
                path.unlink(missing_ok=True)
                return {"ok": False, "error": "a local edit is on its way to the primary; it goes first"}
            generation = Generation(message["generation"], message["generation_epoch"], message["sha256"],
                                    message["digest"])
            self.applying = True
            try:
                text = path.read_bytes().decode("utf-8")
                applied = await asyncio.to_thread(apply_generation, self.store, self.config.backup, text, generation,
                                                  self.config.apply_command, self.live)
            except (SyncError, OSError, UnicodeDecodeError) as error:
                reason = str(error) if isinstance(error, SyncError) else f"cannot read the transferred file: {error}"
                self.apply_error = reason
                self.events.add(f"generation {generation.number} not applied: {reason}")
                return {"ok": False, "error": reason}
            finally:
                self.applying = False
                path.unlink(missing_ok=True)
            self.generation, self.generation_text = applied.generation, text
            self.apply_error, self.sent_digest = None, None
            m.generation = applied.generation.number
            await self.refresh_live(known=(applied.live, applied.stamp))
            self.events.add(f"applied generation {generation.number} from server {sender}"
                            + ("" if applied.written else " (the backup already held it)"))
            self.nudge()
            return {"ok": True, "written": applied.written, "sha256": applied.generation.sha256,
                    "digest": applied.live.digest}

    # -- status ---------------------------------------------------------

    def own_state(self) -> SyncState:
        if self.applying:
            return SyncState.SYNCING
        if self.apply_error:
            return SyncState.SYNC_FAILED
        if self.membership.primary == self.config.id:
            return SyncState.IN_SYNC
        if self.generation == NONE:
            return SyncState.AWAITING_INITIAL_SYNC
        if self.local_edit():
            return SyncState.CHANGES_PENDING
        primary = self.membership.peers.get(self.membership.primary) if self.membership.primary is not None else None
        if primary is not None and primary.up and (primary.generation, primary.digest) != (
                self.generation.number, self.live.digest if self.live else ""):
            return SyncState.CHANGES_PENDING
        return SyncState.IN_SYNC

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        m = self.membership
        primary_up = m.primary is not None and m.primary in m.up
        servers = [{
            "id": self.config.id, "address": self.config.address, "role": self.role().value, "up": True,
            "this": True, "last_heartbeat": 0.0, "generation": self.generation.number,
            "digest": self.live.digest if self.live else "", "sync": self.own_state().value,
            "error": self.apply_error or self.live_error,
        }]
        for peer in self.config.peers:
            view = m.peers.get(peer.id)
            up = bool(view and view.up)
            push = self.pushes.get(peer.id)
            state = SyncState(view.state) if view and view.state in SyncState._value2member_map_ else None
            error = None
            if not up:
                state = SyncState.DISCONNECTED
            elif self.role() is Role.PRIMARY and push is not None and view is not None:
                if push.running:
                    state = SyncState.SYNCING
                elif push.error:
                    state, error = SyncState.SYNC_FAILED, push.error
                elif view.generation != self.generation.number or view.digest != self.generation.digest:
                    state = state if state is not SyncState.IN_SYNC else SyncState.CHANGES_PENDING
            servers.append({
                "id": peer.id, "address": peer.address, "this": False,
                "role": ("primary" if m.primary == peer.id else "secondary") if up else "down",
                "up": up, "last_heartbeat": round(now - view.last, 2) if view and view.last > -math.inf else None,
                "generation": view.generation if view else 0, "digest": view.digest if view else "",
                "sync": (state or SyncState.DISCONNECTED).value, "error": error,
                "trusted": peer.key is not None, "ssh_port": peer.ssh_port, "inbox": view.inbox if view else "",
            })
        ready = primary_up and self.role() is not Role.JOINING
        complete = ready and all(s["up"] and s["sync"] == SyncState.IN_SYNC for s in servers)
        return {
            "server": self.config.id, "epoch": m.epoch, "primary": m.primary if primary_up else None,
            "state": "ready" if ready else "not ready", "status": "complete" if complete else "incomplete",
            "generation": {"number": self.generation.number, "epoch": self.generation.epoch,
                           "sha256": self.generation.sha256, "digest": self.generation.digest},
            "servers": sorted(servers, key=lambda s: s["id"]),
            "conflicts": list(self.conflicts), "events": list(self.events.lines)[-15:],
        }

    # -- the local socket -----------------------------------------------

    async def _serve_local(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await read_frame(reader)
            kind = request["type"]
            if kind == "status":
                reply = {"ok": True, "status": self.status()}
            elif kind == "reload":
                reply = self.reload()
            elif kind == "sync":
                reply = await self.force_sync()
            elif kind == "diff":
                reply = await self.cluster_diff(request["peer"])
            else:
                reply = {"ok": False, "error": f"{kind} is not a local request"}
        except (BadMessage, asyncio.IncompleteReadError) as error:
            reply = {"ok": False, "error": f"bad request: {error}"}
        writer.write(json.dumps(reply).encode() + b"\n")
        try:
            await writer.drain()
        finally:
            writer.close()

    def reload(self) -> dict[str, Any]:
        try:
            fresh = config_module.load(self.config.path)
        except ConfError as error:
            return {"ok": False, "error": "\n".join(map(str, error.diagnostics))}
        old = self.config
        if (fresh.id, fresh.address, fresh.port_base, fresh.ssh_port, fresh.ssh.serve, fresh.state_dir) != (
                old.id, old.address, old.port_base, old.ssh_port, old.ssh.serve, old.state_dir):
            self.events.add(f"reload: this server is now {fresh.id} on {fresh.address}; restarting the daemon")
            self.config, self.restart = fresh, True
            self.stop()
            return {"ok": True, "restarting": True}
        self.config = fresh
        for peer in fresh.peers:
            if peer.id in self.links:
                self.links[peer.id].peer = peer
            else:
                self.links[peer.id] = PeerLink(self, peer)
                self.membership.peers.setdefault(peer.id, PeerView(peer.id))
        for peer_id in set(self.links) - {p.id for p in fresh.peers}:
            self.links.pop(peer_id).stop()
            self.membership.peers.pop(peer_id, None)
        self.events.add(f"reload: {len(fresh.peers)} peer(s)")
        return {"ok": True, "restarting": False}

    async def force_sync(self) -> dict[str, Any]:
        if self.role() is not Role.PRIMARY:
            return {"ok": False, "error": f"this server is not the primary; run clusterd sync on server "
                                          f"{self.membership.primary}"}
        await self.refresh_live(force=True)
        if self.live is None:
            return {"ok": False, "error": self.live_error}
        self._new_generation()
        for push in self.pushes.values():
            push.retry_at, push.failures, push.error = 0.0, 0, None
        return {"ok": True, "generation": self.generation.number}

    async def cluster_diff(self, peer_id: int | None) -> dict[str, Any]:
        """What each server's cluster-wide sections would gain or lose from the cluster's configuration."""
        from confmerge import Scope, diff, diff_text, parse

        async def backup_text(server: int) -> str:
            """The server's whole live backup: the diff is scoped to cluster-wide content, with its real line numbers."""
            if server == self.config.id:
                await self.refresh_live(force=True)
                if self.live is None:
                    raise LinkDown(self.live_error or "no live backup")
                return self.live.text
            link = self.links.get(server)
            if link is None:
                raise LinkDown(f"server {server} is not a peer")
            reply = await link.request({"type": "fetch"}, timeout=30)
            if not reply["ok"]:
                raise LinkDown(str(reply.get("error")))
            return reply["text"]

        primary = self.membership.primary
        if primary is None:
            return {"ok": False, "error": "no primary: the cluster is not ready"}
        targets = [peer_id] if peer_id is not None else [s for s in [self.config.id, *self.links] if s != primary]
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


async def serve(config_path: Path) -> None:
    """``clusterd run``: the daemon until SIGTERM/SIGINT, restarted in place when a reload changes its identity."""
    loop = asyncio.get_running_loop()
    config = config_module.load(config_path)
    while True:
        daemon = Daemon(config)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, daemon.stop)
        if not await daemon.run():
            return
        config = daemon.config
