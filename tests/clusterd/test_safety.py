"""Issue 10's safety defects, each a named regression with real ``clusterd run`` processes."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from .operator_edits import dns_server, route
from .test_livefile import OPERATOR
from .test_sync import V1, V2, all_have, sections, unified_three


def blocking_command(runs, go, fail=None) -> str:
    """An apply command that records the backup it loads, then waits (at most 30 s) until the test says go."""
    failing = f"[ -e {fail} ] && exit 3; " if fail else ""
    return (f'echo "$CLUSTERD_GENERATION $(sha256sum < "$CLUSTERD_BACKUP" | cut -c1-64)" >> {runs}; '
            f"for i in $(seq 600); do [ -e {go} ] && break; sleep 0.05; done; {failing}exit 0")


def crash(cluster, i: int) -> None:
    """kill -9 of the daemon and everything it started (its apply command), as a power cut would."""
    process = cluster.processes.pop(i)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def sha_of(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("outcome", ["loads", "fails"])
def test_defect_5_kill_9_during_the_apply_command_is_repaired_at_start(cluster_factory, tmp_path, outcome):
    runs, go, fail = tmp_path / "runs", tmp_path / "go", tmp_path / "fail"
    cluster = cluster_factory([0, 1], backups={0: V1[0], 1: V1[1]},
                              apply_command={1: blocking_command(runs, go, fail)})
    original = cluster.backup(1).read_text()
    cluster.start_all()
    cluster.wait("the apply command running on server 1", lambda: runs.exists() and runs.read_text() or None, 25)
    crash(cluster, 1)
    assert cluster.digest(1) == cluster.digest(0), "killed after the new backup was in place"
    on_disk = sha_of(cluster.backup(1))
    if outcome == "fails":
        fail.touch()
    cluster.start(1)
    cluster.wait("the apply command run again", lambda: len(runs.read_text().splitlines()) == 2 or None, 25)
    assert runs.read_text().splitlines()[1].split()[1] == on_disk, "for the file on disk"
    for _ in range(5):
        own, seen = cluster.status(1), cluster.seen(0, 1)
        assert own is not None and own["servers"][1]["sync"] == "syncing", own["servers"]
        assert seen is not None and seen["sync"] != "in sync", "not loaded yet: never in sync"
    go.touch()
    if outcome == "loads":
        cluster.wait("complete", lambda: cluster.complete() or None, 25)
        assert len(runs.read_text().splitlines()) == 2, "loaded once after the restart, not again"
        assert sha_of(cluster.backup(1)) == on_disk
    else:
        failed = cluster.wait("the failure reported", lambda: (s := cluster.status(1)) and
                              s["servers"][1]["sync"] == "sync failed" and s["servers"][1] or None, 25)
        assert "the previous backup is back" in failed["error"]
        assert cluster.backup(1).read_text() == original
        assert ("after a restart, the interrupted apply of generation 1: apply command failed (exit 3); "
                "the previous backup is back") in cluster.log(1)
    assert not (cluster.dir(1) / "state" / "sync" / "intent.json").exists()


def test_defect_3_operators_editing_every_server_at_a_high_rate_lose_no_edit(cluster_factory):
    cluster = unified_three(cluster_factory)
    before = {i: cluster.backup(i).read_text() for i in cluster.ids}
    count = 45
    operators = {i: subprocess.Popen([sys.executable, str(OPERATOR), str(cluster.backup(i)), str(count), "careful",
                                      "0.12", str(i)], stdout=subprocess.PIPE, text=True) for i in cluster.ids}
    try:
        for process in operators.values():
            assert process.wait(timeout=90) == 0
    finally:
        for process in operators.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
    made = {i: [int(line) for line in p.stdout.read().split()] for i, p in operators.items() if p.stdout}
    assert all(edits == list(range(count)) for edits in made.values())
    cluster.wait("every server with one configuration, complete",
                 lambda: len({cluster.digest(i) for i in cluster.ids}) == 1 and cluster.complete() or None, 60)
    lost = []
    for i in cluster.ids:
        own = cluster.backup(i).read_text()
        lost += [f"server {i}: route {k}" for k in made[i] if route(k, i) not in own]
        for j in cluster.ids:
            lost += [f"server {j}: dns {k} from server {i}" for k in made[i] if k % 3 == 0
                     and dns_server(k, i) not in cluster.backup(j).read_text()]
    assert lost == [], f"{len(lost)} edits lost: {lost[:10]}\n{cluster.logs()}"
    for i in cluster.ids:
        expected = sections(before[i], "routing").replace(
            "routing\n", "routing\n" + "".join(route(k, i) for k in reversed(range(count))), 1)
        assert sections(cluster.backup(i).read_text(), "routing") == expected, "exactly as the operator left it"


def saved_epoch(cluster, i: int) -> int:
    path = cluster.dir(i) / "state" / "epoch.json"
    return json.loads(path.read_text())["epoch"] if path.exists() else 0


@pytest.mark.parametrize("stopped", [1, 2])
def test_defect_7_a_secondary_stopped_with_sigterm_claims_no_role_and_saves_no_epoch(cluster_factory, stopped):
    cluster = cluster_factory([0, 1, 2])
    cluster.start_all()
    cluster.wait("complete under server 0", lambda: cluster.agreed_primary() == 0 and cluster.complete() or None, 25)
    epoch = cluster.status(0)["epoch"]
    process = cluster.processes.pop(stopped)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert f"server {stopped} is primary" not in cluster.log(stopped), cluster.log(stopped)[-2000:]
    assert saved_epoch(cluster, stopped) == epoch
    others = [i for i in cluster.ids if i != stopped]
    cluster.wait("the stop seen", lambda: all((s := cluster.seen(i, stopped)) and not s["up"] for i in others) or None, 10)
    assert [cluster.status(i)["epoch"] for i in others] == [epoch, epoch], "no election"
    assert cluster.agreed_primary() == 0


@contextmanager
def small_tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """``directory`` (its files kept) on a tmpfs of ``size``, mounted for the test and always unmounted."""
    saved = directory.with_name(directory.name + ".saved")
    directory.rename(saved)
    directory.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(directory)], check=True)
    try:
        for item in saved.iterdir():
            shutil.copy2(item, directory / item.name)
        yield directory / "filler"
    finally:
        subprocess.run(["umount", "--lazy", str(directory)], check=False)


def fill(path: Path) -> None:
    """Fill the file system ``path`` is on, to the last block."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as error:
        assert error.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs as a full disk needs root")
def test_defect_6_a_full_state_directory_is_reported_once_and_starts_no_election(cluster_factory):
    cluster = cluster_factory([0, 1, 2])
    with small_tmpfs(cluster.dir(2) / "state", "256k") as filler:
        try:
            cluster.start_all()
            cluster.wait("complete under server 0", lambda: cluster.agreed_primary() == 0 and cluster.complete()
                         or None, 25)
            epoch = cluster.status(0)["epoch"]
            fill(filler)
            crash(cluster, 0)
            cluster.wait("server 1 primary", lambda: cluster.agreed_primary() == 1 or None, 10)
            error = cluster.wait("the failed save in server 2's status", lambda: (s := cluster.seen(2, 2)) and
                                 s["error"] or None, 10)
            assert "cannot write the state directory (saving the epoch): No space left on device" in error
            end = time.monotonic() + 3
            while time.monotonic() < end:
                assert {cluster.status(i)["epoch"] for i in (1, 2)} == {epoch + 1}, "no election storm"
                assert cluster.agreed_primary() == 1
                assert cluster.seen(1, 2)["up"] and cluster.seen(2, 1)["up"], "no channel died"
                time.sleep(0.2)
            assert cluster.log(2).count("cannot write the state directory (saving the epoch)") == 1, "logged once"
            assert saved_epoch(cluster, 2) == epoch
            filler.unlink()
            cluster.wait("the fault cleared", lambda: cluster.seen(2, 2)["error"] is None or None, 10)
            assert saved_epoch(cluster, 2) == epoch + 1
            assert "the state directory is writable again (saving the epoch)" in cluster.log(2)
        finally:
            cluster.stop_all()


def test_defect_10_sync_failed_clears_when_it_no_longer_holds(cluster_factory, tmp_path):
    failing = tmp_path / "failing"
    failing.write_text("")
    cluster = cluster_factory([0, 1], backups={0: V1[0], 1: V1[1]},
                              apply_command={1: f"if [ -e {failing} ]; then echo 'bqn: load failed' >&2; exit 3; fi"})
    cluster.start_all()
    cluster.wait("server 1's refusal", lambda: (s := cluster.seen(1, 1)) and s["sync"] == "sync failed" or None, 25)
    crash(cluster, 0)
    cluster.wait("server 1 primary", lambda: cluster.agreed_primary() == 1 or None, 10)
    assert (cluster.seen(1, 1)["sync"], cluster.seen(1, 1)["error"]) == ("in sync", None), "a primary is in sync"
    failing.unlink()  # server 1 must load server 0's generation (merged with its own) before 0 can take the role back
    cluster.start(0)
    cluster.wait("server 0 primary again, and complete", lambda: cluster.agreed_primary() == 0 and cluster.complete()
                 or None, 25)
    for i in (0, 1):
        assert [(s["sync"], s["error"]) for s in cluster.status(i)["servers"]] == [("in sync", None)] * 2


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs as a full disk needs root")
def test_a_primary_that_cannot_save_a_generation_reports_it_and_makes_it_once_it_can(cluster_factory):
    cluster = cluster_factory([0, 1], backups={0: V2[0], 1: V2[1]})
    with small_tmpfs(cluster.dir(0) / "state", "256k") as filler:
        try:
            cluster.start_all()
            cluster.wait("complete", lambda: cluster.complete() or None, 25)
            fill(filler)
            cluster.edit(0, "  server 8.8.8.8\n", "  server 8.8.8.8\n  server 9.9.9.9\n")
            error = cluster.wait("the failed save in status", lambda: (s := cluster.seen(0, 0)) and s["error"] or None)
            assert "cannot write the state directory (saving a generation): No space left on device" in error
            time.sleep(1)
            assert "server 9.9.9.9" not in cluster.backup(1).read_text()
            assert cluster.log(0).count("cannot write the state directory (saving a generation)") == 1, "logged once"
            assert "Traceback" not in cluster.log(0)
            filler.unlink()
            cluster.wait("the edit on server 1", lambda: all_have(cluster, (1,), "server 9.9.9.9"), 15)
            cluster.wait("the fault cleared", lambda: cluster.seen(0, 0)["error"] is None or None, 10)
        finally:
            cluster.stop_all()
