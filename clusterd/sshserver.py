"""An embedded SFTP-only SSH server: each server's sshd in tests and the demo.

A real BQN has OpenSSH on port 22, and the daemon copies to it like any SSH
client. Where there is no sshd to use (the tests, ``clusterd demo``), this
stands in: public-key authentication only, SFTP only (no shell, no
forwarding), optionally confined to a root directory.

Run alone: ``python -m clusterd.sshserver --address 127.0.0.1 --port 2222
--host-key KEY --authorized-keys FILE [--root DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Callable, Iterable

import asyncssh

from confmerge import PrintableFormatter

log = logging.getLogger("clusterd.sshserver")


class KeyOnlyServer(asyncssh.SSHServer):
    """Public-key authentication and nothing else; subclasses say which keys they trust."""

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True


class _Server(KeyOnlyServer):
    def __init__(self, authorized: Callable[[], Iterable[asyncssh.SSHKey]]) -> None:
        self._authorized = authorized

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        ok = any(key.public_data == known.public_data for known in self._authorized())
        if not ok:
            log.warning("refused SSH key %s for user %s", key.get_fingerprint("sha256"), username)
        return ok


async def _no_shell(process: asyncssh.SSHServerProcess) -> None:
    process.stderr.write("this server offers SFTP only\n")
    process.exit(1)


async def start(address: str, port: int, host_key: asyncssh.SSHKey,
                authorized: Callable[[], Iterable[asyncssh.SSHKey]], root: Path | None = None,
                sftp_factory: type[asyncssh.SFTPServer] | None = None) -> asyncssh.SSHAcceptor:
    """Listen on ``address:port`` only; ``authorized`` is asked at each login, so new peers count at once."""
    chroot = str(root).encode() if root is not None else None
    factory = sftp_factory or asyncssh.SFTPServer

    def sftp(channel: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
        return factory(channel, chroot=chroot)

    return await asyncssh.create_server(
        lambda: _Server(authorized), address, port, server_host_keys=[host_key],
        sftp_factory=sftp, process_factory=_no_shell, allow_scp=False, allow_pty=False,
        agent_forwarding=False, x11_forwarding=False, tcp_keepalive=True, reuse_address=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clusterd.sshserver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host-key", type=Path, required=True, help="private host key (made if missing)")
    parser.add_argument("--authorized-keys", type=Path, required=True, help="OpenSSH authorized_keys file")
    parser.add_argument("--root", type=Path, help="confine SFTP to this directory")
    args = parser.parse_args(argv)
    from .keys import load_or_create

    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter("%(asctime)s sshserver: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    host_key = load_or_create(args.host_key)

    def authorized() -> list[asyncssh.SSHKey]:
        keys = []
        for line in args.authorized_keys.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                keys.append(asyncssh.import_public_key(line.strip()))
        return keys

    async def serve() -> None:
        server = await start(args.address, args.port, host_key, authorized, args.root)
        log.info("SFTP on %s:%d", args.address, args.port)
        await server.wait_closed()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
