"""The run loop: the control port, the links, the local socket, and the tick that drives the roles.

The state lives in :class:`clusterd.core.Core`; what the primary does in
:mod:`clusterd.primary`, what a server answers its peers in
:mod:`clusterd.secondary`, status in :mod:`clusterd.status`, the local
socket in :mod:`clusterd.admin`. This module only connects them.

Control traffic is SSH on ``address:port-base+id``: this server's node key is
its host key, and a peer logs in as its id with its own key, which must be
the one recorded in the cluster file. Inside, one channel carries
:mod:`clusterd.protocol` frames both ways: a pair's heartbeats, requests and
replies go over whichever end's connection is up (:mod:`clusterd.links`;
a peer whose heartbeat does not say ``both_ways``, an older clusterd, is
always dialled back). Nothing listens on any other address.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any, Coroutine

import asyncssh

from confmerge import ConfError

from . import config as config_module
from . import keys, memory, sshserver
from .admin import Admin
from .changes import Changes
from .config import ClusterConfig
from .core import Core
from .links import Heartbeats, LinkDown, PeerLink, silence
from .membership import SLOW, PeerView, Role
from .primary import Primary
from .priority import Priority
from .protocol import (
    Apply, BadMessage, Fetch, Head, Heartbeat, Message, OversizedFrame, Probe, Reply, Request, Text, encode, from_data,
    read_frame,
)
from .protocol import Confirm, Load, Rollback
from .protocol import Board as BoardRequest, Visibility
from .protocol import Install, Installed, PackageArrived, Rollout
from .secondary import Secondary
from .throughput import SENT_EVERY, Board, wire_interfaces
from .rest import Rest
from .updates import Updates
from .watch import Watch, watch

log = logging.getLogger("clusterd")

BOARD_POINTS = 300
"""Samples per server at most in a primary's answer to a secondary's ``board`` request (the chart is 1,000 px wide)."""

TICK_AT_LEAST = 2.0
"""Seconds a settled secondary's tick may be postponed to by the primary's heartbeats: its stat of the live
backup still runs this often (the watch does not see every way a file changes, a symlinked backup's for one)."""

# ---------------------------------------------------------------------------
# Incoming: the control port


class _ControlServer(sshserver.KeyOnlyServer):
    """Accepts a login only as a peer's id with that peer's recorded key.

    One exception: a trusted peer's key under an id no peer has is that peer
    after ``clusterd set-id`` (the key is its identity): it is accepted, and
    the daemon records the new id in its cluster file (:meth:`Daemon.rename_peer`).
    """

    def __init__(self, core: Core, gate: sshserver.Gate) -> None:
        super().__init__(gate)
        self.core = core
        self.peer_id: int | None = None
        self.renamed_from: int | None = None

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        config = self.core.config
        claimed = int(username) if username.isdigit() else None
        peer = config.peer(claimed) if claimed is not None else None
        if peer is not None and peer.key is not None and keys.same_key(keys.parse_public_key(peer.key), key):
            self.peer_id, self.key = peer.id, key
            return True
        if claimed is not None and peer is None and claimed <= 255 and claimed != config.id:
            renamed = next((p for p in config.peers if p.key and keys.same_key(keys.parse_public_key(p.key), key)), None)
            if renamed is not None:
                self.peer_id, self.renamed_from, self.key = claimed, renamed.id, key
                return True
        log.warning("refused a control login from %s as %r with key %s: not a trusted peer",
                    self.source, username, key.get_fingerprint("sha256"))
        return False


# ---------------------------------------------------------------------------
# The daemon


class Daemon:
    """Wires the state core to the network: the control port, the links, the local socket, and the tick."""

    def __init__(self, config: ClusterConfig) -> None:
        self.key = keys.load_or_create(config.identity)
        self.links: dict[int, PeerLink] = {}
        self.heartbeats: Heartbeats | None = None
        self.core = Core(config, self.nudge)
        self.primary = Primary(self.core, self.links, self.spawn)
        self.secondary = Secondary(self.core)
        self.changes = Changes(self.core, self.primary, self.links, self.spawn)
        self.board = Board(config.id)
        self.updates = Updates(self.core, self.links, self.spawn)
        self.admin = Admin(self.core, self.primary, self.links, self.reload, self.changes, board=self.board,
                           updates=self.updates)
        self.web_url = ""
        """The URL of this server's web GUI ("" while it serves none)."""
        self.incoming: dict[int, object] = {}
        self._owed: Counter[asyncssh.SSHWriter] = Counter()
        """Replies being made, by the channel their requests came on (a link yields its connection only when none)."""
        self._control_gate = sshserver.Gate(f"control port {config.address}:{config.control_port}")
        self._ssh_gate = sshserver.Gate(f"SFTP on {config.address}:{config.ssh_port}")
        self.stopping = asyncio.Event()
        self.restart = False
        self._servers: list[Any] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watch: Watch | None = None
        self._rest = Rest()
        self._ticked = time.monotonic()
        self._sample_rest = Rest()
        self._sampled = 0
        """The wall-clock second of the last throughput sample."""
        self._priority = Priority()

    @property
    def config(self) -> ClusterConfig:
        return self.core.config

    def heartbeat(self) -> Heartbeat:
        return self.core.heartbeat()

    def link_up(self) -> None:
        if self.heartbeats is not None:
            self.heartbeats.retime()

    def closed(self, peer_id: int) -> None:
        self.core.lost(peer_id)

    def received(self, peer_id: int, message: Message, out: asyncssh.SSHWriter) -> None:
        """A peer's message on either end's connection; what a peer's key may ask is the same on both.

        The primary's heartbeat is a turn of the loop as good as a tick (:meth:`_pace`): a settled
        secondary's tick rests on past it, and runs only when a peer could be silent or something changed.
        """
        from_primary = isinstance(message, Heartbeat) and message.id == peer_id == self.core.membership.primary
        awake = self._awake(tick=from_primary)
        if isinstance(message, Heartbeat):
            if message.id != peer_id:
                log.warning("server %d sent a heartbeat as server %d; dropped", peer_id, message.id)
            elif awake:
                self.core.observe(message)
                link = self.links.get(peer_id)
                if link is not None and link.wanted:
                    link.poke()
                if from_primary and self._settled():
                    self._ride()
        elif isinstance(message, (Apply, Head, Text, Fetch, Probe, Load, Confirm, Rollback, BoardRequest,
                                  PackageArrived, Install, Installed, Rollout)):
            self._owed[out] += 1
            self.spawn(self._answer(message, peer_id, out))
        elif isinstance(message, Visibility):
            if message.id == peer_id:
                self.board.receive(message)
        elif isinstance(message, Reply):
            link = self.links.get(peer_id)
            if link is not None:
                link.replied(message)
        else:
            log.warning("server %d: dropped a %s message on the control channel", peer_id, message.type)

    # -- lifecycle ------------------------------------------------------

    async def run(self) -> bool:
        """Serve until stopped; True if a reload asked for a restart (a new id or address)."""
        config = self.config
        asyncio.get_running_loop().set_default_executor(self._priority.executor())
        self._servers.append(await asyncssh.create_server(
            lambda: _ControlServer(self.core, self._control_gate), config.address, config.control_port,
            server_host_keys=[self.key], process_factory=self._serve_channel, encoding=None,
            allow_scp=False, allow_pty=False, agent_forwarding=False, x11_forwarding=False,
            sftp_factory=None, reuse_address=True, line_editor=False, login_timeout=sshserver.LOGIN_TIMEOUT,
            # a link may ride a peer's connection (links.py): a dead one must close here too, as the peer's own would
            keepalive_interval=config.timing.patience * SLOW, keepalive_count_max=2,
        ))
        if config.ssh.serve:
            host_key = keys.load_or_create(config.state_dir / "ssh_host_key")
            self._servers.append(await sshserver.start(
                config.address, config.ssh_port, host_key,
                lambda: [keys.parse_public_key(p.key) for p in self.config.peers if p.key],
                area=self.core.history.inbox, user=config.ssh.user, gate=self._ssh_gate,
            ))
        self._servers.append(await self.admin.start())
        web_runner = None
        if config.web is not None:
            from .gui import start_web
            web_runner, self.web_url = await start_web(self)
        for peer in config.peers:
            self.links[peer.id] = PeerLink(self, peer, wanted=peer.id in self.core.membership.linked)
        self.heartbeats = Heartbeats(self, self.links)
        self.relink()
        self.core.events.add(f"server {config.id} listening on {config.address}:{config.control_port}"
                             + (f", SFTP on {config.address}:{config.ssh_port}" if config.ssh.serve else ""))
        if self.core.applying:
            self.spawn(self.core.recover())
        await self.core.refresh_live(force=True)
        self.core.find_written()
        await self.updates.start()
        self.core.running()
        ticker = asyncio.create_task(self._tick_forever())
        sampler = asyncio.create_task(self._sample_forever())
        try:
            await self.stopping.wait()
        finally:
            ticker.cancel()
            sampler.cancel()
            if web_runner is not None:
                await web_runner.cleanup()
            self.core.closed = True
            self._priority.follow(False)  # a daemon started again in this process reads its base anew
            self.core.gaps.close()
            if self.heartbeats is not None:
                self.heartbeats.stop()
            for link in self.links.values():
                link.stop()
            for server in self._servers:
                server.close()
            self._control_gate.close_all()
            self._ssh_gate.close_all()
            self.config.socket.unlink(missing_ok=True)
        return self.restart

    def stop(self) -> None:
        """From now on nothing changes the state: links closing on the way out are no reason to claim a role."""
        self.core.closed = True
        self.stopping.set()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run a coroutine in the background, holding a reference (the event loop keeps only weak ones)."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def nudge(self) -> None:
        """The view changed: links follow the topology, every peer linked hears of it at once, and the tick runs."""
        if self.heartbeats is not None:
            self.relink()
            self.heartbeats.now()
        self.wake()

    def wake(self) -> None:
        """Run the tick now rather than at the end of its rest (the backup changed, or the view did)."""
        self._rest.wake()

    def relink(self) -> None:
        shape = self.core.membership.relink()
        for peer_id, link in self.links.items():
            link.want(peer_id in shape.linked, slow=peer_id in shape.send_slow, patient=self.core.membership.sparse)

    def _awake(self, tick: bool = False) -> bool:
        """False right after a pause: a revalidation starts, and nothing heard before counts until it ends."""
        if self.core.awake(tick):
            return True
        self.spawn(self.core.revalidate(self._probe))
        return False

    async def _probe(self, peer_id: int) -> Heartbeat | None:
        link = self.links.get(peer_id)
        if link is None or not link.wanted:
            return None
        try:
            reply = await link.request(Probe(rid=0), timeout=self.config.timing.patience)
            message = from_data(reply.body)
        except (LinkDown, BadMessage):
            return None
        return message if isinstance(message, Heartbeat) and message.id == peer_id else None

    async def _tick_forever(self) -> None:
        core = self.core
        self._watch = watch(self.config.backup, self.wake)
        try:
            await self._ticks(core)
        finally:
            if self._watch is not None:
                self._watch.close()

    async def _ticks(self, core: Core) -> None:
        while True:
            self._ticked = time.monotonic()
            try:
                if self._awake(tick=True):
                    core.expire()
                    if not core.applying and not core.backup_lock.locked():
                        await core.refresh_live()
                        async with core.backup_lock:
                            core.record_edit()
                    primary = core.role() is Role.PRIMARY
                    self._priority.follow(primary)
                    if primary and not core.revalidating:
                        self.primary.tick()
                        self.changes.tick()
            except Exception:  # a bug here must not stop heartbeats; it is logged with its traceback
                log.exception("tick failed")
            await self._rest(self._pace())

    def _ride(self) -> None:
        """The primary's heartbeat woke a settled secondary: the tick and the throughput sample that are due take
        this turn of the loop instead of a wake-up of their own (an idle secondary's cost is its wake-ups)."""
        if time.monotonic() - self._ticked < TICK_AT_LEAST:
            self._rest.postpone(self._pace())
        else:
            self._rest.wake()
        if int(time.time()) != self._sampled:
            self._sample_rest.wake()

    def _pace(self) -> float:
        """How long the tick may rest: short for a primary or in any transition, longer for a settled secondary.

        A settled secondary (its primary alive, no revalidation, no apply)
        has nothing to do on a timer but notice a silent peer, and that
        deadline is known: it rests until then, or at most a heartbeat
        interval (a third of the detection time, so a pause is still told
        from a busy loop). Each heartbeat of the primary is such a turn of
        the loop and postpones the rest by as much (:meth:`received`): while
        the primary is heard the tick wakes every :data:`TICK_AT_LEAST`
        seconds (its stat of the backup, under the watch). The backup's
        watch and any change of view wake it sooner. Without a watch the
        backup is polled as before.
        """
        timing = self.config.timing
        if not self._settled():
            return min(timing.heartbeat / 2, 0.1)
        until = self.core.membership.next_silence() - time.monotonic() + 0.005
        return max(0.005, min(timing.heartbeat, timing.detection / 3, until))

    def _settled(self) -> bool:
        core = self.core
        membership = core.membership
        return not (self._watch is None or not self._watch.alive or core.revalidating or core.applying
                    or core.role() is not Role.SECONDARY or membership.orphaned is not None
                    or not membership.primary_alive())

    async def _sample_forever(self) -> None:
        """Common visibility: this server's throughput each wall-clock second, sent to the peers that are connected.

        In a sparse cluster a secondary sends it to the primary only, every
        :data:`~clusterd.throughput.SENT_EVERY` seconds (the seconds since the last
        message; one message per server every few seconds whatever the
        cluster's size) and the primary to no one: its board holds everyone's,
        and a secondary asks it for them when they are wanted
        (:meth:`clusterd.admin.Admin.throughput`). Each server samples at its
        own fraction of the second, so that a large cluster's daemons do not
        all wake at once. A settled secondary samples in the turn of the
        primary's first heartbeat of each second (:meth:`_ride`), and wakes for
        it only near the second's end if none came.
        """
        seen: tuple[object, tuple[str, ...], str] = (None, (), "")
        offset = 0.005 + (self.config.id * 0.618) % 1.0 * 0.9
        second = 0
        while True:
            second += 1
            try:
                live = self.core.live.config if self.core.live is not None else None
                if seen[0] is not live:
                    seen = (live, wire_interfaces(live), (live.hostname if live is not None else None) or "")
                self._sampled = int(time.time())
                self.board.sample(self.config.interfaces if self.config.interfaces is not None else seen[1],
                                  seen[2], self.web_url)
                membership = self.core.membership
                only = membership.primary if membership.sparse else None
                if only is None or second % SENT_EVERY == self.config.id % SENT_EVERY:
                    for peer_id, link in list(self.links.items()):
                        if link.up and (only is None or peer_id == only != self.config.id):
                            link.post(self.board.message(peer_id, link.connections))
            except Exception:  # like the tick: a bug here must not stop the sampling
                log.exception("throughput sampling failed")
            now = time.time()
            if self._settled():
                await self._sample_rest(self._sampled + 1.9 - now)
            else:
                await self._sample_rest((offset - now) % 1.0 or 1.0)

    async def _serve_channel(self, process: asyncssh.SSHServerProcess) -> None:
        owner = process.get_extra_info("connection").get_owner()
        peer_id = owner.peer_id
        if owner.renamed_from is not None and self.config.peer(owner.renamed_from) is not None:
            self.rename_peer(owner.renamed_from, peer_id)
        token = object()
        self.incoming[peer_id] = token
        link = self.links.get(peer_id)
        attached = False
        closed_by_peer = False
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
                if not attached and link is not None and isinstance(message, Heartbeat) and message.both_ways:
                    link.attach(process.stdout)  # a peer that reads what comes back on its own connection
                    attached = True
                self.received(peer_id, message, process.stdout)
        except (asyncio.IncompleteReadError, asyncssh.Error, ConnectionError, BrokenPipeError) as error:
            closed_by_peer = not silence(error)
        finally:
            alone = link.detach(process.stdout) if link is not None else True
            if self.incoming.get(peer_id) is token:
                del self.incoming[peer_id]
                if alone and closed_by_peer:
                    self.closed(peer_id)
            process.exit(0)

    def owes(self, out: asyncssh.SSHWriter) -> bool:
        return out in self._owed

    async def _answer(self, message: Request, peer_id: int, out: asyncssh.SSHWriter) -> None:
        try:
            await self._reply(message, peer_id, out)
        finally:
            self._owed[out] -= 1
            if self._owed[out] <= 0:
                del self._owed[out]
                link = self.links.get(peer_id)
                if link is not None:
                    link.answered()

    async def _reply(self, message: Request, peer_id: int, out: asyncssh.SSHWriter) -> None:
        try:
            if isinstance(message, (Load, Confirm, Rollback)):
                reply = await self.changes.answer(message, peer_id)
            elif isinstance(message, (PackageArrived, Install, Installed, Rollout)):
                reply = await self.updates.answer(message, peer_id)
            elif isinstance(message, BoardRequest):  # in a thread: the loop keeps the heartbeats on time
                held = await asyncio.to_thread(self.admin.held, message.server, message.seconds, BOARD_POINTS)
                reply = Reply(message.rid, True, body=held)
            else:
                reply = await self.secondary.answer(message, peer_id)
        except Exception as error:  # the requester gets the reason; the daemon goes on
            log.exception("%s from server %d failed", message.type, peer_id)
            reply = Reply(message.rid, False, f"{type(error).__name__}: {error}")
        try:
            out.write(encode(reply))
        except (BadMessage, OSError, asyncssh.Error) as error:
            log.warning("could not answer server %d: %s", peer_id, error)

    # -- reload ---------------------------------------------------------

    def rename_peer(self, old: int, new: int) -> None:
        """A peer renumbered itself (``clusterd set-id``): the cluster file follows, nothing else changes."""
        def change(document: Any) -> None:
            for entry in document.get("peers") or []:
                if isinstance(entry, dict) and entry.get("id") == old:
                    entry["id"] = new
        try:
            config_module.edit(self.config.path, change)
        except (ConfError, OSError) as error:
            self.core.events.add(f"server {old} now logs in as server {new}, but the cluster file could not "
                                 f"be changed: {error}")
            return
        self.core.events.add(f"server {old} is now server {new} (the same key); the cluster file says so")
        self.reload()

    def reload(self) -> dict[str, Any]:
        core = self.core
        try:
            fresh = config_module.load(self.config.path)
        except ConfError as error:
            return {"ok": False, "error": "\n".join(map(str, error.diagnostics))}
        old = self.config
        if (fresh.id, fresh.address, fresh.port_base, fresh.ssh_port, fresh.ssh.serve, fresh.state_dir) != (
                old.id, old.address, old.port_base, old.ssh_port, old.ssh.serve, old.state_dir):
            core.events.add(f"reload: this server is now {fresh.id} on {fresh.address}; restarting the daemon")
            core.config, self.restart = fresh, True
            self.stop()
            return {"ok": True, "restarting": True}
        core.config = fresh
        for peer in fresh.peers:
            link = self.links.get(peer.id)
            if link is not None and (link.peer.key, link.peer.address) != (peer.key, peer.address):
                link.stop()
                link = None
            if link is not None:
                link.peer = peer
            else:
                core.membership.peers.setdefault(peer.id, PeerView(peer.id))
                self.links[peer.id] = PeerLink(self, peer, wanted=False)
        for peer_id in set(self.links) - {p.id for p in fresh.peers}:
            self.links.pop(peer_id).stop()
            core.membership.peers.pop(peer_id, None)
            core.membership.alive.discard(peer_id)
        self.relink()
        self._revoke()
        self.board.forget(p.id for p in fresh.peers)
        core.events.add(f"reload: {len(fresh.peers)} peer(s)")
        return {"ok": True, "restarting": False}


    def _revoke(self) -> None:
        """Close every session whose key the cluster file no longer trusts (for its id, on the control port)."""
        config = self.config

        def recorded(peer_id: int | None) -> asyncssh.SSHKey | None:
            peer = config.peer(peer_id) if peer_id is not None else None
            return keys.parse_public_key(peer.key) if peer is not None and peer.key else None

        def control(server: sshserver.KeyOnlyServer) -> bool:
            assert isinstance(server, _ControlServer)
            key = recorded(server.peer_id)
            if key is None and server.renamed_from is not None and config.peer(server.peer_id or 0) is None:
                key = recorded(server.renamed_from)  # renumbered, the cluster file not renamed yet
            return key is not None and server.key is not None and keys.same_key(key, server.key)

        authorized = [keys.parse_public_key(p.key) for p in config.peers if p.key]

        def transfer(server: sshserver.KeyOnlyServer) -> bool:
            return server.key is not None and any(keys.same_key(server.key, key) for key in authorized)

        for server in self._control_gate.revoke(control):
            self.core.events.add(f"closed server {getattr(server, 'peer_id', '?')}'s control session from "
                                 f"{server.source}: its key {_fingerprint(server)} is no longer trusted")
        for server in self._ssh_gate.revoke(transfer):
            self.core.events.add(f"closed an SFTP session from {server.source}: its key {_fingerprint(server)} "
                                 "is no longer trusted")


def _fingerprint(server: sshserver.KeyOnlyServer) -> str:
    return keys.fingerprint(server.key) if server.key is not None else "?"


async def serve(config: ClusterConfig) -> None:
    """``clusterd run``: the daemon until SIGTERM/SIGINT, restarted in place when a reload changes its identity.

    ``config`` is the cluster file as the CLI just read it (a 256-server one is a tenth of a second to read).
    """
    memory.one_arena()
    loop = asyncio.get_running_loop()
    while True:
        daemon = Daemon(config)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, daemon.stop)
        if not await daemon.run():
            return
        config = daemon.config
