"""``confmerge.files``: outputs written whole or not at all, with the modes a user expects."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from confmerge.diagnostics import ConfError
from confmerge.files import read_text, write_atomic


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
