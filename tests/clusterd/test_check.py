"""``clusterd check`` says OK only when every way a link is used works: both logins and a real transfer."""

from __future__ import annotations

import asyncio
import getpass
import os

import asyncssh
import pytest

from clusterd import config as cfg
from clusterd import keys
from clusterd.cli import main

from .test_openssh import SSHD, start_sshd
from .test_sync import V1

OPENSSH = pytest.mark.skipif(not os.path.exists(SSHD), reason="OpenSSH server not installed (.ci/run installs it)")


def untrust(path, peer_id: int) -> None:
    """The peer entry stays, its recorded key goes: what a server that never ran add-peer for it has."""
    def change(document) -> None:
        entry = next(item for item in document["peers"] if item["id"] == peer_id)
        del entry["key"]
    cfg.edit(path, change)


def check(cluster, capsys, server: int = 0, peer: int = 1) -> tuple[int, str]:
    code = main(["-c", str(cluster.config(server)), "check", "--peer", str(peer)])
    return code, capsys.readouterr().out


def test_check_tries_both_logins_and_a_real_transfer_before_it_says_ok(cluster_factory, capsys):
    cluster = cluster_factory([0, 1])
    cluster.start_all()
    cluster.wait("complete", lambda: cluster.complete() or None, 30)
    code, out = check(cluster, capsys)
    assert code == 0, out
    assert "control login as server 0: accepted" in out
    assert "server 1's link to this server: up" in out
    assert "a probe file written, renamed and removed" in out
    assert "verdict: OK" in out
    inbox = cluster.dir(1) / "state" / "sync" / "inbox"
    assert not list(inbox.iterdir()), "the probe is gone"


def test_check_is_not_ok_while_the_peer_does_not_trust_this_servers_key(cluster_factory, capsys):
    cluster = cluster_factory([0, 1])
    untrust(cluster.config(1), 0)
    cluster.start_all()
    cluster.wait("both running", lambda: cluster.status(0) and cluster.status(1), 30)
    code, out = check(cluster, capsys)
    assert code == 1, out
    fingerprint = keys.fingerprint(cluster.node_keys[0])
    assert "control key" in out and "the recorded one" in out, "this side trusts server 1"
    assert "control login as server 0: refused" in out
    assert f"server 1 does not trust this server's key yet: on server 1 run clusterd add-peer --id 0 " \
           f"--address {cluster.address(0)} --ssh-port {cluster.ssh_port(0)} --fingerprint {fingerprint}" in out
    assert "server 1's link to this server: down" in out, "without server 0's key it cannot verify server 0"
    assert "verdict: OK" not in out


def test_check_without_the_daemon_running_here_does_not_say_ok(cluster_factory, capsys):
    cluster = cluster_factory([0, 1])
    cluster.start(1)
    cluster.wait("server 1 listening", lambda: cluster.status(1))
    code, out = check(cluster, capsys)
    assert code == 1, out
    assert "control login as server 0: accepted" in out
    assert "start clusterd here and check again" in out


@OPENSSH
def test_check_is_not_ok_when_openssh_refuses_this_servers_key(cluster_factory, capsys):
    """The likeliest setup mistake: this server's key not in the peer's authorized_keys."""
    cluster = cluster_factory([0, 1], backups={0: V1[0], 1: V1[1]}, serve={0})
    sshd = start_sshd(cluster.root / "sshd", cluster.address(1), cluster.ssh_port(1), cluster.host_keys[1], [])
    try:
        cluster.start_all()
        cluster.wait("server 1 up on server 0", lambda: (s := cluster.seen(0, 1)) and s["up"] or None, 30)
        code, out = check(cluster, capsys)
        assert code == 1, out
        assert "control login as server 0: accepted" in out
        assert f"refused the key {cluster.dir(0) / 'state' / 'node_key'}" in out
        assert "authorized_keys" in out and "verdict: OK" not in out
    finally:
        sshd.terminate()
        sshd.wait(timeout=10)


@OPENSSH
def test_a_key_restricted_to_sftp_in_authorized_keys_is_enough_and_gets_no_shell(cluster_factory, capsys):
    """The docs' advice: restrict,command="internal-sftp" in front of the peer's key."""
    cluster = cluster_factory([0, 1], backups={0: V1[0], 1: V1[1]}, serve={0})
    line = f'restrict,command="internal-sftp" {keys.public_line(cluster.node_keys[0])}'
    sshd = start_sshd(cluster.root / "sshd", cluster.address(1), cluster.ssh_port(1), cluster.host_keys[1], [line])
    try:
        cluster.start_all()
        cluster.wait("complete through OpenSSH", lambda: cluster.complete() or None, 30)
        assert "rule sw-updates-at-peak" in cluster.backup(1).read_text()
        code, out = check(cluster, capsys)
        assert code == 0, out

        async def shell() -> str:
            async with asyncio.timeout(20):
                async with asyncssh.connect(
                        cluster.address(1), cluster.ssh_port(1), username=getpass.getuser(),
                        client_keys=[cluster.node_keys[0]], known_hosts=None, agent_path=None, config=None) as c:
                    done = await c.run("echo shell-$((6*7))", timeout=10)
                    return str(done.stdout)
        assert "shell-42" not in asyncio.run(shell())
    finally:
        sshd.terminate()
        sshd.wait(timeout=10)
