"""Issue 10's safety defects, each a named regression with real ``clusterd run`` processes."""

from __future__ import annotations

import os
import signal

import pytest


from .test_sync import V1


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
    import hashlib

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
        assert "interrupted apply" in failed["error"] and "the previous backup is back" in failed["error"]
        assert cluster.backup(1).read_text() == original
        assert "an apply of generation" in cluster.log(1) or "interrupted" in cluster.log(1)
    assert not (cluster.dir(1) / "state" / "sync" / "intent.json").exists()
