"""The engine's edge to the file system: reading inputs, writing outputs safely."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .diagnostics import ConfError, Diagnostic


def read_text(path: Path) -> str:
    """A backup's text, or a :class:`ConfError` that says plainly what is wrong."""
    def fail(message: str) -> ConfError:
        return ConfError([Diagnostic("error", 0, 0, message, str(path))])

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise fail("no such file") from None
    except IsADirectoryError:
        raise fail("is a directory, not a backup file") from None
    except PermissionError:
        raise fail("permission denied") from None
    except OSError as error:
        raise fail(f"cannot read: {error.strerror or error}") from None
    return decode_text(data, str(path))


def decode_text(data: bytes, name: str) -> str:
    """A backup's bytes as text (UTF-8), or a :class:`ConfError` at the first byte that is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise ConfError([Diagnostic("error", line, column, "not UTF-8 text (is this a BQN backup?)", name)]) from None


def write_atomic(path: Path, text: str) -> os.stat_result:
    """Write ``text`` so that ``path`` holds either the old content or all the new.

    Temp file in the same directory, fsync, rename, then fsync the directory.
    ``newline=""`` keeps each line's own ending. The file keeps the mode of the
    one it replaces, and a new one gets what the umask allows (``mkstemp``
    alone would leave every output readable by its owner only). Returns the
    written file's status as it was written: a watcher can tell a later
    change by someone else from its own write.
    """
    directory = path.parent if str(path.parent) else Path(".")
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
            written = os.fstat(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return written
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return written


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask
