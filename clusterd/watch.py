"""Wake the daemon when the live backup changes: inotify on its directory, through ctypes.

The tick re-reads the backup when its size or mtime changed; polling that
ten times a second was most of an idle secondary's wake-ups. With a watch,
an operator's edit (written in place, or a new file renamed over it) wakes
the tick at once and the tick itself can rest longer. Where inotify is not
there (not Linux, or no instance left), :func:`watch` returns None and the
caller keeps its short poll; a watch only ever makes an edit seen sooner,
the stat on each tick stays what decides.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import struct
from pathlib import Path
from typing import Callable

log = logging.getLogger("clusterd")

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
        | IN_DELETE_SELF | IN_MOVE_SELF)
HEADER = struct.Struct("iIII")


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        libc.inotify_init1, libc.inotify_add_watch  # noqa: B018 (present, or AttributeError)
    except (OSError, AttributeError):
        return None
    return libc


class Watch:
    """An inotify instance on one directory that calls ``changed`` when an entry named ``name`` (or the directory) moves."""

    def __init__(self, fd: int, name: bytes, changed: Callable[[], None]) -> None:
        self.fd = fd
        self.name = name
        self.changed = changed

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 64 * 1024)
        except BlockingIOError:
            return
        except OSError as error:
            log.warning("the watch on the live backup failed (%s); it is polled instead", error.strerror)
            self.close()
            self.changed()
            return
        hit = gone = False
        offset = 0
        while offset + HEADER.size <= len(data):
            _, mask, _, length = HEADER.unpack_from(data, offset)
            name = data[offset + HEADER.size:offset + HEADER.size + length].rstrip(b"\0")
            offset += HEADER.size + length
            hit |= name == self.name or not name or bool(mask & IN_Q_OVERFLOW)
            gone |= bool(mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))
        if gone:
            log.warning("the live backup's directory was removed or moved; the backup is polled instead")
            self.close()
        if hit or gone:
            self.changed()

    @property
    def alive(self) -> bool:
        """False once the watch failed or its directory went: the caller polls again."""
        return self.fd >= 0

    def close(self) -> None:
        if self.fd >= 0:
            asyncio.get_running_loop().remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1


def watch(path: Path, changed: Callable[[], None]) -> Watch | None:
    """A watch calling ``changed`` (in the event loop) when ``path`` may have changed; None where inotify is not there."""
    libc = _libc()
    if libc is None:
        return None
    fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        log.info("no inotify instance (%s); the live backup is polled", os.strerror(ctypes.get_errno()))
        return None
    directory = os.fsencode(path.parent if str(path.parent) else Path("."))
    if libc.inotify_add_watch(fd, directory, MASK) < 0:
        log.info("cannot watch %s (%s); the live backup is polled", path.parent, os.strerror(ctypes.get_errno()))
        os.close(fd)
        return None
    result = Watch(fd, os.fsencode(path.name), changed)
    asyncio.get_running_loop().add_reader(fd, result._readable)
    return result
