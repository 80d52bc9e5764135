"""The engine's edge to the file system: reading inputs, writing outputs safely."""

from __future__ import annotations

import os
import shutil
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
    temp, written = _write_temp(path, text)
    try:
        os.replace(temp, path)
    except BaseException:
        _unlink(temp)
        raise
    _sync_directory(_directory(path))
    return written


def write_all(files: dict[Path, str]) -> None:
    """Write several files so that either all hold their new text or none changed: what ``merge`` promises.

    Every target is checked first (not a directory; its directory exists or can
    be made), then every text goes to a temporary name beside its target and is
    fsynced, and only then are the temporaries renamed into place. A target
    that existed is kept aside first (a hard link, else a copy), so a rename
    that fails after others succeeded puts back what was there. On any error
    the temporaries and the directories made are removed and a
    :class:`ConfError` names the file or directory: nothing was written.
    """
    made: list[Path] = []
    temps: dict[Path, str] = {}
    kept: dict[Path, str | None] = {}
    renamed: list[Path] = []
    where, doing = Path("."), "cannot write"
    try:
        for path in files:
            where, doing = path, "cannot write"
            if path.is_dir():
                raise IsADirectoryError(21, "is a directory")
            where, doing = _directory(path), "cannot make the directory"
            made.extend(_make_directory(where))
        for path, text in files.items():
            where, doing = _directory(path), "cannot write in this directory"
            temps[path], _ = _write_temp(path, text)
        for path in files:
            where, doing = path, "cannot keep the file it replaces"
            kept[path] = _keep_aside(path)
        for path in files:
            where, doing = path, "cannot replace"
            os.replace(temps[path], path)
            del temps[path]
            renamed.append(path)
    except BaseException as error:
        _roll_back(renamed, kept)
        for temp in (*temps.values(), *(aside for aside in kept.values() if aside is not None)):
            _unlink(temp)
        for directory in reversed(made):
            try:
                directory.rmdir()
            except OSError:
                pass
        if not isinstance(error, OSError):
            raise
        raise ConfError([Diagnostic("error", 0, 0, f"{doing}: {error.strerror or error}; nothing written",
                                    str(where))]) from None
    for aside in kept.values():
        if aside is not None:
            _unlink(aside)
    for directory in dict.fromkeys(_directory(path) for path in files):
        _sync_directory(directory)


def _directory(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _make_directory(directory: Path) -> list[Path]:
    """Make ``directory`` and its missing parents; the ones made, outermost first."""
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir()
    return list(reversed(missing))


def _write_temp(path: Path, text: str) -> tuple[str, os.stat_result]:
    """``text`` in a new file beside ``path``, with the mode ``path`` has or would get, flushed to disk."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=_directory(path))
    try:
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
            written = os.fstat(handle.fileno())
    except BaseException:
        _unlink(temp)
        raise
    return temp, written


def _keep_aside(path: Path) -> str | None:
    """A second name for the file at ``path`` (None: there is none), to put back if a later rename fails."""
    if not path.exists() and not path.is_symlink():
        return None
    directory = _directory(path)
    aside = tempfile.mktemp(prefix=f".{path.name}.", suffix=".old", dir=directory)  # link() refuses a taken name
    try:
        os.link(path, aside, follow_symlinks=False)
        return aside
    except OSError:
        pass
    fd, aside = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".old", dir=directory)
    try:
        with os.fdopen(fd, "wb") as target, open(path, "rb") as source:
            shutil.copyfileobj(source, target)
        shutil.copystat(path, aside)
    except BaseException:
        _unlink(aside)
        raise
    return aside


def _roll_back(renamed: list[Path], kept: dict[Path, str | None]) -> None:
    for path in reversed(renamed):
        aside = kept.pop(path, None)
        try:
            if aside is None:
                os.unlink(path)
            else:
                os.replace(aside, path)
        except OSError:
            pass


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _sync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask
