"""Faults during distribution: a corrupted copy, a secondary killed mid-sync, a primary killed after an edit."""

from __future__ import annotations

import asyncio
import getpass
import sys
import threading

import asyncssh
import pytest

from clusterd import keys, sshserver

from .harness import FIXTURES
from .test_sync import V1, V2, all_have, third

sys.path.insert(0, str(FIXTURES.parent / "bench"))
from generate import backup as big_backup  # noqa: E402


class CorruptFirstCopy(sshserver.TransferArea):
    """A real SFTP server that flips one byte of the first file written to it, then behaves."""

    corrupted = 0

    def write(self, file_obj, offset, data):
        if CorruptFirstCopy.corrupted == 0 and data:
            CorruptFirstCopy.corrupted += 1
            data = bytes([data[0] ^ 0x20]) + data[1:]
        return super().write(file_obj, offset, data)


class Background:
    """An asyncio loop in a thread, for a server the test process runs itself."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def test_a_corrupted_copy_is_not_applied_and_is_sent_again(cluster_factory):
    cluster = cluster_factory([0, 1], backups={0: V1[0], 1: V1[1]}, serve={0})
    background = Background()
    try:
        host_key = cluster.host_keys[1]
        trusted = [keys.parse_public_key(keys.public_line(cluster.node_keys[0]))]
        server = background.run(sshserver.start(cluster.address(1), cluster.ssh_port(1), host_key, lambda: trusted,
                                                cluster.dir(1) / "state" / "sync" / "inbox", getpass.getuser(),
                                                sftp_factory=CorruptFirstCopy))
        cluster.start_all()
        cluster.wait("complete", lambda: cluster.complete() or None, 25)
        assert CorruptFirstCopy.corrupted == 1
        assert "hash mismatch" in cluster.log(1) and "not applied" in cluster.log(1)
        assert cluster.digest(1) == cluster.digest(0)
        assert "rule sw-updates-at-peak" in cluster.backup(1).read_text()
        server.close()
    finally:
        background.close()


def test_a_secondary_killed_mid_sync_converges_when_it_returns(cluster_factory):
    big = big_backup(60000, seed=3)
    cluster = cluster_factory([0, 1], backups={0: big, 1: V1[1]})
    original = cluster.backup(1).read_text()
    inbox = cluster.dir(1) / "state" / "sync" / "inbox"
    cluster.start(0)
    cluster.wait("server 0 up first, so that its configuration is the cluster's", lambda: cluster.status(0), 20)
    cluster.start(1)
    cluster.wait("the copy arriving", lambda: inbox.is_dir() and any(inbox.iterdir()) or None, 90, every=0.002)
    cluster.kill(1)
    assert "applied generation" not in cluster.log(1), "killed before the generation was applied"
    text = cluster.backup(1).read_text()
    assert text == original or cluster.digest(1) == cluster.digest(0), "never half a backup"
    cluster.start(1)
    cluster.wait("complete", lambda: cluster.complete() or None, 60)
    assert cluster.digest(1) == cluster.digest(0)
    assert not [p for p in inbox.iterdir()], "nothing left in the inbox"


@pytest.mark.parametrize("acknowledged", [True, False], ids=["after-an-ack", "at-once"])
def test_the_primary_dies_right_after_an_edit_and_the_change_is_not_lost(cluster_factory, acknowledged):
    cluster = cluster_factory([0, 1, 2], backups={0: V2[0], 1: V2[1], 2: third(V2[1])}, hold=1.0)
    cluster.start_all()
    cluster.wait("complete", lambda: cluster.complete() or None, 25)
    generation = cluster.status(0)["generation"]["number"]
    cluster.edit(0, "  server 8.8.8.8\n", "  server 8.8.8.8\n  server 9.9.9.9\n")
    if acknowledged:
        cluster.wait("a secondary acknowledged", lambda: all_have(cluster, (1,), "server 9.9.9.9"), 15)
    cluster.kill(0)
    cluster.wait("server 1 primary", lambda: cluster.agreed_primary() == 1 or None, 10)
    if acknowledged:
        cluster.wait("the edit on both survivors", lambda: all_have(cluster, (1, 2), "server 9.9.9.9"), 15)
    cluster.start(0)
    cluster.wait("the edit everywhere", lambda: all_have(cluster, (0, 1, 2), "server 9.9.9.9"), 25)
    cluster.wait("server 0 primary and complete", lambda: cluster.agreed_primary() == 0 and cluster.complete()
                 or None, 25)
    assert cluster.status(2)["generation"]["number"] > generation
