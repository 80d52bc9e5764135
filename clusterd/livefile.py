"""Reading and replacing the live backup without losing an operator's concurrent edit.

The daemon replaces the live backup only where it holds what the daemon read
(compare and swap). On Linux the new file is swapped in with
``renameat2(RENAME_EXCHANGE)``, which leaves the file it displaced under the
temporary name, so what was replaced can be checked: if it is not what the
daemon read, an operator wrote in between; that file is swapped back and the
daemon's change is merged three-way into it (:func:`confmerge.merge.merge`,
base: what the daemon read; the operator's file is the primary input, so its
server-specific sections stay exactly as the operator left them and its
cluster-wide values win a conflict), then tried again, a bounded number of
times. The displaced file is checked once more after the swap, so an in-place
write into it that was already under way is merged too.

Where ``renameat2`` is missing (not glibc, not Linux, or a file system
without exchange), the read, the check and the rename happen under an
``flock`` of the backup's directory: cooperating writers are excluded, and
an uncooperative rename that lands in the microseconds between the check and
the rename is not seen. The log says so when a file system refuses exchange.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from confmerge import ConfError, Conflict, merge, parse, read_text, render, sync_directory, write_temp

log = logging.getLogger("clusterd")

ATTEMPTS = 20
"""Swaps tried before giving up on a file that keeps changing under the daemon."""

SETTLE = 0.05
"""Seconds an in-place write must have rested before the file is taken as whole."""

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_UNSUPPORTED = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP)

_renameat2: Any
try:
    _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
except AttributeError:  # not glibc 2.28+
    _renameat2 = None

_no_exchange: set[int] = set()
"""Devices (st_dev) whose file system refused an exchange: the locked replace is used there."""

Identity = tuple[int, int, int, int, int]

_taken: dict[str, Identity] = {}
"""What each path held at the last read taken here: another inode was put in whole by a rename."""


class Contended(Exception):
    """The backup changed while the daemon wrote it and the change could not be merged; the operator's file stays."""


@dataclass(frozen=True, slots=True)
class Seen:
    """A file's text and the identity of the inode it came from (device, inode, size, mtime, ctime)."""

    text: str
    identity: Identity

    @property
    def stamp(self) -> tuple[int, int]:
        """mtime and size: what the daemon's watcher compares."""
        return (self.identity[3], self.identity[2])


@dataclass(frozen=True, slots=True)
class Written:
    """What a replace left in the file, and what it merged on the way."""

    text: str
    stamp: tuple[int, int]
    merged: bool
    """An operator's concurrent edit was found and merged (``text`` is not the text asked for)."""
    conflicts: tuple[Conflict, ...]
    """Entries the operator and the daemon both changed: the operator's value was kept."""
    method: str
    """``exchange`` or ``locked``."""


def _identity(status: os.stat_result) -> Identity:
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


def read(path: Path) -> Seen:
    """The file's text, never half of an in-place write.

    A file written in place during the read is read again. A file changed
    in place less than :data:`SETTLE` ago may be half way through a write:
    it is taken once it has not changed for that long. Not so a file just
    renamed into place (another inode than the last read here took: a rename
    puts a file in whole), nor one unchanged since that read.
    """
    key = os.path.abspath(path)
    for _ in range(ATTEMPTS):
        with open(path, "rb") as handle:
            before = os.fstat(handle.fileno())
            data = handle.read()
            after = os.fstat(handle.fileno())
        if _identity(before) != _identity(after) or len(data) != after.st_size:
            continue
        last = _taken.get(key)
        in_place = last is None or (last[:2] == _identity(after)[:2] and last != _identity(after))
        if in_place and time.time_ns() - after.st_mtime_ns < SETTLE * 1e9:
            time.sleep(SETTLE)
            if _identity(os.stat(path)) != _identity(after):
                continue
        _taken[key] = _identity(after)
        return Seen(_decode(data, path), _identity(after))
    raise Contended(f"{path} kept changing while it was read")


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        read_text(path)  # raises the ConfError that names the line and column
        raise Contended(f"{path} changed while it was read") from None


def merge_concurrent(base: str, ours: str, theirs: str, path: Path) -> tuple[str, tuple[Conflict, ...]]:
    """``theirs`` (the operator's file) with the daemon's change from ``base`` to ``ours`` merged in.

    Server-specific sections are the operator's (the daemon never changes
    them); a cluster-wide entry both changed keeps the operator's value.
    """
    if ours == base or theirs == ours:
        return theirs, ()
    if theirs == base:
        return ours, ()
    try:
        result = merge([parse(theirs, f"{path} (edited meanwhile)"), parse(ours, f"{path} (the daemon's)")],
                       primary=0, base=parse(base, f"{path} (as the daemon read it)"))
    except ConfError as error:
        raise Contended(f"{path} was changed while the daemon wrote it and the change cannot be merged "
                        f"({error.diagnostics[0]}); the operator's file stays") from None
    return render(result.outputs[0]), result.conflicts


def replace(path: Path, expected: str, new: str, *, exchange: bool | None = None,
            attempts: int = ATTEMPTS) -> Written:
    """Make ``path`` hold ``new``, which the caller made from ``expected``, keeping whatever else was written meanwhile.

    ``exchange`` forces the method (None: ``renameat2`` where it works).
    Raises :class:`Contended` if the file kept changing for ``attempts``
    swaps or an edit could not be merged; then the operator's file stays.
    """
    conflicts: list[Conflict] = []
    merged = False
    for _ in range(attempts):
        method = _method(path, exchange)
        with _locked(path.parent) if method == "locked" else nullcontext():
            current = read(path)
            if current.text != expected:
                new, found = merge_concurrent(expected, new, current.text, path)
                conflicts += found
                merged, expected = True, current.text
            if new == current.text:
                return Written(new, current.stamp, merged, tuple(conflicts), method)
            stamp = _swap(path, current, new, method)
        if stamp is not None:
            return Written(new, stamp, merged, tuple(conflicts), method)
    raise Contended(f"{path} kept changing while the daemon wrote it ({attempts} attempts); "
                    "the daemon's change is not written")


def swap(path: Path, current: Seen, text: str, *, exchange: bool | None = None) -> tuple[int, int] | None:
    """Put ``text`` in place of ``path`` if it still holds ``current``: the new file's mtime and size, or None.

    None means the file had changed (or the file system turned out unable to
    exchange: then the next call locks); the file is left exactly as it was.
    """
    method = _method(path, exchange)
    with _locked(path.parent) if method == "locked" else nullcontext():
        return _swap(path, current, text, method)


def _swap(path: Path, current: Seen, text: str, method: str) -> tuple[int, int] | None:
    """One attempt; the locked method's lock is the caller's (held from before the read, in :func:`replace`)."""
    temp, stamp = _temp_file(path, text)
    try:
        if method == "exchange":
            try:
                return stamp if _exchange_checked(temp, path, current) else None
            except _NoExchange:
                return None
        return stamp if _replace_checked(temp, path, current) else None
    finally:
        _unlink(temp)


def _method(path: Path, exchange: bool | None) -> str:
    return "exchange" if (exchange if exchange is not None else _exchange_works(path)) else "locked"


class _NoExchange(Exception):
    pass


def _exchange_works(path: Path) -> bool:
    if _renameat2 is None:
        return False
    try:
        return path.parent.stat().st_dev not in _no_exchange
    except OSError:
        return True


def swap_paths(a: Path, b: Path) -> None:
    """Exchange two paths in one step (``renameat2(RENAME_EXCHANGE)``); OSError where the system cannot."""
    if _renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available here", str(b))
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number), str(b))


def _exchange_checked(temp: Path, path: Path, current: Seen) -> bool:
    """Swap ``temp`` in for ``path`` if what it displaces is ``current``; otherwise put the displaced file back.

    The displaced file is checked again after the directory is synced: an
    operator's in-place write into it that was under way shows there, and
    the file goes back (with the writer's handle still on it).
    """
    if _identity(os.stat(path)) != current.identity:
        return False
    ours = os.stat(temp).st_ino
    try:
        swap_paths(temp, path)
    except OSError as error:
        if error.errno not in _UNSUPPORTED:
            raise
        _no_exchange.add(path.parent.stat().st_dev)
        log.warning("%s: the file system cannot exchange files (renameat2: %s); "
                    "replacing under a directory lock instead", path.parent, error.strerror)
        raise _NoExchange from None
    with open(temp, "rb") as displaced:
        if displaced.read() == current.text.encode("utf-8"):
            sync_directory(path.parent)
            if _identity(os.fstat(displaced.fileno()))[2:4] == current.identity[2:4]:
                return True
    swap_paths(temp, path)  # the operator's file back where it was
    if os.stat(temp).st_ino != ours:  # and a newer one had replaced ours meanwhile: that one is the newest
        swap_paths(temp, path)
    return False


def _replace_checked(temp: Path, path: Path, current: Seen) -> bool:
    if _identity(os.stat(path)) != current.identity:
        return False
    os.replace(temp, path)
    sync_directory(path.parent)
    return True


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive ``flock`` of the directory: what cooperating editors take around their own replace."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _temp_file(path: Path, text: str) -> tuple[Path, tuple[int, int]]:
    """The new text, fsynced, beside the file, with its mode; returns it and its mtime and size."""
    temp, status = write_temp(path, text)
    return Path(temp), (status.st_mtime_ns, status.st_size)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
