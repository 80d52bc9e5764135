"""``clusterd.sync`` without a network: apply, rollback, merges of heads (the history has its own tests)."""

from __future__ import annotations

import pytest

from clusterd.history import Generation, History
from clusterd.sync import SyncError, apply_generation, merge_edit, snapshot
from confmerge.merge import cluster_digest, cluster_part
from confmerge.parser import parse

from .test_sync import V1, V2


def generation_of(text: str, epoch: int = 1) -> tuple[Generation, str]:
    cluster = cluster_part(parse(text, "primary"))
    return Generation.make([], 0, epoch, 1.0, cluster, cluster_digest(parse(text, "primary"))), cluster


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
    seen = tmp_path / "seen"
    apply_generation(store, backup, text, generation, f'echo "$CLUSTERD_GENERATION" > {seen}')
    assert seen.read_text() == "1\n"


def test_an_edit_merges_three_way_so_a_removal_on_the_secondary_propagates(tmp_path):
    backup = tmp_path / "bqn0.conf"
    backup.write_text(V2[0])
    base = cluster_part(parse(V2[0], "base"))
    edit = cluster_part(parse(V2[1].replace("  host fast.com\n", ""), "edit"))
    outcome = merge_edit(snapshot(backup), edit, base, backup, sender=1)
    assert outcome.three_way and outcome.changed and not outcome.conflicts
    assert "host fast.com" not in outcome.text
    union = merge_edit(snapshot(backup), edit, None, backup, sender=1)
    assert not union.three_way and "host fast.com" in union.text, "without the base, nothing is removed"


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


def test_an_edit_that_cannot_be_merged_is_a_plain_refusal(tmp_path):
    backup = tmp_path / "bqn0.conf"
    backup.write_text(V2[0])
    with pytest.raises(SyncError, match="the head of server 2 cannot be merged: head of server 2:2:1: error: tab"):
        merge_edit(snapshot(backup), "ntp\n\tserver 1.2.3.4\n", None, backup, sender=2)
