"""The node key and the trust in peers' keys.

Each server has one Ed25519 key in its state directory (mode 0600). It is the
host key of its control port, the client key it presents to peers, and by
default the identity it copies configuration with over SSH. A peer is trusted
when its public key is in the cluster file (``clusterd add-peer``), and an
SSH server is trusted when its host key is in the known-hosts file.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncssh


def load_or_create(path: Path) -> asyncssh.SSHKey:
    """The private key at ``path``, made on first use (0600, in a 0700 directory)."""
    if path.exists():
        return asyncssh.read_private_key(str(path))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = asyncssh.generate_private_key("ssh-ed25519", comment=f"clusterd@{os.uname().nodename}")
    data = key.export_private_key()
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(path.with_suffix(".tmp"), path)
    return key


def public_line(key: asyncssh.SSHKey) -> str:
    """``ssh-ed25519 AAAA...``: the form the cluster file records."""
    text = key.export_public_key("openssh").decode("ascii").strip()
    return " ".join(text.split()[:2])


def parse_public_key(line: str) -> asyncssh.SSHKey:
    try:
        return asyncssh.import_public_key(line.strip())
    except (asyncssh.KeyImportError, ValueError) as error:
        raise ValueError(str(error)) from None


def fingerprint(key: asyncssh.SSHKey | str) -> str:
    """``SHA256:...`` as OpenSSH prints it."""
    if isinstance(key, str):
        key = parse_public_key(key)
    return key.get_fingerprint("sha256")


def same_key(a: asyncssh.SSHKey, b: asyncssh.SSHKey) -> bool:
    return a.public_data == b.public_data


def _host(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def known_hosts_entry(address: str, port: int, key: asyncssh.SSHKey | str) -> str:
    line = key if isinstance(key, str) else public_line(key)
    return f"{_host(address, port)} {' '.join(line.split()[:2])}"


def recorded_host_keys(path: Path, address: str, port: int) -> list[tuple[int, asyncssh.SSHKey]]:
    """The host keys the known-hosts file holds for ``address:port``, each with its line number."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    host = _host(address, port)
    found = []
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if len(fields) >= 3 and host in fields[0].split(","):
            try:
                found.append((number, parse_public_key(" ".join(fields[1:3]))))
            except ValueError:
                continue
    return found


def _rewrite_known_hosts(path: Path, address: str, port: int, entry: str | None) -> None:
    from confmerge import write_atomic

    host = _host(address, port)
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if line.split()[:1] != [host]]
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, "\n".join([*kept, *([entry] if entry else [])]) + "\n")


def add_known_host(path: Path, address: str, port: int, key: asyncssh.SSHKey | str) -> None:
    """Record ``key`` for ``address:port``, replacing an older entry for the same host and port."""
    _rewrite_known_hosts(path, address, port, known_hosts_entry(address, port, key))


def remove_known_host(path: Path, address: str, port: int) -> None:
    if path.exists():
        _rewrite_known_hosts(path, address, port, None)


_TYPES = {"ssh-ed25519": "ED25519", "ssh-rsa": "RSA", "ssh-dss": "DSA"}


def type_name(key: asyncssh.SSHKey) -> str:
    """``ED25519``, ``RSA``, ``ECDSA``: as OpenSSH names a key type in its messages."""
    algorithm = key.get_algorithm()
    return _TYPES.get(algorithm, "ECDSA" if algorithm.startswith("ecdsa") else algorithm.upper())


def host_key_changed(address: str, port: int, offered: asyncssh.SSHKey, path: Path,
                     recorded: list[tuple[int, asyncssh.SSHKey]]) -> str:
    """What OpenSSH's ``ssh`` says when a recorded host key changes, with the recorded key's fingerprint too."""
    kind = type_name(offered)
    line, old = recorded[0]
    return "\n".join([
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @",
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
        "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!",
        "Someone could be eavesdropping on you right now (man-in-the-middle attack)!",
        "It is also possible that a host key has just been changed.",
        f"The fingerprint for the {kind} key sent by the remote host is",
        f"{fingerprint(offered)}.",
        f"Offending {type_name(old)} key in {path}:{line}",
        f"  (recorded fingerprint {fingerprint(old)})",
        f"Host key for {_host(address, port)} has changed and clusterd checks host keys strictly.",
    ])


async def server_host_key(address: str, port: int, timeout: float) -> asyncssh.SSHKey:
    """The host key an SSH server offers, read without logging in (as ``ssh-keyscan`` does).

    Raises ``OSError``, ``TimeoutError`` or ``asyncssh.Error`` when it cannot be read.
    """
    async with asyncio.timeout(timeout):
        key = await asyncssh.get_server_host_key(address, port)
    if key is None:
        raise OSError(f"{address}:{port} offered no host key")
    return key
