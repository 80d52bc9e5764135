"""Copying a generation to a secondary over SSH (SFTP), as the guide's "SSH/SCP in port 22" says.

The SSH server is the secondary's own sshd (OpenSSH on a BQN) or, in tests
and the demo, :mod:`clusterd.sshserver`. Its host key is always verified
against the known-hosts file; there is no option to skip that. The file is
written under a ``.part`` name and renamed once complete, so the secondary
never reads half a configuration.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator

import asyncssh

from .sync import SyncError

if TYPE_CHECKING:
    from .history import History
    from .protocol import Apply

CONNECT_TIMEOUT = 10.0
MAX_FILE = 64 * 1024 * 1024
"""The largest generation file a transfer area takes (a 100,000-line backup's cluster part is about 2 MB)."""
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes128-ctr",
           "aes256-ctr")
"""AES-GCM first: one call per packet into the C library, where asyncssh's ChaCha20-Poly1305 makes three."""
_NAME = re.compile(r"(generation-[0-9a-f][0-9a-f-]{0,79}\.conf|package-[0-9a-f]{64}\.pkg)(\.part)?")
"""``generation-`` and an id of hex digits and hyphens (a number and an epoch, or a content hash), or
``package-`` and a package's sha256 (:mod:`clusterd.updates`): no path in either."""


def package_name(sha256: str) -> str:
    """The name a software package travels under."""
    return f"package-{sha256}.pkg"


def file_name(*id_parts: int | str) -> str:
    """The name a generation travels under (``generation-3-1.conf``), ``.part`` added while it is written."""
    return "generation-" + "-".join(str(part) for part in id_parts) + ".conf"


def delta(old: str, new: str) -> list[Any] | None:
    """``new`` as one edit of ``old``: ``[[start, end, lines]]`` replaces old's lines start..end; None if not smaller.

    The common first and last lines are kept and the rest sent: a change to a
    few entries of a 10,000-line backup travels as a few lines in the apply
    request itself, with no SSH session of its own. The receiver checks the
    rebuilt text against the generation's sha256, as it checks a copied file.
    """
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    lines = b[head:len(b) - tail]
    if sum(map(len, lines)) > len(new) // 2:
        return None
    return [[head, len(a) - tail, lines]]


def patch(old: str, script: list[Any]) -> str:
    """The text :func:`delta` describes; :class:`ValueError` for a script that is not one."""
    lines = old.splitlines(keepends=True)
    try:
        for start, end, new in sorted(script, key=lambda edit: edit[0], reverse=True):
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= len(lines)
                    and isinstance(new, list) and all(isinstance(line, str) for line in new)):
                raise ValueError("not an edit of the base")
            lines[start:end] = new
    except (TypeError, ValueError) as error:
        raise ValueError(f"a delta that is not one: {error}") from None
    return "".join(lines)


def received(history: "History", message: "Apply", path: Path, live: str | None = None) -> str:
    """The text of an apply request: rebuilt from its delta and a kept generation, the cluster-wide part of the live
    backup (``live``) if its sha256 is the generation's, or the file copied to ``path``."""
    if message.live:
        wanted = message.generation.get("sha256")
        if live is None or hashlib.sha256(live.encode("utf-8")).hexdigest() != wanted:
            raise SyncError("the live backup's cluster-wide part is not the generation's text; send the whole text")
        return live
    if not message.delta:
        return path.read_bytes().decode("utf-8")
    base = history.text(message.base)
    if base is None:
        raise ValueError(f"the delta's base {message.base[:12]} is not kept here; send the whole text")
    return patch(base, message.delta)


def is_transfer_name(name: str) -> bool:
    """A name the protocol uses in a transfer area, final or ``.part``."""
    return _NAME.fullmatch(name) is not None


class TransferError(Exception):
    """The copy failed; ``reason`` is the plain cause for status and logs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Target:
    address: str
    port: int
    user: str
    identity: Path
    known_hosts: Path
    source: str | None = None
    """This server's own address, to connect from (peers tell the servers apart by it)."""


@asynccontextmanager
async def _session(target: Target, timeout: float) -> AsyncIterator[asyncssh.SFTPClient]:
    """An SFTP session on the target, every failure a :class:`TransferError` with the fix in it."""
    where = f"{target.address}:{target.port}"
    if not target.known_hosts.exists():
        raise TransferError(f"no known-hosts file {target.known_hosts}: add the SSH host key of {where} "
                            "(clusterd add-peer does)")
    try:
        async with asyncio.timeout(timeout):
            async with asyncssh.connect(
                target.address, target.port, username=target.user,
                client_keys=[str(target.identity)], known_hosts=str(target.known_hosts),
                agent_path=None, config=None, connect_timeout=CONNECT_TIMEOUT, password=None,
                kbdint_auth=False, gss_host=None, encryption_algs=CIPHERS,
                local_addr=(target.source, 0) if target.source else None,
            ) as connection:
                async with connection.start_sftp_client() as sftp:
                    yield sftp
    except asyncssh.HostKeyNotVerifiable as error:
        raise TransferError(f"host key of {where} is not the one in {target.known_hosts} ({error.reason}); "
                            "refusing to send (check the server, then clusterd add-peer again)") from None
    except asyncssh.PermissionDenied:
        raise TransferError(f"{where} refused the key {target.identity} for user {target.user} "
                            "(add this server's public key to that user's authorized_keys there)") from None
    except asyncssh.SFTPError as error:
        raise TransferError(f"SFTP on {where}: {error.reason}") from None
    except asyncssh.Error as error:
        raise TransferError(f"SSH to {where}: {error.reason}") from None
    except TimeoutError:
        raise TransferError(f"SSH to {where} timed out after {timeout:.0f} s") from None
    except OSError as error:
        raise TransferError(f"cannot reach SSH on {where}: {error.strerror or error}") from None


async def _write(sftp: asyncssh.SFTPClient, final: str, data: bytes) -> None:
    part = f"{final}.part"
    async with sftp.open(part, "wb") as handle:
        await handle.write(data)
    try:
        await sftp.posix_rename(part, final)
    except asyncssh.SFTPOpUnsupported:
        await sftp.rename(part, final)


async def push(target: Target, directory: str, name: str, data: bytes, timeout: float = 60.0) -> int:
    """Write ``data`` to ``directory/name`` on the target; the bytes sent. Raises :class:`TransferError`."""
    async with _session(target, timeout) as sftp:
        await _write(sftp, f"{directory.rstrip('/')}/{name}", data)
    return len(data)


async def probe(target: Target, directory: str, timeout: float = 10.0) -> float:
    """A real transfer of a few bytes to ``directory`` under a name no generation uses, removed after; milliseconds.

    What ``clusterd check`` tries before it calls a link OK. Raises :class:`TransferError`.
    """
    final = f"{directory.rstrip('/')}/{file_name(0, os.getpid())}"
    started = time.monotonic()
    async with _session(target, timeout) as sftp:
        try:
            await _write(sftp, final, b"clusterd check\n")
        finally:
            for leftover in (final, f"{final}.part"):
                try:
                    await sftp.remove(leftover)
                except asyncssh.SFTPError:
                    pass
    return (time.monotonic() - started) * 1000
