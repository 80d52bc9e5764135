"""``clusterd.sync`` without a network: generations, the store, merges of edits."""

from __future__ import annotations

import pytest

from clusterd.sync import NONE, Generation, Snapshot, Store, SyncError, merge_edit, next_generation, sha256, snapshot
from confmerge.merge import cluster_digest, cluster_part
from confmerge.parser import parse

from .test_sync import V1, V2


def generation_of(text: str, number: int = 1, epoch: int = 1) -> tuple[Generation, str]:
    cluster = cluster_part(parse(text, "primary"))
    return Generation(number, epoch, sha256(cluster), cluster_digest(parse(text, "primary"))), cluster


def test_generations_order_by_number_then_epoch():
    a, b, c = Generation(3, 1, "", ""), Generation(3, 2, "", ""), Generation(4, 1, "", "")
    assert a.older_than(b) and b.older_than(c) and not c.older_than(a) and not a.older_than(a)
    assert NONE.older_than(a)


def test_a_generation_nobody_acknowledged_is_forgotten_at_start(tmp_path):
    store = Store(tmp_path)
    first, text1 = generation_of(V1[0], number=1)
    second, text2 = generation_of(V2[0], number=2)
    store.save(first, text1, committed=True)
    store.save(second, text2, committed=False)
    assert store.forget_uncommitted() == first
    assert store.current() == (first, True)


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


def test_next_generation_numbers_past_anything_seen():
    generation, text = generation_of(V1[0], number=3)
    live = Snapshot(V1[0], text, generation.digest)
    assert next_generation(generation, 7, 2, live) == Generation(8, 2, generation.sha256, generation.digest)
    assert next_generation(generation, 1, 2, live).number == 4


def test_an_edit_that_cannot_be_merged_is_a_plain_refusal(tmp_path):
    backup = tmp_path / "bqn0.conf"
    backup.write_text(V2[0])
    with pytest.raises(SyncError, match="the edit from server 2 cannot be merged: edit from server 2:2:1: error: tab"):
        merge_edit(snapshot(backup), "ntp\n\tserver 1.2.3.4\n", None, backup, sender=2)
