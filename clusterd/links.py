"""This server's links to its peers: an SSH connection to the peer's control port, or the one the peer opened.

A link is kept up (reconnecting as long as the daemon runs) while the
topology wants it (:func:`clusterd.membership.topology`: every peer in a small
cluster; the primary and the neighbours in a large one), and for a minute
after a request to a peer it does not keep (``clusterd diff``, a probe). It
carries requests (:data:`clusterd.protocol.Request`) with their replies
matched by request id. Either end's connection serves both: while the peer
has a channel open to this server, the link rides it and dials nothing, so a
pair needs one key exchange, not two, and a peer that cannot be dialled (a
NAT, a primary busy with 255 others) is heard all the same. When both ends
dialled at once, the lower id's connection is the pair's: the higher id
closes its own once it rides the other (and no reply is owed on it), so a
pair holds one connection, not two idle ones with keepalives of their own. :class:`Heartbeats`
sends this server's heartbeat over every link that is up: each interval to
the fast ones, every :data:`~clusterd.membership.SLOW` intervals to the slow
ones, and at once to all when the daemon's view changes; one frame is encoded
for all. The peer's host key must be the key recorded for it in the cluster
file; anything else is refused and logged once. A link knows its owner only
through :class:`LinkOwner`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import socket
import time
import weakref
from dataclasses import replace
from typing import Callable, Protocol

import asyncssh

from . import keys
from .transfer import CIPHERS
from .config import ClusterConfig, Peer
from .membership import SLOW
from .protocol import BadMessage, Heartbeat, Message, OversizedFrame, Reply, Request, Visibility, encode, read_frame
from .rest import Rest

log = logging.getLogger("clusterd")

REQUEST_TIMEOUT = 150.0
DEMAND = 60.0
"""Seconds a link the topology does not want stays up after a request over it, or after the topology let it go."""
HANDSHAKES = 8
"""SSH handshakes a daemon runs at once. A new primary of 255 secondaries opens its links this many at a time, so
its event loop (and so its heartbeats) is never a queue of hundreds of key exchanges on a busy machine."""

_handshakes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _handshake_slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slot = _handshakes.get(loop)
    if slot is None:
        slot = _handshakes[loop] = asyncio.Semaphore(HANDSHAKES)
    return slot


class LinkDown(Exception):
    """No connection to the peer right now."""


class _Riding(Exception):
    """The peer's channel opened while this server waited to dial it: no second connection."""


class LinkOwner(Protocol):
    """What a link needs from the server it belongs to."""

    @property
    def config(self) -> ClusterConfig: ...

    @property
    def key(self) -> asyncssh.SSHKey: ...

    def heartbeat(self) -> Heartbeat: ...

    def link_up(self) -> None:
        """A link connected: the heartbeat timer may now have a fast link to serve (one opened on demand)."""

    def received(self, peer_id: int, message: Message, out: asyncssh.SSHWriter) -> None:
        """A peer's message (not a reply) on this server's own connection to it; answers go to ``out``."""

    def closed(self, peer_id: int) -> None:
        """The last channel to the peer closed."""

    def owes(self, out: asyncssh.SSHWriter) -> bool:
        """A reply to a request that came on ``out`` is still being made."""


_request_ids = itertools.count(1)


class PeerLink:
    """Keeps an SSH connection to one peer's control port; sends heartbeats and requests over it."""

    def __init__(self, owner: LinkOwner, peer: Peer, wanted: bool = True) -> None:
        self.owner = owner
        self.peer = peer
        self.wanted = wanted
        self.slow = False
        """Heartbeats every :data:`~clusterd.membership.SLOW` intervals (a neighbour), not every one."""
        self.patient = False
        """SSH keepalives every missed × SLOW intervals, not every detection time (a sparse cluster)."""
        self.demand_until = 0.0
        self._changed = asyncio.Event()
        self.ready = asyncio.Event()
        """Set while a channel to the peer is open, either end's."""
        self.connected = False
        """This server's own connection to the peer is up."""
        self.rtt: float | None = None
        self._writer: asyncssh.SSHWriter | None = None
        self._inbound: asyncssh.SSHWriter | None = None
        self._attached_at = 0.0
        self._waiting: dict[int, tuple[asyncio.Future[Reply], asyncssh.SSHWriter]] = {}
        self._task = asyncio.create_task(self._run(), name=f"link-{peer.id}")
        self.problem: str | None = None
        """Why the link is not up, in words that say what to do (logged once, shown in status); None while up."""
        self.connections = 0
        """Counts the channels the link has sent over: a message stream that must start over on a new one (throughput)
        watches it."""

    def stop(self) -> None:
        self._task.cancel()

    def want(self, wanted: bool, slow: bool = False, patient: bool = False) -> None:
        """Keep the link up (at a fast or slow heartbeat) or let it go; ``patient``: SSH keepalives SLOW times rarer.

        A link let go stays up for :data:`DEMAND` seconds, as one opened on
        demand does: when the primary role goes to the next server and comes
        back (a primary starved for a moment, then caught up), no secondary
        makes a new connection to either, where each of 255 would have cost
        both ends a key exchange.
        """
        self.slow, self.patient = slow, patient
        if wanted != self.wanted:
            if not wanted and self.up:
                self.demand_until = max(self.demand_until, time.monotonic() + DEMAND)
            self.wanted = wanted
            self._changed.set()

    def active(self) -> bool:
        return self.wanted or time.monotonic() < self.demand_until

    @property
    def up(self) -> bool:
        """A channel to the peer is open: this server's connection or the peer's."""
        return self._channel() is not None

    def _channel(self) -> asyncssh.SSHWriter | None:
        return self._writer or self._inbound

    def attach(self, out: asyncssh.SSHWriter) -> None:
        """The peer opened a channel to this server: the link rides it (and stops dialling) until it closes.

        The peer hears this server at once, not at the next beat: its view
        of this server starts with the channel. Requests sent over a channel
        it replaces get no reply now.
        """
        if self._inbound is not None and self._inbound is not out:
            self._fail(self._inbound, f"the channel from server {self.peer.id} was replaced")
        self._inbound = out
        self._attached_at = time.monotonic()
        self.ready.set()
        self._changed.set()
        if self._writer is None:
            self.connections += 1
            self.send(encode(self.owner.heartbeat()))
        self.owner.link_up()

    def detach(self, out: asyncssh.SSHWriter) -> bool:
        """The peer's channel ``out`` closed; True if no channel to the peer is left."""
        self._fail(out, f"the channel from server {self.peer.id} closed")
        if self._inbound is out:
            self._inbound = None
            if self._writer is None:
                self.ready.clear()
            self._changed.set()
        return not self.up

    def replied(self, message: Reply) -> None:
        entry = self._waiting.get(message.rid)
        if entry is not None and not entry[0].done():
            entry[0].set_result(message)
            self.answered()

    def answered(self) -> None:
        """A reply went out: the connection this server yields (:meth:`_yields`) may be closed now."""
        if self._writer is not None and self._inbound is not None:
            self._changed.set()

    def _yield_at(self) -> float | None:
        """When this server's own connection becomes one too many: the peer, the lower id, has had one open to it
        for the detection time (a request the peer sent on this one before has arrived), which the link rides.
        None: it does not become so."""
        if self._inbound is None or self.owner.config.id < self.peer.id:
            return None
        return self._attached_at + self.owner.config.timing.patience

    def _until_yield(self) -> float:
        """How long the connection loop may rest: until this server may yield its own connection, if it will
        (past that, the last reply owed on it wakes the loop: :meth:`answered`)."""
        at = self._yield_at()
        left = at - time.monotonic() if at is not None else 0.0
        return left + 0.01 if left > 0 else DEMAND / 4

    def _yields(self) -> bool:
        """This server's own connection is one too many (:meth:`_yield_at`) and no reply is owed on it, either way."""
        writer, at = self._writer, self._yield_at()
        return (writer is not None and at is not None and time.monotonic() >= at and not self.owner.owes(writer)
                and not any(sent is writer and not future.done() for future, sent in self._waiting.values()))

    def _fail(self, out: asyncssh.SSHWriter, why: str) -> None:
        """The requests sent over the channel ``out`` get no reply now."""
        for future, sent in self._waiting.values():
            if sent is out and not future.done():
                future.set_exception(LinkDown(why))

    def send(self, frame: bytes) -> None:
        """Write a frame (a heartbeat) if the link is up; a link going down says so itself."""
        out = self._channel()
        if out is not None:
            try:
                out.write(frame)
            except (OSError, asyncssh.Error):
                pass

    async def request(self, message: Request, timeout: float = REQUEST_TIMEOUT) -> Reply:
        """Send a request (its ``rid`` is set here) and wait for the reply; :class:`LinkDown` if there is none."""
        if not self.wanted:
            self.demand_until = time.monotonic() + DEMAND
            self._changed.set()
        if self._channel() is None:
            try:
                async with asyncio.timeout(max(self.owner.config.timing.detection, 1.0 if self.wanted else 10.0)):
                    await self.ready.wait()
            except TimeoutError:
                raise LinkDown(f"no connection to server {self.peer.id}") from None
        out = self._channel()
        if out is None:
            raise LinkDown(f"no connection to server {self.peer.id}")
        rid = next(_request_ids)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = (future, out)
        try:
            out.write(encode(replace(message, rid=rid)))
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise LinkDown(f"server {self.peer.id} did not answer in {timeout:.0f} s") from None
        except (ConnectionError, asyncssh.Error) as error:
            raise LinkDown(f"the channel to server {self.peer.id} closed: {error}") from None
        finally:
            self._waiting.pop(rid, None)

    def post(self, message: Visibility) -> bool:
        """Send a message that needs no reply, if the link is up now; False if it is not (nothing is queued)."""
        out = self._channel()
        if out is None:
            return False
        try:
            out.write(encode(message))
        except (BadMessage, OSError, asyncssh.Error) as error:
            log.warning("could not send server %d a %s message: %s", self.peer.id, message.type, error)
            return False
        return True

    def _problem(self, text: str | None) -> None:
        if text != self.problem and text is not None:
            log.warning("link to server %d: %s", self.peer.id, text)
        self.problem = text

    def poke(self) -> None:
        """The peer was heard (on the link it opened): a link waiting to reconnect tries now."""
        if not self.connected and self._inbound is None:
            self._changed.set()

    async def _rest(self, seconds: float) -> None:
        """Wait before connecting again: ``seconds``, or until poked (the peer is back) or wanted otherwise."""
        self._changed.clear()
        try:
            async with asyncio.timeout(seconds):
                await self._changed.wait()
        except TimeoutError:
            pass

    async def _connect(self, peer: Peer) -> tuple[float, asyncssh.SSHClientConnection]:
        """An SSH connection to the peer's control port; when it started, for the RTT.

        The TCP connection first, then the key exchange once a handshake slot
        is free: a peer that does not answer (powered off, cut off) holds no
        slot while its connection times out, only a peer that costs CPU does.
        """
        owner = self.owner
        started = time.monotonic()
        sock = await self._tcp(peer, owner.config.timing.patience)
        try:
            async with _handshake_slot():
                if self._inbound is not None:
                    raise _Riding
                return started, await self._handshake(peer, sock)
        except BaseException:
            sock.close()
            raise

    async def _tcp(self, peer: Peer, timeout: float) -> socket.socket:
        loop = asyncio.get_running_loop()
        port = self.owner.config.port_of(peer)
        family, kind, proto, _, address = (await loop.getaddrinfo(peer.address, port, type=socket.SOCK_STREAM))[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.bind((self.owner.config.address, 0))
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        return sock

    async def _handshake(self, peer: Peer, sock: socket.socket) -> asyncssh.SSHClientConnection:
        owner = self.owner
        assert peer.key is not None  # _run waits while the peer has no key recorded
        return await asyncssh.connect(
            peer.address, owner.config.port_of(peer), sock=sock, username=str(owner.config.id),
            client_keys=[owner.key], known_hosts=([keys.parse_public_key(peer.key)], [], []),
            agent_path=None, config=None, password=None, kbdint_auth=False, gss_host=None,
            connect_timeout=owner.config.timing.patience,
            keepalive_interval=owner.config.timing.patience * (SLOW if self.patient else 1),
            keepalive_count_max=2,
            encryption_algs=CIPHERS,
        )

    async def _run(self) -> None:
        owner = self.owner
        failures = 0  # in a row: the wait doubles (jittered, up to 8 intervals), so that a large cluster's
        # links to a server that is starting or swamped do not storm it; its own heartbeat pokes them
        while True:
            peer = self.peer
            if not self.active() or self._inbound is not None:
                self._problem(None)
                self._changed.clear()
                await self._changed.wait()
                continue
            if peer.key is None:
                self._problem("not trusted yet (no key recorded; run clusterd add-peer)")
                await asyncio.sleep(owner.config.timing.heartbeat)
                continue
            try:
                started, connection = await self._connect(peer)
            except _Riding:
                continue
            except asyncssh.HostKeyNotVerifiable:
                self._problem(f"the key on {peer.address}:{owner.config.port_of(peer)} is not the one recorded "
                              f"for server {peer.id}; refusing it")
                await asyncio.sleep(owner.config.timing.detection)
                continue
            except asyncssh.PermissionDenied:
                self._problem(f"server {peer.id} does not trust this server's key yet "
                              f"(run clusterd add-peer --id {owner.config.id} there)")
                await asyncio.sleep(owner.config.timing.detection)
                continue
            except (OSError, asyncssh.Error, TimeoutError) as error:
                self._problem(f"cannot connect to {peer.address}:{owner.config.port_of(peer)} ({reason(error)})")
                failures += 1
                await self._rest(owner.config.timing.heartbeat * random.uniform(1.0, 2.0) * 2 ** min(failures - 1, 2))
                continue
            failures = 0
            closed_by_peer = False
            try:
                async with connection:
                    process = await connection.create_process(encoding=None)
                    self.rtt = time.monotonic() - started
                    self._writer, self.connected = process.stdin, True
                    self.connections += 1
                    self.ready.set()
                    self._problem(None)
                    log.info("link to server %d up (%s:%d)", peer.id, peer.address, owner.config.port_of(peer))
                    reader = asyncio.create_task(self._read(process.stdout, process.stdin))
                    process.stdin.write(encode(owner.heartbeat()))
                    owner.link_up()
                    try:
                        while not reader.done() and self.active() and not self._yields():
                            self._changed.clear()
                            changed = asyncio.ensure_future(self._changed.wait())
                            await asyncio.wait({reader, changed}, timeout=self._until_yield(),
                                               return_when=asyncio.FIRST_COMPLETED)
                            changed.cancel()
                    finally:
                        reader.cancel()
                    closed_by_peer = reader.done() and not reader.cancelled() and reader.result()
            except (OSError, asyncssh.Error, BrokenPipeError, ConnectionError) as error:
                self._problem(f"connection lost ({reason(error)})")
                closed_by_peer = not silence(error)
            finally:
                out, self._writer, self.connected = self._writer, None, False
                if out is not None:
                    self._fail(out, f"connection to server {peer.id} closed")
                    if self._inbound is None:
                        self.ready.clear()
                        if closed_by_peer:  # not a let-go, a stop, or a silence (the fuse's to judge)
                            owner.closed(peer.id)
                    else:
                        self.connections += 1  # messages go on over the peer's channel, which has not seen them
            await asyncio.sleep(min(owner.config.timing.heartbeat, 0.2))

    async def _read(self, stream: asyncssh.SSHReader, out: asyncssh.SSHWriter) -> bool:
        """Until the connection ends; True if the peer's end closed it (a killed daemon's kernel does)."""
        while True:
            try:
                message = await read_frame(stream)
            except OversizedFrame as error:
                log.warning("server %d: %s; closing the link", self.peer.id, error)
                return False
            except BadMessage as error:
                log.warning("server %d: dropped a message: %s", self.peer.id, error)
                continue
            except (asyncio.IncompleteReadError, asyncssh.Error, ConnectionError) as error:
                return not silence(error)
            if isinstance(message, Reply):
                self.replied(message)
            else:
                self.owner.received(self.peer.id, message, out)


class Heartbeats:
    """Sends this server's heartbeat over the links that are up: on a timer by their rate, and at once on a change."""

    def __init__(self, owner: LinkOwner, links: dict[int, PeerLink]) -> None:
        self.owner = owner
        self.links = links
        self._soon = False
        self._rest = Rest()
        self._task = asyncio.create_task(self._run(), name="heartbeats")

    def stop(self) -> None:
        self._task.cancel()

    def now(self) -> None:
        """A heartbeat to every link soon (once for however many changes this turn of the event loop makes).

        The timer starts again too: the rates may have changed with the view
        (a secondary that becomes primary sends every interval from now).
        """
        if not self._soon:
            self._soon = True
            asyncio.get_running_loop().call_soon(self._send_all)
        self.retime()

    def retime(self) -> None:
        """The links changed (one connected): the timer works out its next beat again, sending nothing now."""
        self._rest.wake()

    def _send_all(self) -> None:
        self._soon = False
        self._send(lambda link: True)

    def _send(self, due: Callable[[PeerLink], bool]) -> None:
        frame: bytes | None = None
        for link in self.links.values():
            if link.up and due(link):
                frame = frame or encode(self.owner.heartbeat())
                link.send(frame)

    async def _run(self) -> None:
        """Beats on the interval; the slow links' come every :data:`SLOW` beats, all in the same one.

        When every link is slow (a secondary of a sparse cluster) the timer
        sleeps through the beats that would send nothing: one wake-up per
        :data:`SLOW` intervals instead of one per interval. The phase is the
        sender's id, so the servers' slow beats are spread over the interval.
        """
        beat = 0
        phase = self.owner.config.id % SLOW
        while True:
            if any((link.wanted or link.up) and not link.slow for link in self.links.values()):
                skip = 1
            else:
                skip = (phase - beat - 1) % SLOW + 1
            if await self._rest(self.owner.config.timing.heartbeat * skip):
                beat = phase  # woken by now() (the heartbeat just went out) or retime(): the beats start again
                continue
            beat += skip
            self._send(lambda link: not link.slow or beat % SLOW == phase)


def silence(error: BaseException) -> bool:
    """The connection ended because an SSH keepalive went unanswered: the peer fell silent, which its fuse judges
    (:mod:`clusterd.membership`, "late is not down"); any other end is a close, and the peer is down at once."""
    return isinstance(error, asyncssh.ConnectionLost) and "keepalive" in error.reason


def reason(error: BaseException) -> str:
    """Why a peer could not be reached or talked to, in a few plain words (for logs, check and the CLI)."""
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, asyncssh.Error):
        return error.reason
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
