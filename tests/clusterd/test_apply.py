"""``clusterd.apply`` without a network: apply, rollback, and the repair after a crash at each point."""

from __future__ import annotations

import json
import os

import pytest

from clusterd import apply as applying
from clusterd.apply import apply_generation, pending, recover
from clusterd.history import History, sha256
from clusterd.sync import SyncError, snapshot
from confmerge.merge import cluster_digest
from confmerge.parser import parse

from .test_safety import fill, small_tmpfs
from .test_sync import V1, V2
from .test_sync_engine import generation_of


@pytest.fixture
def server(tmp_path):
    backup = tmp_path / "bqn.conf"
    backup.write_text(V1[1])
    return History(tmp_path / "state"), backup



def test_applying_adopts_keeps_the_servers_own_sections_and_records_the_generation(server):
    store, backup = server
    generation, text = generation_of(V1[0])
    applied = apply_generation(store, backup, text, generation, None, snapshot(backup))
    assert applied.written
    after = backup.read_text()
    assert "rule sw-updates-at-peak" in after and "hostname bqn1" in after and "address 192.168.0.122/24" in after
    assert cluster_digest(parse(after, "x")) == generation.digest == applied.live.digest
    assert store.text(generation.id) == text, "kept in the history; the caller makes it the head"
    assert (store.root / "previous.conf").read_text() == V1[1]
    stat = backup.stat()
    assert applied.stamp == (stat.st_mtime_ns, stat.st_size)


def test_a_hash_mismatch_is_not_applied(server):
    store, backup = server
    generation, text = generation_of(V1[0])
    with pytest.raises(SyncError, match="hash mismatch"):
        apply_generation(store, backup, text.replace("plan-100M", "plan-100m"), generation, None)
    assert backup.read_text() == V1[1]


def test_a_failing_apply_command_puts_the_previous_file_back(server, tmp_path):
    store, backup = server
    generation, text = generation_of(V1[0])
    with pytest.raises(SyncError, match=r"apply command failed \(exit 4\): nope; the previous backup is back"):
        apply_generation(store, backup, text, generation, "echo nope >&2; exit 4")
    assert backup.read_text() == V1[1]
    assert store.text(generation.id) is None
    seen = tmp_path / "seen"
    apply_generation(store, backup, text, generation, f'echo "$CLUSTERD_GENERATION" > {seen}')
    assert seen.read_text() == "1\n"


def test_an_invalid_live_backup_is_reported_and_left_alone(server):
    store, backup = server
    broken = V1[1].replace("bqn-id 1", "bqn-id 1\nbqn-id 2")
    backup.write_text(broken)
    generation, text = generation_of(V1[0])
    with pytest.raises(SyncError, match=r"the live backup is not valid \(.*bqn\.conf:\d+:\d+: error: "):
        apply_generation(store, backup, text, generation, None)
    assert backup.read_text() == broken


def test_a_missing_live_backup_is_reported(server):
    store, backup = server
    backup.unlink()
    generation, text = generation_of(V1[0])
    with pytest.raises(SyncError, match="cannot read the live backup .*bqn.conf: "):
        apply_generation(store, backup, text, generation, None)
    assert not backup.exists()


def test_the_intent_is_recorded_before_the_command_runs_and_removed_after(server, tmp_path):
    store, backup = server
    generation, text = generation_of(V1[0])
    seen = tmp_path / "intent-during-command"
    apply_generation(store, backup, text, generation, f"cat {store.root / 'intent.json'} > {seen}")
    during = json.loads(seen.read_text())
    assert during == {"generation": 1, "previous": sha256(V1[1]), "new": sha256(backup.read_text())}
    assert pending(store) is None


def interrupted(store: History, backup, new_text: str, replaced: bool) -> None:
    """The state a kill -9 leaves: intent recorded, previous kept, the backup replaced or not yet."""
    old = backup.read_text()
    (store.root / "previous.conf").write_text(old)
    applying._record(store, applying.Intent(7, sha256(old), sha256(new_text)))
    if replaced:
        backup.write_text(new_text)


def test_after_a_crash_before_the_replace_nothing_is_run(server, tmp_path):
    store, backup = server
    runs = tmp_path / "runs"
    interrupted(store, backup, V2[1], replaced=False)
    done = recover(store, backup, f"echo run >> {runs}")
    assert done is not None and done.error is None and "before the backup was replaced" in done.event
    assert not runs.exists() and backup.read_text() == V1[1] and pending(store) is None
    assert recover(store, backup, f"echo run >> {runs}") is None


def test_after_a_crash_during_the_command_it_runs_again_for_the_file_on_disk(server, tmp_path):
    store, backup = server
    runs = tmp_path / "runs"
    interrupted(store, backup, V2[1], replaced=True)
    done = recover(store, backup, f'sha256sum "$CLUSTERD_BACKUP" >> {runs}; echo "$CLUSTERD_GENERATION" >> {runs}')
    assert done is not None and done.error is None and "ran again" in done.event
    assert runs.read_text().split()[0] == sha256(V2[1]) and runs.read_text().split()[-1] == "7"
    assert backup.read_text() == V2[1] and pending(store) is None


def test_after_a_crash_a_command_that_fails_again_puts_the_previous_file_back(server):
    store, backup = server
    interrupted(store, backup, V2[1], replaced=True)
    done = recover(store, backup, "echo 'bqn: load failed' >&2; exit 3")
    assert done is not None and done.error is not None
    assert "apply command failed (exit 3): bqn: load failed; the previous backup is back" in done.error
    assert backup.read_text() == V1[1] and pending(store) is None


def test_after_a_crash_an_operators_later_edit_is_never_replaced(server):
    store, backup = server
    interrupted(store, backup, V2[1], replaced=True)
    edited = V2[1].replace("  downlink 100M\n", "  downlink 400M\n")
    backup.write_text(edited)
    done = recover(store, backup, "exit 3")
    assert done is not None and done.error is not None and "changed since; it stays" in done.error
    assert backup.read_text() == edited


def test_an_edit_made_after_the_daemons_last_read_is_merged_not_adopted_away(server):
    store, backup = server
    live = snapshot(backup)
    edited = V1[1].replace("dns\n", "dns\n  server 10.90.0.1\n").replace("routing\n", "routing\n  static 10.1.0.0/16 via 192.168.0.1\n")
    backup.write_text(edited)
    generation, text = generation_of(V1[0])
    applied = apply_generation(store, backup, text, generation, None, live)
    after = backup.read_text()
    assert "server 10.90.0.1" in after and "static 10.1.0.0/16 via 192.168.0.1" in after
    assert "rule sw-updates-at-peak" in after, "and the generation is in"
    assert applied.live.text == after and applied.live.digest != generation.digest, "an edit to send to the primary"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs as a full disk needs root")
def test_an_apply_whose_state_cannot_be_written_replaces_nothing(tmp_path):
    backup = tmp_path / "bqn.conf"
    backup.write_text(V1[1])
    state = tmp_path / "state"
    state.mkdir()
    with small_tmpfs(state, "64k") as filler:
        store = History(state)
        fill(filler)
        generation, text = generation_of(V1[0])
        with pytest.raises(SyncError, match="cannot write the state directory .*No space left on device.*; "
                                            "the backup is not replaced"):
            apply_generation(store, backup, text, generation, "exit 0")
        assert backup.read_text() == V1[1] and pending(store) is None


def test_after_a_crash_mid_swap_the_displaced_operator_file_is_kept_and_named(server):
    store, backup = server
    interrupted(store, backup, V2[1], replaced=True)
    copy = backup.parent / ".bqn.conf.abc123.tmp"
    copy.write_text(V1[1])
    displaced = backup.parent / ".bqn.conf.def456.tmp"
    displaced.write_text(V1[1].replace("routing\n", "routing\n  static 10.9.0.0/16 via 192.168.0.1\n"))
    done = recover(store, backup, "exit 0")
    assert done is not None and done.error is not None and str(displaced) in done.error
    assert displaced.exists(), "an operator's edit is never removed"
    assert not copy.exists(), "a copy of the previous backup (kept in previous.conf) goes"


def test_an_entry_the_operator_changed_meanwhile_keeps_the_operators_value_and_is_a_conflict(tmp_path):
    backup = tmp_path / "bqn.conf"
    backup.write_text(V2[1])
    store = History(tmp_path / "state")
    live = snapshot(backup)
    backup.write_text(V2[1].replace("  downlink 100M\n", "  downlink 300M\n"))
    generation, text = generation_of(V2[0].replace("  downlink 100M\n", "  downlink 150M\n"))
    applied = apply_generation(store, backup, text, generation, None, live)
    assert "downlink 300M" in backup.read_text() and "downlink 150M" not in backup.read_text()
    assert [(c.section, c.values, c.chosen) for c in applied.conflicts] == [
        ("policy rate plan-100M", ("downlink 300M", "downlink 150M"), "downlink 300M")]
