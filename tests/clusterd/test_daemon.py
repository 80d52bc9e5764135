"""The daemon at its edges: who may talk to it, what it survives, and the operator's commands against it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import stat
import struct
import subprocess
import sys

import asyncssh
import pytest

from clusterd import keys
from clusterd.cli import main
from clusterd.protocol import MAX_FRAME, Heartbeat, encode

from .harness import FIXTURES, Cluster, free_base, status_of, wait_for


async def login(cluster: Cluster, server: int, as_id: int, key: asyncssh.SSHKey):
    return await asyncssh.connect(
        cluster.address(server), cluster.base + server, username=str(as_id), client_keys=[key],
        known_hosts=([keys.parse_public_key(keys.public_line(cluster.node_keys[server]))], [], []), agent_path=None, config=None, connect_timeout=5)


def test_a_login_with_an_unknown_key_is_refused_and_logged(cluster_factory):
    cluster = cluster_factory([0, 1])
    cluster.start_all()
    cluster.wait("ready", lambda: cluster.agreed_primary() == 0 or None)
    stranger = asyncssh.generate_private_key("ssh-ed25519")

    async def attempt(as_id):
        with pytest.raises(asyncssh.PermissionDenied):
            async with asyncio.timeout(10):
                await login(cluster, 0, as_id, stranger)
    asyncio.run(attempt(1))
    asyncio.run(attempt(7))
    fingerprint = stranger.get_fingerprint("sha256")
    cluster.wait("the refusal in the log", lambda: fingerprint in cluster.log(0) or None, 5)
    assert cluster.agreed_primary() == 0


def test_a_peers_key_under_another_id_is_refused(cluster_factory):
    cluster = cluster_factory([0, 1, 2])
    cluster.start(0)

    async def attempt():
        with pytest.raises(asyncssh.PermissionDenied):
            async with asyncio.timeout(10):
                await login(cluster, 0, 2, cluster.node_keys[1])
    cluster.wait("listening", lambda: cluster.status(0))
    asyncio.run(attempt())


def test_garbage_bad_frames_and_an_oversized_frame_change_nothing(cluster_factory):
    cluster = cluster_factory([0, 1, 2])
    cluster.start(0)
    cluster.start(2)
    cluster.wait("0 primary, seen by 2", lambda: cluster.status(2) and cluster.status(2)["primary"] == 0 or None, 20)
    before = cluster.status(0)

    for junk in (os.urandom(4096), b"SSH-2.0-x\r\n" + os.urandom(2048), b"\x00" * 70000):
        with socket.create_connection((cluster.address(0), cluster.base), timeout=5) as raw:
            try:
                raw.sendall(junk)
                raw.settimeout(5)
                while raw.recv(65536):
                    pass
            except OSError:
                pass

    async def as_peer_1():
        async with await login(cluster, 0, 1, cluster.node_keys[1]) as connection:
            process = await connection.create_process(encoding=None)
            for body in (b"not json", b'{"type": "launch"}', b'{"type": "heartbeat"}', b"[]"):
                process.stdin.write(struct.pack(">I", len(body)) + body)
            beat = Heartbeat(id=1, epoch=0, primary=None, uptime=0.1, sees=[1], head="", generation=0, digest="",
                             state="awaiting initial sync", inbox="/nonexistent")
            process.stdin.write(encode(beat))
            await asyncio.sleep(0.5)
            seen = cluster.status(0)["servers"][1]["up"]
            process.stdin.write(struct.pack(">I", MAX_FRAME + 1) + b"x" * 1024)
            async with asyncio.timeout(10):
                await process.wait_closed()
            return seen
    assert asyncio.run(as_peer_1()), "a good heartbeat after bad frames still counts"
    after = cluster.status(0)
    assert (after["epoch"], after["primary"], after["state"]) == (before["epoch"], before["primary"], before["state"])
    assert cluster.processes[0].poll() is None
    log = cluster.log(0)
    assert "dropped a message" in log and "over the" in log
    assert "Traceback" not in log


def test_check_against_a_live_peer_a_closed_port_and_wrong_keys(cluster_factory, capsys):
    cluster = cluster_factory([0, 1, 2])
    cluster.start(0)
    cluster.start(1)
    cluster.wait("ready", lambda: cluster.status(1) and cluster.status(1)["primary"] == 0 or None, 20)

    assert main(["-c", str(cluster.config(0)), "check", "--peer", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"control port 127\.0\.0\.2:\d+: open \(\d+\.\d ms\)", out)
    assert "the recorded one" in out and "known" in out and "verdict: OK" in out

    assert main(["-c", str(cluster.config(0)), "check", "--peer", "2", "--timeout", "2"]) == 1
    out = capsys.readouterr().out
    assert f"control port 127.0.0.3:{cluster.base + 2}: closed" in out
    assert "start clusterd on server 2" in out and f"open TCP {cluster.base + 2}" in out

    other = asyncssh.generate_private_key("ssh-ed25519")
    keys.add_known_host(cluster.dir(0) / "state" / "known_hosts", cluster.address(1), cluster.ssh_port(1), other)
    text = cluster.config(0).read_text().replace(keys.public_line(cluster.node_keys[1]), keys.public_line(other))
    cluster.config(0).write_text(text)
    assert main(["-c", str(cluster.config(0)), "check", "--peer", "1"]) == 1
    out = capsys.readouterr().out
    assert "wrong control key" in out and "wrong SSH host key" in out


def test_the_local_socket_is_private_and_status_prints_the_cluster(cluster_factory, capsys):
    cluster = cluster_factory([0, 1])
    cluster.start_all()
    cluster.wait("complete", cluster.complete, 20)
    mode = stat.S_IMODE((cluster.dir(0) / "state" / "clusterd.sock").stat().st_mode)
    assert mode == 0o600
    assert main(["-c", str(cluster.config(1)), "status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cluster: state ready, status complete")
    assert re.search(r"\* +1 +127\.0\.0\.2 +secondary +up", out)
    assert re.search(r"  +0 +127\.0\.0\.1 +primary +up +\d+\.\d s ago", out)
    assert main(["-c", str(cluster.config(1)), "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["sync"] for s in data["servers"]] == ["in sync", "in sync"]


def test_status_without_a_daemon_is_a_plain_error(tmp_path, capsys):
    path = tmp_path / "cluster.yaml"
    path.write_text("id: 0\naddress: 127.0.0.1\n")
    assert main(["-c", str(path), "status"]) == 2
    assert "clusterd is not running" in capsys.readouterr().err


def test_the_guides_procedure_add_peer_on_both_sides_makes_a_cluster(tmp_path, capsys):
    """Init both servers, run them, add each to the other (checking the fingerprint): ready and complete."""
    base = free_base(2)
    configs = []
    fingerprints = []
    for i in (0, 1):
        path = tmp_path / f"bqn{i}" / "cluster.yaml"
        assert main(["-c", str(path), "init", "--id", str(i), "--address", f"127.0.0.{i + 1}",
                     "--port-base", str(base), "--ssh-port", str(base + 300 + i)]) == 0
        fingerprints.append(re.search(r"fingerprint (SHA256:\S+)", capsys.readouterr().out).group(1))
        path.write_text(path.read_text().replace("serve: false", "serve: true"))
        (path.parent / "bqn.conf").write_text((FIXTURES / f"bqn{i}-v1.conf").read_text())
        configs.append(path)
    processes = [subprocess.Popen([sys.executable, "-m", "clusterd", "-c", str(c), "run"],
                                  stdout=subprocess.DEVNULL, stderr=open(c.parent / "log", "wb"),
                                  stdin=subprocess.DEVNULL) for c in configs]
    try:
        wait_for("both listening", lambda: all(status_of(c) for c in configs) or None, 20)
        wrong = "SHA256:" + "A" * 43
        assert main(["-c", str(configs[0]), "add-peer", "--id", "1", "--address", "127.0.0.2",
                     "--ssh-port", str(base + 301), "--fingerprint", wrong]) == 2
        assert "not trusted" in capsys.readouterr().err
        assert main(["-c", str(configs[0]), "add-peer", "--id", "1", "--address", "127.0.0.2",
                     "--ssh-port", str(base + 301), "--fingerprint", fingerprints[1],
                     "--ssh-fingerprint", wrong]) == 2
        assert "nothing recorded" in capsys.readouterr().err
        assert "peers: []" in configs[0].read_text()
        assert main(["-c", str(configs[0]), "add-peer", "--id", "1", "--address", "127.0.0.2",
                     "--ssh-port", str(base + 301), "--fingerprint", fingerprints[1]]) == 0
        out = capsys.readouterr().out
        assert f"has key {fingerprints[1]}" in out and "picked it up" in out
        assert main(["-c", str(configs[1]), "add-peer", "--id", "0", "--address", "127.0.0.1",
                     "--ssh-port", str(base + 300), "--yes"]) == 0
        capsys.readouterr()
        wait_for("ready and complete", lambda: all(
            (s := status_of(c)) and s["status"] == "complete" and s["primary"] == 0 for c in configs) or None, 30)
        assert "refused a control login" in (configs[1].parent / "log").read_text(), \
            "until it was added there, server 0 was refused"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def test_set_id_and_set_self_address_take_effect_in_the_running_daemon(cluster_factory, capsys):
    cluster = cluster_factory([0])
    cluster.start(0)
    cluster.wait("running", lambda: cluster.status(0))
    assert main(["-c", str(cluster.config(0)), "set-id", "7"]) == 0
    assert "restarts with it" in capsys.readouterr().out
    status = cluster.wait("server 7", lambda: (s := cluster.status(0)) and s["server"] == 7 and s or None, 15)
    assert status["servers"][0]["id"] == 7
    # the old daemon already says 7 (it took the new file) while it stops: the new one listens a moment later
    cluster.wait("control port of server 7", lambda: listening(cluster.address(0), cluster.base + 7), 15)
    assert main(["-c", str(cluster.config(0)), "set-self-address", "127.0.0.9"]) == 0
    cluster.wait("on the new address", lambda: (s := cluster.status(0)) and s["servers"][0]["address"] == "127.0.0.9"
                 or None, 15)
    cluster.wait("control port on 127.0.0.9", lambda: listening("127.0.0.9", cluster.base + 7), 15)


def listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=5):
            return True
    except ConnectionRefusedError:
        return False


def test_a_second_daemon_on_the_same_cluster_file_stops_with_a_plain_error(cluster_factory):
    cluster = cluster_factory([0])
    cluster.start(0)
    cluster.wait("running", lambda: cluster.status(0))
    second = subprocess.run([sys.executable, "-m", "clusterd", "-c", str(cluster.config(0)), "run"],
                            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert second.returncode == 2
    assert f"clusterd is already running for {cluster.config(0)} (pid {cluster.processes[0].pid})" in second.stderr
    assert "Traceback" not in second.stderr
    assert cluster.status(0) is not None, "the first one still answers"
