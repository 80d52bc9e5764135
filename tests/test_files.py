"""``confmerge.files``: outputs written whole or not at all, with the modes a user expects."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from confmerge.diagnostics import ConfError
from confmerge.files import read_text, write_all, write_atomic


def test_a_new_file_gets_the_umasks_mode_and_a_replaced_one_keeps_its_own(tmp_path: Path):
    old = os.umask(0o022)
    try:
        new = tmp_path / "new.conf"
        write_atomic(new, "ntp\n")
        assert stat.S_IMODE(new.stat().st_mode) == 0o644
        kept = tmp_path / "kept.conf"
        kept.write_text("old\n")
        kept.chmod(0o600)
        write_atomic(kept, "new\r\n")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        assert kept.read_bytes() == b"new\r\n"
    finally:
        os.umask(old)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path):
    path = tmp_path / "bqn.conf"
    path.write_text("old\n")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "bad \udc80 surrogate\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["bqn.conf"]


def test_unreadable_input_is_a_plain_error(tmp_path: Path):
    (tmp_path / "bin.conf").write_bytes(b"ntp\n  server \xff\n")
    with pytest.raises(ConfError) as caught:
        read_text(tmp_path / "bin.conf")
    assert str(caught.value).endswith("bin.conf:2:10: error: not UTF-8 text (is this a BQN backup?)")
    with pytest.raises(ConfError, match="no such file"):
        read_text(tmp_path / "missing.conf")


def test_write_atomic_returns_the_status_the_file_was_written_with(tmp_path):
    path = tmp_path / "out.conf"
    written = write_atomic(path, "hostname bqn0\n")
    now = path.stat()
    assert (written.st_mtime_ns, written.st_size, written.st_ino) == (now.st_mtime_ns, now.st_size, now.st_ino)


# -- write_all: several files, all or nothing (issue 12, item 6)


def _listing(directory: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else None) for p in sorted(directory.rglob("*"))}


def test_write_all_writes_every_file(tmp_path: Path):
    (tmp_path / "b.conf").write_text("old b\n")
    write_all({tmp_path / "a.conf": "a\n", tmp_path / "b.conf": "b\r\n", tmp_path / "new" / "c.json": "{}\n"})
    assert _listing(tmp_path) == {"a.conf": b"a\n", "b.conf": b"b\r\n", "new": None, "new/c.json": b"{}\n"}


def test_write_all_writes_nothing_when_a_target_is_a_directory(tmp_path: Path):
    (tmp_path / "a.conf").write_text("old a\n")
    (tmp_path / "b.conf").mkdir()
    before = _listing(tmp_path)
    with pytest.raises(ConfError) as caught:
        write_all({tmp_path / "a.conf": "new a\n", tmp_path / "b.conf": "b\n", tmp_path / "c.conf": "c\n"})
    assert str(caught.value) == f"{tmp_path / 'b.conf'}: error: cannot write: is a directory; nothing written"
    assert _listing(tmp_path) == before


def _immutable(path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        pytest.skip("needs root and chattr")
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("this file system has no immutable flag")


def test_write_all_puts_back_what_it_renamed_when_a_later_rename_fails(tmp_path: Path):
    """A real rename failure after the checks: the second target is immutable (``chattr +i``), so the first,
    already renamed into place, is put back as it was, and the new third file is removed."""
    (tmp_path / "a.conf").write_text("old a\n")
    (tmp_path / "a.conf").chmod(0o640)
    locked = tmp_path / "b.conf"
    locked.write_text("old b\n")
    before = _listing(tmp_path)
    _immutable(locked)
    try:
        with pytest.raises(ConfError) as caught:
            write_all({tmp_path / "a.conf": "new a\n", tmp_path / "c.conf": "c\n", locked: "new b\n"})
        assert str(caught.value).startswith(f"{locked}: error: cannot replace: ")
        assert str(caught.value).endswith("; nothing written")
        assert _listing(tmp_path) == before
        assert stat.S_IMODE((tmp_path / "a.conf").stat().st_mode) == 0o640
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
