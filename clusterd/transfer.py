"""Copying a generation to a secondary over SSH (SFTP), as the guide's "SSH/SCP in port 22" says.

The SSH server is the secondary's own sshd (OpenSSH on a BQN) or, in tests
and the demo, :mod:`clusterd.sshserver`. Its host key is always verified
against the known-hosts file; there is no option to skip that. The file is
written under a ``.part`` name and renamed once complete, so the secondary
never reads half a configuration.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

import asyncssh

CONNECT_TIMEOUT = 10.0
MAX_FILE = 64 * 1024 * 1024
"""The largest generation file a transfer area takes (a 100,000-line backup's cluster part is about 2 MB)."""
_NAME = re.compile(r"(generation-[0-9a-f][0-9a-f-]{0,79}\.conf|package-[0-9a-f]{64}\.pkg)(\.part)?")
"""``generation-`` and an id of hex digits and hyphens (a number and an epoch, or a content hash), or
``package-`` and a package's sha256 (:mod:`clusterd.updates`): no path in either."""


def package_name(sha256: str) -> str:
    """The name a software package travels under."""
    return f"package-{sha256}.pkg"


def file_name(*id_parts: int | str) -> str:
    """The name a generation travels under (``generation-3-1.conf``), ``.part`` added while it is written."""
    return "generation-" + "-".join(str(part) for part in id_parts) + ".conf"


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
                kbdint_auth=False, gss_host=None,
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
