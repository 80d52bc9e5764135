"""This server's links to its peers: one SSH connection each to the peer's control port.

A link keeps its connection up (reconnecting as long as the daemon runs),
sends this server's heartbeat every interval and at once when the daemon's
view changes, and carries requests (:data:`clusterd.protocol.Request`) with
their replies matched by request id. The peer's host key must be the key
recorded for it in the cluster file; anything else is refused and logged once.
A link knows its owner only through :class:`LinkOwner`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import replace
from typing import Protocol

import asyncssh

from . import keys
from .config import ClusterConfig, Peer
from .protocol import BadMessage, Heartbeat, OversizedFrame, Reply, Request, Visibility, encode, read_frame

log = logging.getLogger("clusterd")

REQUEST_TIMEOUT = 150.0


class LinkDown(Exception):
    """No connection to the peer right now."""


class LinkOwner(Protocol):
    """What a link needs from the server it belongs to."""

    @property
    def config(self) -> ClusterConfig: ...

    @property
    def key(self) -> asyncssh.SSHKey: ...

    def heartbeat(self) -> Heartbeat: ...


_request_ids = itertools.count(1)


class PeerLink:
    """Keeps an SSH connection to one peer's control port; sends heartbeats and requests over it."""

    def __init__(self, owner: LinkOwner, peer: Peer) -> None:
        self.owner = owner
        self.peer = peer
        self.wake = asyncio.Event()
        self.ready = asyncio.Event()
        self.connected = False
        self.rtt: float | None = None
        self._writer: asyncssh.SSHWriter | None = None
        self._waiting: dict[int, asyncio.Future[Reply]] = {}
        self._task = asyncio.create_task(self._run(), name=f"link-{peer.id}")
        self.problem: str | None = None
        """Why the link is not up, in words that say what to do (logged once, shown in status); None while up."""
        self.connections = 0
        """Counts the connections made: a message stream that must start over on a new one (throughput) watches it."""

    def stop(self) -> None:
        self._task.cancel()

    async def request(self, message: Request, timeout: float = REQUEST_TIMEOUT) -> Reply:
        """Send a request (its ``rid`` is set here) and wait for the reply; :class:`LinkDown` if there is none."""
        if self._writer is None:
            try:
                async with asyncio.timeout(max(self.owner.config.timing.detection, 1.0)):
                    await self.ready.wait()
            except TimeoutError:
                raise LinkDown(f"no connection to server {self.peer.id}") from None
            if self._writer is None:
                raise LinkDown(f"no connection to server {self.peer.id}")
        rid = next(_request_ids)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = future
        try:
            self._writer.write(encode(replace(message, rid=rid)))
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise LinkDown(f"server {self.peer.id} did not answer in {timeout:.0f} s") from None
        finally:
            self._waiting.pop(rid, None)

    def post(self, message: Visibility) -> bool:
        """Send a message that needs no reply, if the link is up now; False if it is not (nothing is queued)."""
        if self._writer is None:
            return False
        try:
            self._writer.write(encode(message))
        except (BadMessage, OSError, asyncssh.Error) as error:
            log.warning("could not send server %d a %s message: %s", self.peer.id, message.type, error)
            return False
        return True

    def _problem(self, text: str | None) -> None:
        if text != self.problem and text is not None:
            log.warning("link to server %d: %s", self.peer.id, text)
        self.problem = text

    async def _run(self) -> None:
        owner = self.owner
        while True:
            peer = self.peer
            if peer.key is None:
                self._problem("not trusted yet (no key recorded; run clusterd add-peer)")
                await asyncio.sleep(owner.config.timing.heartbeat)
                continue
            started = time.monotonic()
            try:
                connection = await asyncssh.connect(
                    peer.address, owner.config.port_of(peer), username=str(owner.config.id),
                    client_keys=[owner.key], known_hosts=([keys.parse_public_key(peer.key)], [], []),
                    agent_path=None, config=None, password=None, kbdint_auth=False, gss_host=None,
                    connect_timeout=max(owner.config.timing.detection, 1.0),
                    keepalive_interval=max(owner.config.timing.detection, 1.0), keepalive_count_max=2,
                )
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
                await asyncio.sleep(owner.config.timing.heartbeat)
                continue
            try:
                async with connection:
                    process = await connection.create_process(encoding=None)
                    self.rtt = time.monotonic() - started
                    self._writer, self.connected = process.stdin, True
                    self.connections += 1
                    self.ready.set()
                    self._problem(None)
                    log.info("link to server %d up (%s:%d)", peer.id, peer.address, owner.config.port_of(peer))
                    reader = asyncio.create_task(self._read(process.stdout))
                    try:
                        while not reader.done():
                            self.wake.clear()
                            process.stdin.write(encode(owner.heartbeat()))
                            woken = asyncio.ensure_future(self.wake.wait())
                            await asyncio.wait({reader, woken}, timeout=owner.config.timing.heartbeat,
                                               return_when=asyncio.FIRST_COMPLETED)
                            woken.cancel()
                    finally:
                        reader.cancel()
            except (OSError, asyncssh.Error, BrokenPipeError, ConnectionError) as error:
                self._problem(f"connection lost ({reason(error)})")
            finally:
                self._writer, self.connected = None, False
                self.ready.clear()
                for future in self._waiting.values():
                    if not future.done():
                        future.set_exception(LinkDown(f"connection to server {peer.id} closed"))
            await asyncio.sleep(min(owner.config.timing.heartbeat, 0.2))

    async def _read(self, stream: asyncssh.SSHReader) -> None:
        while True:
            try:
                message = await read_frame(stream)
            except OversizedFrame as error:
                log.warning("server %d: %s; closing the link", self.peer.id, error)
                return
            except BadMessage as error:
                log.warning("server %d: dropped a message: %s", self.peer.id, error)
                continue
            except (asyncio.IncompleteReadError, asyncssh.Error, ConnectionError):
                return
            if isinstance(message, Reply):
                future = self._waiting.get(message.rid)
                if future is not None and not future.done():
                    future.set_result(message)


def reason(error: BaseException) -> str:
    """Why a peer could not be reached or talked to, in a few plain words (for logs, check and the CLI)."""
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, asyncssh.Error):
        return error.reason
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
