"""An embedded SFTP-only SSH server: each server's sshd in tests and the demo.

A real BQN has OpenSSH on port 22, and the daemon copies to it like any SSH
client. Where there is no sshd to use (the tests, ``clusterd demo``), this
stands in: public-key authentication only, as one user name only, SFTP only
(no shell, no forwarding), and the SFTP confined to the transfer area: a
trusted peer's key can create a generation file there under its ``.part``
name, write it, rename it to its final name and remove it, and nothing else.
No other path, no reading, listing, links, directories or attributes.

Run alone: ``python -m clusterd.sshserver --address 127.0.0.1 --port 2222
--host-key KEY --authorized-keys FILE --area DIR [--user NAME]``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import posixpath
import stat
from pathlib import Path
from typing import Any, Callable, Iterable

import asyncssh
from asyncssh.sftp import FXF_APPEND, FXF_READ, FXF_WRITE

from .transfer import MAX_FILE, is_transfer_name

from confmerge import PrintableFormatter

log = logging.getLogger("clusterd.sshserver")

MAX_FILES = 16
"""Files the area may hold at once (a generation in flight per primary, and a probe or two)."""


class KeyOnlyServer(asyncssh.SSHServer):
    """Public-key authentication and nothing else; subclasses say which keys they trust."""

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True


class _Server(KeyOnlyServer):
    def __init__(self, authorized: Callable[[], Iterable[asyncssh.SSHKey]], user: str) -> None:
        self._authorized = authorized
        self._user = user

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        fingerprint = key.get_fingerprint("sha256")
        if username != self._user:
            log.warning("refused SSH login as %r with key %s: transfers log in as %r only",
                        username, fingerprint, self._user)
            return False
        ok = any(key.public_data == known.public_data for known in self._authorized())
        if not ok:
            log.warning("refused SSH key %s for user %s", fingerprint, username)
        return ok


def _denied(what: str) -> asyncssh.SFTPPermissionDenied:
    return asyncssh.SFTPPermissionDenied(f"{what}: this server accepts generation files in its transfer area only")


class TransferArea(asyncssh.SFTPServer):
    """SFTP that can do what :func:`clusterd.transfer.push` does, in one directory, and nothing more.

    A path is either a bare transfer name or the area's own path, a slash
    and a transfer name (what a peer's heartbeat announces): compared as
    text, never normalised, so ``..``, ``.``, doubled slashes and absolute
    paths elsewhere are refused before the file system is asked. Files are
    opened without following links, write-only, and only under a ``.part``
    name; a ``.part`` file may be renamed to its own final name, and a
    transfer file removed.
    Every other request, including any the client library adds later, goes
    through :meth:`map_path`, which refuses it.
    """

    def __init__(self, channel: asyncssh.SSHServerChannel, area: Path) -> None:
        super().__init__(channel)
        self._area = area
        self._prefix = os.fsencode(str(area)).rstrip(b"/") + b"/"

    def _local(self, path: bytes, what: str) -> str:
        name = path[len(self._prefix):] if path.startswith(self._prefix) else path
        text = name.decode("utf-8", "replace")
        if b"/" in name or not is_transfer_name(text):
            log.warning("refused SFTP %s of %r: not a transfer name in %s", what, path, self._area)
            raise _denied(what)
        return str(self._area / text)

    def map_path(self, path: bytes) -> bytes:
        log.warning("refused an SFTP request on %r", path)
        raise _denied("this request")

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        local = self._local(path, "open")
        if not local.endswith(".part") or pflags & (FXF_READ | FXF_APPEND) or not pflags & FXF_WRITE:
            log.warning("refused SFTP open of %r (flags 0x%x): a transfer creates a .part file and writes it", path,
                        pflags)
            raise _denied("open")
        if len(os.listdir(self._area)) >= MAX_FILES and not os.path.lexists(local):
            raise asyncssh.SFTPFailure(f"the transfer area holds {MAX_FILES} files already")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        return open(local, "wb", buffering=0, opener=lambda p, _: os.open(p, flags, 0o600))

    def open56(self, path: bytes, desired_access: int, flags: int, attrs: asyncssh.SFTPAttrs) -> object:
        raise _denied("open (SFTP version 5 and later)")

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        raise _denied("read")

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        if offset + len(data) > MAX_FILE:
            raise asyncssh.SFTPFailure(f"a generation file is at most {MAX_FILE} bytes")
        handle: Any = file_obj
        handle.seek(offset)
        return int(handle.write(data))

    def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        raise _denied("setstat")

    def _regular(self, path: bytes, what: str) -> str:
        local = self._local(path, what)
        try:
            regular = stat.S_ISREG(os.lstat(local).st_mode)
        except FileNotFoundError:
            raise asyncssh.SFTPNoSuchFile(f"no {posixpath.basename(local)} in the transfer area") from None
        if not regular:
            raise _denied(what)
        return local

    def remove(self, path: bytes) -> None:
        os.unlink(self._regular(path, "remove"))

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        old = self._regular(oldpath, "rename")
        new = self._local(newpath, "rename")
        if new + ".part" != old:
            raise _denied("rename (only a .part file to its own final name)")
        os.replace(old, new)

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        self.posix_rename(oldpath, newpath)


async def start(address: str, port: int, host_key: asyncssh.SSHKey,
                authorized: Callable[[], Iterable[asyncssh.SSHKey]], area: Path, user: str,
                sftp_factory: Callable[[asyncssh.SSHServerChannel, Path], asyncssh.SFTPServer] = TransferArea,
                ) -> asyncssh.SSHAcceptor:
    """Listen on ``address:port`` only; ``authorized`` is asked at each login, so new peers count at once."""

    def sftp(channel: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
        return sftp_factory(channel, area)

    return await asyncssh.create_server(
        lambda: _Server(authorized, user), address, port, server_host_keys=[host_key],
        sftp_factory=sftp, process_factory=_no_shell, allow_scp=False, allow_pty=False,
        agent_forwarding=False, x11_forwarding=False, tcp_keepalive=True, reuse_address=True,
    )


async def _no_shell(process: asyncssh.SSHServerProcess[Any]) -> None:
    process.stderr.write("this server offers SFTP only\n")
    process.exit(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clusterd.sshserver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host-key", type=Path, required=True, help="private host key (made if missing)")
    parser.add_argument("--authorized-keys", type=Path, required=True, help="OpenSSH authorized_keys file")
    parser.add_argument("--area", type=Path, required=True, help="the transfer area (a daemon's state-dir/sync/inbox)")
    parser.add_argument("--user", default=getpass.getuser(), help="the one user name accepted (default: this user)")
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
        server = await start(args.address, args.port, host_key, authorized, args.area.absolute(), args.user)
        log.info("SFTP on %s:%d, transfer area %s", args.address, args.port, args.area)
        await server.wait_closed()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
