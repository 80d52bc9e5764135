"""Trust under attack and load (issue 11): revocation, pre-auth floods, malformed frames, memory, bad edits."""

from __future__ import annotations

import asyncio
import resource
import socket
import struct
import time

import asyncssh

from clusterd import keys
from clusterd.admin import READ_TIMEOUT
from clusterd.cli import main
from clusterd.config import load
from clusterd.protocol import Fetch, Heartbeat, Reply, Visibility, encode, read_frame

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


async def reply_on(stream: asyncssh.SSHReader) -> Reply:
    """The next reply on a peer's channel; the daemon's heartbeats and throughput ride it too (``clusterd.links``)."""
    while True:
        message = await read_frame(stream)
        if isinstance(message, Reply):
            return message
        assert isinstance(message, (Heartbeat, Visibility)), message


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


def test_a_changed_or_removed_key_cuts_the_sessions_it_opened(cluster_factory, capsys):
    """docs/clusterd.md, "Taking trust back": add-peer with a new key or remove-peer closes the old key's sessions."""
    cluster = cluster_factory([0, 1, 2])
    cluster.start(0)
    cluster.wait("the daemon", lambda: cluster.status(0))
    config = cluster.config(0)
    user = load(config).ssh.user
    replacement = keys.public_line(asyncssh.generate_private_key("ssh-ed25519"))

    async def fetch(process: asyncssh.SSHClientProcess) -> Reply:
        process.stdin.write(encode(Fetch(rid=7)))
        async with asyncio.timeout(10):
            return await reply_on(process.stdout)

    async def scenario() -> None:
        old_1 = await login(cluster, 0, 1, cluster.node_keys[1])
        old_2 = await login(cluster, 0, 2, cluster.node_keys[2])
        channel_1 = await old_1.create_process(encoding=None)
        channel_2 = await old_2.create_process(encoding=None)
        sftp_2 = await asyncssh.connect(
            cluster.address(0), cluster.ssh_port(0), username=user, client_keys=[cluster.node_keys[2]],
            known_hosts=([keys.parse_public_key(keys.public_line(cluster.host_keys[0]))], [], []), agent_path=None, config=None, connect_timeout=5)
        for channel in (channel_1, channel_2):
            assert "hostname" in (await fetch(channel)).body["text"]
        assert await asyncio.to_thread(main, ["-c", str(config), "add-peer", "--id", "1", "--address", cluster.address(1),
                     "--ssh-port", str(cluster.ssh_port(1)), "--key", replacement]) == 0
        async with asyncio.timeout(10):
            await old_1.wait_closed()
        assert (await fetch(channel_2)).ok, "a session whose key is still trusted stays"
        assert await asyncio.to_thread(main, ["-c", str(config), "remove-peer", "2"]) == 0
        async with asyncio.timeout(10):
            await old_2.wait_closed()
            await sftp_2.wait_closed()

    asyncio.run(scenario())
    log = cluster.log(0)
    assert "closed server 1's control session" in log and "closed server 2's control session" in log, log[-3000:]
    assert "closed an SFTP session" in log
    cluster.wait("server 1 down", lambda: not cluster.seen(0, 1)["up"] or None, 10)
    assert "Traceback" not in log


def test_a_flood_of_idle_connections_leaves_the_cli_and_merging_working(cluster_factory):
    """1,100 connections that never log in, from many loopback addresses, against a daemon with systemd's 1,024 descriptors."""
    cluster = cluster_factory([0, 1])
    cluster.start_all()
    cluster.wait("complete", cluster.complete, 30)
    resource.prlimit(cluster.processes[0].pid, resource.RLIMIT_NOFILE, (1024, 1024))
    lines_before = cluster.log(0).count("\n")

    async def flood() -> None:
        async def one(n: int) -> asyncio.StreamWriter | None:
            try:
                async with asyncio.timeout(10):
                    _, writer = await asyncio.open_connection(
                        cluster.address(0), cluster.base, local_addr=(f"127.0.0.{10 + n % 200}", 0))
                    return writer
            except (OSError, TimeoutError):
                return None
        writers = [w for w in await asyncio.gather(*(one(n) for n in range(1100))) if w is not None]
        try:
            assert len(writers) > 500, "the flood connects"
            status = await asyncio.to_thread(cluster.status, 0)
            assert status is not None and status["server"] == 0, "the local socket answers during the flood"
            await asyncio.to_thread(cluster.edit, 1, "  server 8.8.8.8\n", "  server 8.8.8.8\n  server 9.9.9.9\n")
            await asyncio.to_thread(
                cluster.wait, "the edit merged on the primary during the flood",
                lambda: "server 9.9.9.9" in cluster.backup(0).read_text() or None, 30)
        finally:
            for writer in writers:
                writer.close()

    asyncio.run(flood())
    cluster.wait("complete after the flood", cluster.complete, 30)
    cluster.wait("the summary of refusals", lambda: "refused" in cluster.log(0) or None, 30)
    log = cluster.log(0)
    added = log.count("\n") - lines_before
    assert added < 40, f"{added} log lines for one flood:\n{log[-4000:]}"
    assert "refusing connections from 127.0.0." in log and "waiting to log in" in log
    assert "Traceback" not in log


def test_status_says_why_a_peer_is_down(cluster_factory, capsys):
    """A peer that stopped trusting this server: its row says so and what to do, as the log does."""
    cluster = cluster_factory([0, 1])
    cluster.start_all()
    cluster.wait("complete", cluster.complete, 30)
    assert main(["-c", str(cluster.config(1)), "remove-peer", "0"]) == 0
    row = cluster.wait("server 1 down on server 0, with the reason",
                       lambda: (lambda r: r if not r["up"] and r["error"] else None)(cluster.seen(0, 1)), 20)
    assert row["sync"] == "disconnected"
    assert "server 1 does not trust this server's key yet (run clusterd add-peer --id 0 there)" in row["error"]
    capsys.readouterr()
    main(["-c", str(cluster.config(0)), "status"])
    assert "does not trust this server's key yet" in capsys.readouterr().out


BROKEN = ("rule business\n  subscriber-group business\n  policy plan-100M\n",
          "rule business\n  subscriber-group business\n  policy plan-missing\n")


def where_broken(cluster: Cluster, i: int) -> str:
    """``FILE:LINE:COLUMN`` of the dangling policy name in server i's backup."""
    lines = cluster.backup(i).read_text().splitlines()
    line = lines.index("  policy plan-missing") + 1
    return f"{cluster.backup(i)}:{line}:10: error:"


def observe(seconds: float, check) -> None:
    """``check`` holds every 0.1 s for ``seconds`` (a bounded watch that something does not happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        check()
        time.sleep(0.1)


def own_row(cluster: Cluster, i: int) -> dict:
    return cluster.seen(i, i)


def test_an_invalid_backup_on_the_primary_is_not_distributed_and_status_says_where(cluster_factory):
    cluster = cluster_factory([0, 1])
    cluster.start_all()
    cluster.wait("complete", cluster.complete, 30)
    generation = cluster.status(0)["generation"]["number"]
    cluster.edit(0, *BROKEN)
    where = where_broken(cluster, 0)
    row = cluster.wait("the reason in server 0's status",
                       lambda: (lambda r: r if r["error"] and where in r["error"] else None)(own_row(cluster, 0)), 20)
    assert "policy 'plan-missing' names a missing 'policy rate' section" in row["error"] and row["sync"] == "changes pending"

    def nothing_distributed() -> None:
        assert "plan-missing" not in cluster.backup(1).read_text()
        assert cluster.status(0)["generation"]["number"] == generation
    observe(3, nothing_distributed)
    assert cluster.status(0)["status"] == "incomplete"
    assert cluster.log(0).count(where) == 1, cluster.log(0)[-3000:]
    assert "sync failed" not in cluster.log(0) and "not be valid" not in cluster.log(1)
    cluster.edit(0, BROKEN[1], BROKEN[0])
    cluster.edit(0, "  server 8.8.8.8\n", "  server 8.8.8.8\n  server 9.9.9.9\n")
    cluster.wait("the fixed backup's edit distributed", lambda: "9.9.9.9" in cluster.backup(1).read_text() or None, 20)
    cluster.wait("complete again", cluster.complete, 20)


def test_an_invalid_edit_on_a_secondary_says_why_and_is_not_resent(cluster_factory):
    cluster = cluster_factory([0, 1])
    cluster.start_all()
    cluster.wait("complete", cluster.complete, 30)
    cluster.edit(1, *BROKEN)
    where = where_broken(cluster, 1)
    cluster.wait("the reason in server 1's status",
                 lambda: (lambda r: r["error"] and where in r["error"] or None)(own_row(cluster, 1)), 20)
    lines = [cluster.log(i).count("\n") for i in (0, 1)]

    def not_taken_in() -> None:
        assert "plan-missing" not in cluster.backup(0).read_text()
    observe(3, not_taken_in)
    added = [cluster.log(i).count("\n") - lines[i] for i in (0, 1)]
    assert max(added) <= 3, f"log lines added in 3 s: {added}\n{cluster.logs()}"
    assert cluster.log(1).count(where) == 1
    assert own_row(cluster, 1)["sync"] == "changes pending"


def vm_rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_churning_sessions_do_not_grow_the_daemon(cluster_factory):
    """400 sessions of a trusted peer, each fetching the backup, while the daemon re-parses its backup every 0.3 s."""
    import gc

    from confmerge import parse

    from .harness import FIXTURES

    frozen = gc.get_freeze_count()
    parse((FIXTURES / "bqn1-v1.conf").read_text(), "bqn1-v1.conf")
    assert gc.get_freeze_count() == frozen, "a parse leaves the collector unfrozen"

    cluster = cluster_factory([0, 1], drift=0.3)
    cluster.start(0)
    cluster.wait("the daemon", lambda: cluster.status(0))
    pid = cluster.processes[0].pid

    async def session() -> None:
        async with await login(cluster, 0, 1, cluster.node_keys[1]) as connection:
            process = await connection.create_process(encoding=None)
            process.stdin.write(encode(Fetch(rid=1)))
            async with asyncio.timeout(10):
                reply = await reply_on(process.stdout)
            assert reply.ok

    async def churn(count: int) -> None:
        for _ in range(count // 4):  # fewer at once than the 8 a source may have waiting to log in
            await asyncio.gather(*(session() for _ in range(4)))

    asyncio.run(churn(150))
    before = vm_rss_kb(pid)
    sessions = 400
    asyncio.run(churn(sessions))
    growth = vm_rss_kb(pid) - before
    assert growth / sessions < 5, f"the daemon grew {growth} KB over {sessions} sessions"
