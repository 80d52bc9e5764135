"""Interop: on a real BQN, port 22 is OpenSSH. The primary copies to Debian's sshd on a loopback port."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from clusterd import keys
from clusterd.cli import main

from .test_sync import V1

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"

pytestmark = pytest.mark.skipif(not Path(SSHD).exists(), reason="OpenSSH server not installed (.ci/run installs it)")


def start_sshd(directory: Path, address: str, port: int, host_key, authorized: list[str]) -> subprocess.Popen:
    directory.mkdir(parents=True, exist_ok=True)
    key_path = directory / "ssh_host_ed25519_key"
    host_key.write_private_key(str(key_path))
    key_path.chmod(0o600)
    (directory / "authorized_keys").write_text("".join(f"{line}\n" for line in authorized))
    config = directory / "sshd_config"
    config.write_text(
        f"ListenAddress {address}:{port}\nHostKey {key_path}\nAuthorizedKeysFile {directory / 'authorized_keys'}\n"
        f"PidFile {directory / 'sshd.pid'}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        f"AllowUsers {getpass.getuser()}\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    log = open(directory / "sshd.log", "wb")
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.skip(f"sshd did not start here: {(directory / 'sshd.log').read_text()[-500:]}")
        try:
            socket.create_connection((address, port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("sshd did not listen within 10 s")


def test_the_primary_copies_to_openssh_and_the_secondary_applies(cluster_factory, capsys):
    cluster = cluster_factory([0, 1], backups={0: V1[0], 1: V1[1]}, serve={0})
    sshd = start_sshd(cluster.root / "sshd", cluster.address(1), cluster.ssh_port(1), cluster.host_keys[1],
                      [keys.public_line(cluster.node_keys[0])])
    try:
        cluster.start_all()
        cluster.wait("complete through OpenSSH", lambda: cluster.complete() or None, 30)
        assert cluster.digest(1) == cluster.digest(0)
        assert "rule sw-updates-at-peak" in cluster.backup(1).read_text()
        log = (cluster.root / "sshd" / "sshd.log").read_text()
        assert "Accepted publickey" in log
        assert main(["-c", str(cluster.config(0)), "check", "--peer", "1"]) == 0
        assert "known" in capsys.readouterr().out
    finally:
        sshd.terminate()
        sshd.wait(timeout=10)
