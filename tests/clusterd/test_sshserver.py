"""The embedded SSH server as an attacker holding a trusted peer's key finds it: the transfer area and nothing else."""

from __future__ import annotations

import asyncio
import getpass
import os
from pathlib import Path

import asyncssh
import pytest

from clusterd import keys, sshserver, transfer

from .harness import Cluster

USER = getpass.getuser()


def _connect(cluster: Cluster, server: int, key: asyncssh.SSHKey, user: str = USER):
    return asyncssh.connect(
        cluster.address(server), cluster.ssh_port(server), username=user, client_keys=[key],
        known_hosts=([keys.parse_public_key(keys.public_line(cluster.host_keys[server]))], [], []), agent_path=None, config=None, connect_timeout=5,
        password=None, kbdint_auth=False, gss_host=None)


@pytest.fixture
def secondary(cluster_factory) -> Cluster:
    """Server 1 running with its embedded SSH server; server 0's key is trusted there (the attacker holds it)."""
    cluster = cluster_factory([0, 1])
    cluster.start(1)
    cluster.wait("server 1 listening", lambda: cluster.status(1))
    return cluster


def test_a_trusted_key_reaches_the_transfer_area_and_nothing_else(secondary: Cluster):
    cluster = secondary
    server = cluster.dir(1)
    inbox = server / "state" / "sync" / "inbox"
    node_key = server / "state" / "node_key"
    backup = cluster.backup(1)
    before = {path: path.read_bytes() for path in (backup, cluster.config(1), node_key)}
    victim = server / "victim"
    victim.write_text("untouched\n")
    (inbox / "generation-7-7.conf.part").symlink_to(victim)
    part = f"{inbox}/generation-9-9.conf.part"

    attempts = {
        "read /etc/passwd": lambda s: s.open("/etc/passwd", "rb"),
        "read the node key": lambda s: s.open(str(node_key), "rb"),
        "read the node key through ..": lambda s: s.open(f"{inbox}/../../node_key", "rb"),
        "read the node key, relative": lambda s: s.open("state/node_key", "rb"),
        "overwrite the live backup": lambda s: s.open(str(backup), "wb"),
        "overwrite the live backup through ..": lambda s: s.open(f"{inbox}/../../../bqn.conf", "wb"),
        "write beside the cluster file": lambda s: s.open(str(server / "evil.conf"), "wb"),
        "write a final name directly": lambda s: s.open(f"{inbox}/generation-9-9.conf", "wb"),
        "write an unknown name in the area": lambda s: s.open(f"{inbox}/evil", "wb"),
        "write a dotted transfer-like name": lambda s: s.open(f"{inbox}/generation-..conf.part", "wb"),
        "write through a transfer-like directory": lambda s: s.open(f"{inbox}/generation-1.conf/../../x.part", "wb"),
        "write with a doubled slash": lambda s: s.open(f"{inbox}//generation-5-5.conf.part", "wb"),
        "read a transfer file": lambda s: s.open(part, "rb"),
        "append to a transfer file": lambda s: s.open(part, "ab"),
        "write through a symlink in the area": lambda s: s.open(f"{inbox}/generation-7-7.conf.part", "wb"),
        "make a symlink": lambda s: s.symlink("/etc/passwd", f"{inbox}/generation-8-8.conf.part"),
        "make a hard link": lambda s: s.link(str(backup), f"{inbox}/generation-8-8.conf.part"),
        "rename out of the area": lambda s: s.rename(part, str(server / "evil.conf")),
        "rename over the live backup": lambda s: s.posix_rename(part, str(backup)),
        "rename to another generation": lambda s: s.posix_rename(part, f"{inbox}/generation-1-1.conf"),
        "mkdir": lambda s: s.mkdir(f"{inbox}/generation-6-6.conf.part"),
        "setstat": lambda s: s.chmod(part, 0o777),
        "setstat the backup": lambda s: s.chmod(str(backup), 0o777),
        "list the area": lambda s: s.listdir(str(inbox)),
        "list /": lambda s: s.listdir("/"),
        "stat /etc/passwd": lambda s: s.stat("/etc/passwd"),
        "realpath": lambda s: s.realpath("."),
        "remove the cluster file": lambda s: s.remove(str(cluster.config(1))),
        "remove the symlink's target through it": lambda s: s.remove(f"{inbox}/generation-7-7.conf.part"),
        "statvfs": lambda s: s.statvfs("/"),
    }

    async def attack() -> list[str]:
        succeeded = []
        async with asyncio.timeout(60):
            async with _connect(cluster, 1, cluster.node_keys[0]) as connection:
                async with connection.start_sftp_client() as sftp:
                    async with sftp.open(part, "wb") as handle:   # the one thing a transfer does: allowed
                        await handle.write(b"generation text\n")
                    for name, attempt in attempts.items():
                        try:
                            result = await attempt(sftp)
                            if hasattr(result, "close"):
                                await result.close()
                            succeeded.append(name)
                        except asyncssh.SFTPError:
                            pass
                    await sftp.posix_rename(part, f"{inbox}/generation-9-9.conf")
                    await sftp.remove(f"{inbox}/generation-9-9.conf")
        return succeeded

    assert asyncio.run(attack()) == [], "each of these must be refused"
    assert {path: path.read_bytes() for path in before} == before
    assert victim.read_text() == "untouched\n"
    assert not (server / "evil.conf").exists()
    assert sorted(p.name for p in inbox.iterdir()) == ["generation-7-7.conf.part"], "only the planted symlink"
    assert (inbox / "generation-7-7.conf.part").is_symlink()
    assert "refused SFTP" in cluster.log(1)


def test_other_user_names_are_refused_even_with_a_trusted_key(secondary: Cluster):
    async def attempt(user: str) -> None:
        with pytest.raises(asyncssh.PermissionDenied):
            async with asyncio.timeout(20):
                await _connect(secondary, 1, secondary.node_keys[0], user)

    for user in ("nobody", "daemon", USER + "x", ""):
        asyncio.run(attempt(user))
    assert f"transfers log in as {USER!r} only" in secondary.log(1)


def test_a_transfer_as_the_protocol_makes_it_arrives_and_a_probe_leaves_nothing(secondary: Cluster):
    cluster = secondary
    inbox = cluster.dir(1) / "state" / "sync" / "inbox"
    target = transfer.Target(cluster.address(1), cluster.ssh_port(1), USER, cluster.dir(0) / "state" / "node_key",
                             cluster.dir(0) / "state" / "known_hosts")
    name = transfer.file_name(3, 2)
    assert asyncio.run(transfer.push(target, str(inbox), name, b"x" * 100_000)) == 100_000
    assert (inbox / name).read_bytes() == b"x" * 100_000
    assert not os.path.exists(inbox / f"{name}.part")
    assert asyncio.run(transfer.probe(target, str(inbox))) > 0
    assert sorted(p.name for p in inbox.iterdir()) == [name]
    hashed = transfer.file_name("0123456789abcdef" * 4)   # a content-addressed generation id
    asyncio.run(transfer.push(target, str(inbox), hashed, b"z"))
    assert (inbox / hashed).read_bytes() == b"z"
    with pytest.raises(transfer.TransferError, match="transfer area"):
        asyncio.run(transfer.push(target, str(Path(inbox).parent), name, b"y"))


def test_the_area_takes_files_of_a_bounded_size_and_number(secondary: Cluster):
    cluster = secondary
    inbox = cluster.dir(1) / "state" / "sync" / "inbox"

    async def fill() -> tuple[bool, bool]:
        async with asyncio.timeout(60):
            async with _connect(cluster, 1, cluster.node_keys[0]) as connection:
                async with connection.start_sftp_client() as sftp:
                    async with sftp.open(f"{inbox}/generation-1-1.conf.part", "wb") as handle:
                        try:
                            await handle.write(b"xy", transfer.MAX_FILE - 1)
                            too_big = True
                        except asyncssh.SFTPFailure:
                            too_big = False
                    for n in range(2, sshserver.MAX_FILES + 1):
                        async with sftp.open(f"{inbox}/generation-{n}-1.conf.part", "wb") as handle:
                            await handle.write(b"x")
                    try:
                        await sftp.open(f"{inbox}/generation-99-1.conf.part", "wb")
                        too_many = True
                    except asyncssh.SFTPFailure:
                        too_many = False
        return too_big, too_many

    assert asyncio.run(fill()) == (False, False), "neither past the size limit nor the file limit"
    assert len(list(inbox.iterdir())) == sshserver.MAX_FILES
    assert (inbox / "generation-1-1.conf.part").stat().st_size == 0
