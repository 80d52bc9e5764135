"""Copying a generation to a secondary over SSH (SFTP), as the guide's "SSH/SCP in port 22" says.

The SSH server is the secondary's own sshd (OpenSSH on a BQN) or, in tests
and the demo, :mod:`clusterd.sshserver`. Its host key is always verified
against the known-hosts file; there is no option to skip that. The file is
written under a ``.part`` name and renamed once complete, so the secondary
never reads half a configuration.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import asyncssh

CONNECT_TIMEOUT = 10.0


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


async def push(target: Target, directory: str, name: str, data: bytes, timeout: float = 60.0) -> int:
    """Write ``data`` to ``directory/name`` on the target; the bytes sent. Raises :class:`TransferError`."""
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
                    final = f"{directory.rstrip('/')}/{name}"
                    part = f"{final}.part"
                    async with sftp.open(part, "wb") as handle:
                        await handle.write(data)
                    try:
                        await sftp.posix_rename(part, final)
                    except asyncssh.SFTPOpUnsupported:
                        await sftp.rename(part, final)
    except asyncssh.HostKeyNotVerifiable as error:
        raise TransferError(f"host key of {where} is not the one in {target.known_hosts} ({error.reason}); "
                            "refusing to send (check the server, then clusterd add-peer again)") from None
    except asyncssh.PermissionDenied:
        raise TransferError(f"{where} refused the key {target.identity} for user {target.user} "
                            "(add this server's public key to its authorized keys)") from None
    except asyncssh.SFTPError as error:
        raise TransferError(f"SFTP on {where}: {error.reason}") from None
    except asyncssh.Error as error:
        raise TransferError(f"SSH to {where}: {error.reason}") from None
    except TimeoutError:
        raise TransferError(f"SSH to {where} timed out after {timeout:.0f} s") from None
    except OSError as error:
        raise TransferError(f"cannot reach SSH on {where}: {error.strerror or error}") from None
    return len(data)
