"""``clusterd.livefile`` against a real operator process editing the same file at a high rate."""

from __future__ import annotations

import ctypes
import errno
import logging
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from clusterd import livefile
from confmerge.diagnostics import ConfError
from confmerge.files import write_atomic
from confmerge.merge import cluster_digest
from confmerge.parser import parse

from .operator_edits import dns_server, route
from .test_sync import V2, sections

OPERATOR = Path(__file__).with_name("operator_edits.py")
PROFILE = "profile speed-test speed-tests\n"


def daemon_change(text: str, k: int) -> str:
    """A cluster-wide change such as applying a generation makes: one more host in a profile."""
    return text.replace(PROFILE, f"{PROFILE}  host d{k}.example\n", 1)


def race(path: Path, edits: int, mode: str, write, pause: float = 0.004) -> tuple[int, int, list[str]]:
    """An operator process making ``edits`` edits while this process keeps writing daemon changes with ``write``.

    The daemon side reads, takes a little time (as parsing and adopting
    does), then writes: the window an operator's edit can fall into. Returns
    the daemon's writes, how many merged an operator's edit, and the operator's edits missing at the end.
    """
    operator = subprocess.Popen([sys.executable, str(OPERATOR), str(path), str(edits), mode, str(pause)],
                                stdout=subprocess.PIPE, text=True)
    writes = merges = 0
    deadline = time.monotonic() + 90
    try:
        while operator.poll() is None and time.monotonic() < deadline:
            try:
                seen = livefile.read(path)
                parse(seen.text, str(path))
            except (ConfError, livefile.Contended):
                continue  # an in-place write caught half-way: the real daemon refuses an invalid backup too
            if PROFILE not in seen.text:
                continue
            time.sleep(random.uniform(0, 0.006))
            merged = write(path, seen.text, daemon_change(seen.text, writes))
            writes += 1
            merges += merged
        assert operator.wait(timeout=30) == 0
    finally:
        if operator.poll() is None:
            operator.kill()
            operator.wait(timeout=10)
    made = [int(line) for line in operator.stdout.read().split()] if operator.stdout else []
    assert made == list(range(edits)), "the operator made every edit"
    final = path.read_text()
    lost = [f"route {i}" for i in made if route(i) not in final]
    lost += [f"dns {i}" for i in made if i % 3 == 0 and dns_server(i) not in final]
    return writes, merges, lost


def cas(path: Path, expected: str, new: str, exchange: bool | None = None) -> bool:
    try:
        return livefile.replace(path, expected, new, exchange=exchange).merged
    except livefile.Contended:
        return False


@pytest.fixture
def backup(tmp_path: Path) -> Path:
    path = tmp_path / "bqn.conf"
    path.write_text(V2[1])
    return path


def test_the_race_is_real_a_plain_atomic_write_loses_operator_edits(backup):
    def plain(path: Path, expected: str, new: str) -> bool:
        write_atomic(path, new)
        return False
    _, _, lost = race(backup, 150, "replace", plain)
    assert lost, "without compare-and-swap the daemon overwrites edits made while it worked"


@pytest.mark.parametrize("mode, edits, pause", [("replace", 300, 0.004), ("inplace", 100, 0.1)],
                         ids=["replace", "inplace"])
def test_no_operator_edit_is_lost_to_the_daemons_writes(backup, mode, edits, pause):
    """In place, the operator rests longer than livefile.SETTLE between edits (else no read of it settles)."""
    original = V2[1]
    writes, merges, lost = race(backup, edits, mode, cas, pause)
    assert lost == [], f"{len(lost)} operator edits lost: {lost[:10]}"
    assert merges > 0, "the race happened: some daemon writes found an operator's edit and merged it"
    assert writes > 10
    final = backup.read_text()
    expected_routing = sections(original, "routing").replace(
        "routing\n", "routing\n" + "".join(route(i) for i in reversed(range(edits))), 1)
    assert sections(final, "routing") == expected_routing, "server-specific sections exactly as the operator left them"
    for own in ("management", "interface", "hostname", "bqn-id", "wire"):
        assert sections(final, own) == sections(original, own)
    parse(final, "final")


def test_the_locked_fallback_loses_nothing_with_a_cooperating_editor(backup):
    writes, merges, lost = race(backup, 200, "locked",
                                lambda path, expected, new: cas(path, expected, new, exchange=False))
    assert lost == []
    assert merges > 0 and writes > 20


def test_a_replace_without_interference_writes_the_new_text_and_reports_its_stamp(backup):
    seen = livefile.read(backup)
    written = livefile.replace(backup, seen.text, daemon_change(seen.text, 1))
    assert backup.read_text() == written.text == daemon_change(V2[1], 1)
    assert not written.merged and written.method == "exchange"
    status = backup.stat()
    assert written.stamp == (status.st_mtime_ns, status.st_size)
    assert not [p for p in backup.parent.iterdir() if p.name.endswith(".tmp")], "no temporary file left"


def test_an_edit_made_since_the_read_is_merged_and_the_operators_value_wins_a_conflict(backup):
    seen = livefile.read(backup)
    ours = seen.text.replace("  downlink 100M\n", "  downlink 150M\n").replace(
        "  host fast.com\n", "  host fast.com\n  host ours.example\n")
    theirs = seen.text.replace("  downlink 100M\n", "  downlink 300M\n").replace(
        "routing\n", "routing\n" + route(7))
    write_atomic(backup, theirs)
    written = livefile.replace(backup, seen.text, ours)
    after = backup.read_text()
    assert written.merged and after == written.text
    assert "downlink 300M" in after and "downlink 150M" not in after, "the operator's value won"
    assert "host ours.example" in after and route(7) in after
    assert [(c.section, c.chosen) for c in written.conflicts] == [("policy rate plan-100M", "downlink 300M")]
    assert cluster_digest(parse(after, "x")) != cluster_digest(parse(theirs, "x"))


def test_an_edit_that_cannot_be_merged_is_left_as_the_operator_wrote_it(backup):
    seen = livefile.read(backup)
    broken = seen.text + "policy rate\n"
    write_atomic(backup, broken)
    with pytest.raises(livefile.Contended, match="cannot be merged"):
        livefile.replace(backup, seen.text, daemon_change(seen.text, 1))
    assert backup.read_text() == broken


def test_a_read_never_returns_half_of_an_in_place_write(backup, monkeypatch):
    monkeypatch.setattr(livefile, "SETTLE", 0.5)  # ten times the writer's pause, whatever the machine's load
    text = backup.read_text()
    half = len(text) // 2
    with open(backup, "w", encoding="utf-8") as handle:
        handle.write(text[:half])
        handle.flush()
        finisher = threading.Timer(0.05, lambda: (handle.write(text[half:]), handle.flush()))
        finisher.start()
        seen = livefile.read(backup)
        finisher.join()
    assert seen.text == text


def test_a_file_system_that_refuses_exchange_falls_back_to_the_lock_and_says_so(backup, monkeypatch, caplog):
    """No local file system here lacks RENAME_EXCHANGE, so renameat2 answers as vfat or an old NFS would: EINVAL."""
    def refuse(*arguments):
        ctypes.set_errno(errno.EINVAL)
        return -1
    monkeypatch.setattr(livefile, "_renameat2", refuse)
    monkeypatch.setattr(livefile, "_no_exchange", set())
    seen = livefile.read(backup)
    with caplog.at_level(logging.WARNING, logger="clusterd"):
        written = livefile.replace(backup, seen.text, daemon_change(seen.text, 1))
        again = livefile.replace(backup, written.text, daemon_change(written.text, 2))
    assert written.method == again.method == "locked"
    assert backup.read_text() == daemon_change(daemon_change(V2[1], 1), 2)
    assert [r.getMessage() for r in caplog.records].count(
        f"{backup.parent}: the file system cannot exchange files (renameat2: Invalid argument); "
        "replacing under a directory lock instead") == 1, "said once"
