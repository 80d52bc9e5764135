"""Trust under attack and load (issue 11): revocation, pre-auth floods, malformed frames, memory, bad edits."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import asyncssh

from clusterd import keys
from clusterd.admin import READ_TIMEOUT
from clusterd.protocol import Heartbeat, encode

from .harness import Cluster, wait_for

DEEP = b'{"type":"status","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
HUGE_INT = b'{"type":"status","x":' + b"7" * 5000 + b"}"


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def local_exchange(cluster: Cluster, server: int, data: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes to a daemon's local socket; what it answers until it closes."""
    path = cluster.dir(server) / "state" / "clusterd.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


async def login(cluster: Cluster, server: int, as_id: int, key: asyncssh.SSHKey) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        cluster.address(server), cluster.base + server, username=str(as_id), client_keys=[key],
        known_hosts=([keys.parse_public_key(keys.public_line(cluster.node_keys[server]))], [], []),
        agent_path=None, config=None, connect_timeout=5)


def test_malformed_local_requests_get_an_answer_and_leaving_clients_no_traceback(cluster_factory):
    cluster = cluster_factory([0])
    cluster.start(0)
    cluster.wait("the daemon", lambda: cluster.status(0))
    for body in (HUGE_INT, DEEP):
        reply = local_exchange(cluster, 0, frame(body))
        assert b'"ok": false' in reply and b"bad request" in reply, reply[:300]
    path = str(cluster.dir(0) / "state" / "clusterd.sock")
    for data in (frame(b'{"type":"status"}'), frame(b'{"type":"status"}')[:6], b"\x00\x00", frame(DEEP)):
        for _ in range(10):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(path)
                sock.sendall(data)
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        idle.settimeout(READ_TIMEOUT + 20)
        idle.connect(path)
        started = time.monotonic()
        assert idle.recv(100) == b"", "an idle client is let go"
        assert time.monotonic() - started < READ_TIMEOUT + 15
    finally:
        idle.close()
    assert cluster.status(0)["server"] == 0
    assert cluster.processes[0].poll() is None
    assert "Traceback" not in cluster.log(0), cluster.log(0)[-3000:]


def test_a_trusted_peers_malformed_frames_are_dropped_and_logged_and_the_channel_stays(cluster_factory):
    cluster = cluster_factory([0, 1])
    cluster.start(0)
    cluster.wait("the daemon", lambda: cluster.status(0))

    async def as_peer_1() -> bool:
        async with await login(cluster, 0, 1, cluster.node_keys[1]) as connection:
            process = await connection.create_process(encoding=None)
            for body in (HUGE_INT.replace(b"status", b"heartbeat"), DEEP.replace(b"status", b"heartbeat")):
                process.stdin.write(frame(body))
            beat = Heartbeat(id=1, epoch=0, primary=None, uptime=0.1, sees=[1], head="", generation=0, digest="",
                             state="awaiting initial sync", inbox="/nonexistent")
            process.stdin.write(encode(beat))
            return await asyncio.to_thread(
                wait_for, "server 1 up after the bad frames", lambda: cluster.seen(0, 1)["up"] or None, 10)
    assert asyncio.run(as_peer_1())
    log = cluster.log(0)
    assert log.count("server 1: dropped a message: not a JSON message") == 2, log[-3000:]
    assert "Traceback" not in log
