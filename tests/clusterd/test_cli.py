"""The operator's commands: add-peer's trust decisions, remove-peer, set-id's instructions, and what status shows."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest

from clusterd import config as cfg
from clusterd import keys
from clusterd.cli import main, render_status

from .harness import Cluster


def known_hosts(cluster: Cluster, i: int) -> Path:
    return cluster.dir(i) / "state" / "known_hosts"


def test_add_peer_refuses_a_changed_ssh_host_key_as_ssh_does_until_it_is_replaced_on_purpose(cluster_factory, capsys):
    cluster = cluster_factory([0, 1])
    new_host_key = asyncssh.generate_private_key("ssh-ed25519")
    new_host_key.write_private_key(str(cluster.dir(1) / "state" / "ssh_host_key"))
    cluster.start(1)
    cluster.wait("server 1 listening", lambda: cluster.status(1))
    recorded_before = known_hosts(cluster, 0).read_text()
    config_before = cluster.config(0).read_text()
    control = keys.fingerprint(cluster.node_keys[1])
    add = ["-c", str(cluster.config(0)), "add-peer", "--id", "1", "--address", cluster.address(1),
           "--ssh-port", str(cluster.ssh_port(1)), "--fingerprint", control]

    assert main(add) == 2
    err = capsys.readouterr().err
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in err
    assert keys.fingerprint(new_host_key) in err, "the fingerprint the server sent"
    assert keys.fingerprint(cluster.host_keys[1]) in err, "the recorded one"
    assert f"{known_hosts(cluster, 0)}:1" in err and "--replace-host-key" in err
    assert known_hosts(cluster, 0).read_text() == recorded_before
    assert cluster.config(0).read_text() == config_before

    assert main([*add, "--replace-host-key", "--ssh-fingerprint", keys.fingerprint(cluster.host_keys[1])]) == 2
    assert "nothing recorded" in capsys.readouterr().err
    assert known_hosts(cluster, 0).read_text() == recorded_before

    assert main([*add, "--replace-host-key", "--ssh-fingerprint", keys.fingerprint(new_host_key)]) == 0
    assert "replacing" in capsys.readouterr().out
    assert [k.public_data for _, k in keys.recorded_host_keys(known_hosts(cluster, 0), cluster.address(1),
                                                               cluster.ssh_port(1))] == [new_host_key.public_data]
    assert main(add) == 0, "the same key again is no change"
    assert "as recorded" in capsys.readouterr().out


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return path


def test_add_peer_refuses_one_key_under_two_ids_and_this_servers_own_key(tmp_path, capsys):
    peer_key = keys.public_line(asyncssh.generate_private_key("ssh-ed25519"))
    path = write(tmp_path, f"id: 0\naddress: 127.0.0.1\npeers:\n  - id: 1\n    address: 127.0.0.2\n"
                           f"    key: {peer_key}\n")
    own = keys.public_line(keys.load_or_create(cfg.load(path).identity))
    before = path.read_text()
    assert main(["-c", str(path), "add-peer", "--id", "2", "--address", "127.0.0.3", "--key", peer_key]) == 2
    err = capsys.readouterr().err
    assert "already recorded for server 1" in err and "remove-peer 1" in err
    assert main(["-c", str(path), "add-peer", "--id", "2", "--address", "127.0.0.3", "--key", own]) == 2
    assert "this server's own key" in capsys.readouterr().err
    assert path.read_text() == before
    assert main(["-c", str(path), "add-peer", "--id", "1", "--address", "127.0.0.9", "--ssh-port", "1",
                 "--key", peer_key]) == 0, "the same key under its own id: an address change"
    assert cfg.load(path).peer(1).address == "127.0.0.9"


def test_remove_peer_takes_effect_in_the_running_daemon(cluster_factory, capsys):
    cluster = cluster_factory([0, 1, 2])
    cluster.start_all()
    cluster.wait("complete", lambda: cluster.complete() or None, 30)
    assert main(["-c", str(cluster.config(0)), "remove-peer", "2"]) == 0
    out = capsys.readouterr().out
    assert keys.fingerprint(cluster.node_keys[2]) in out and "no longer trusted" in out and "picked it up" in out
    assert [p.id for p in cfg.load(cluster.config(0)).peers] == [1]
    assert "# server 0 of a local cluster" in cluster.config(0).read_text(), "comments kept"
    assert not keys.recorded_host_keys(known_hosts(cluster, 0), cluster.address(2), cluster.ssh_port(2))
    assert keys.recorded_host_keys(known_hosts(cluster, 0), cluster.address(1), cluster.ssh_port(1))
    cluster.wait("server 2 gone from server 0's status",
                 lambda: [s["id"] for s in cluster.status(0)["servers"]] == [0, 1] or None, 15)

    async def login_as_2() -> None:
        with pytest.raises(asyncssh.PermissionDenied):
            async with asyncio.timeout(20):
                await asyncssh.connect(
                    cluster.address(0), cluster.base, username="2", client_keys=[cluster.node_keys[2]],
                    known_hosts=([keys.parse_public_key(keys.public_line(cluster.node_keys[0]))], [], []),
                    agent_path=None, config=None, connect_timeout=5)
    asyncio.run(login_as_2())
    assert main(["-c", str(cluster.config(0)), "remove-peer", "2"]) == 2
    assert "not a peer" in capsys.readouterr().err


def test_set_id_says_what_every_other_server_must_do(tmp_path, capsys):
    path = write(tmp_path, "id: 0\naddress: 127.0.0.1\nssh-port: 2222\npeers:\n  - id: 1\n    address: 127.0.0.2\n")
    fingerprint = keys.fingerprint(keys.load_or_create(cfg.load(path).identity))
    assert main(["-c", str(path), "set-id", "5"]) == 0
    out = capsys.readouterr().out
    assert "clusterd remove-peer 0" in out
    assert f"clusterd add-peer --id 5 --address 127.0.0.1 --ssh-port 2222 --fingerprint {fingerprint}" in out


def test_init_refuses_an_address_that_is_not_an_ip_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "cluster.yaml"
    assert main(["-c", str(path), "init", "--id", "0", "--address", "not-an-ip"]) == 2
    assert "is not an IP address" in capsys.readouterr().err
    assert not path.exists() and not (tmp_path / "state").exists()
    assert main(["-c", str(path), "init", "--id", "0", "--address", "bqn0"]) == 2
    assert main(["-c", str(path), "init", "--id", "0", "--address", "::1"]) == 0


def test_the_cluster_file_option_goes_before_or_after_the_command_and_there_is_a_version(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    assert main(["init", "--id", "3", "--address", "127.0.0.1", "-c", str(path)]) == 0
    assert cfg.load(path).id == 3
    assert main(["set-id", "4", "--config", str(path)]) == 0
    assert main(["-c", str(tmp_path / "elsewhere.yaml"), "set-id", "6", "-c", str(path)]) == 0, "the later one"
    assert cfg.load(path).id == 6
    done = subprocess.run([sys.executable, "-m", "clusterd", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and re.fullmatch(r"clusterd \d+\.\d+\.\d+\n", done.stdout)


def test_status_explains_its_columns_keeps_them_aligned_and_names_the_generation_by_digest(cluster_factory, capsys):
    cluster = cluster_factory([0, 1, 2])
    cluster.start(0)
    cluster.start(1)
    cluster.wait("0 and 1 in sync", lambda: all(cluster.seen(0, i) and cluster.seen(0, i)["sync"] == "in sync"
                                                 for i in (0, 1)) or None, 30)
    assert main(["-c", str(cluster.config(0)), "status"]) == 0
    out = capsys.readouterr().out
    data = cluster.status(0)
    digest = data["generation"]["digest"][:12]
    assert f"digest {digest}" in out.splitlines()[0], "the generation by the hash the rows show"
    assert f"  {digest}  in sync" in out
    assert "*: this server" in out
    fuses = {s["id"]: s["silent_after"] for s in data["servers"] if not s["this"]}
    base = 0.2 * 3  # the local cluster's heartbeat interval × missed
    assert base - 0.01 <= fuses[1] <= 4 * base + 0.01, "a linked peer's fuse: its detection time, or more if late"
    assert fuses[2] is not None, "server 2 is linked (a small cluster is a mesh), though it never started"
    for seconds in (0.2, 99.96, 100.0, 1234.5, 7200.0, 10 ** 7):
        data["servers"][1]["last_heartbeat"] = seconds
        lines = render_status(data)
        header = lines[1]
        end = header.index("GEN") + 3
        for row in lines[2:5]:
            assert row[end - 4:end].strip().isdigit() and row[end:end + 2] == "  ", (seconds, row)
