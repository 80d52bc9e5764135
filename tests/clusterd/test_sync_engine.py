"""``clusterd.sync`` without a network: merges of heads (applying is ``test_apply``, the history ``test_history``)."""

from __future__ import annotations

import pytest

from clusterd.history import Generation
from clusterd.sync import SyncError, merge_edit, snapshot
from confmerge.merge import cluster_digest, cluster_part
from confmerge.parser import parse

from .test_sync import V1, V2


def generation_of(text: str, epoch: int = 1) -> tuple[Generation, str]:
    cluster = cluster_part(parse(text, "primary"))
    return Generation.make([], 0, epoch, 1.0, cluster, cluster_digest(parse(text, "primary"))), cluster


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


def test_an_edit_that_cannot_be_merged_is_a_plain_refusal(tmp_path):
    backup = tmp_path / "bqn0.conf"
    backup.write_text(V2[0])
    with pytest.raises(SyncError, match="the head of server 2 cannot be merged: head of server 2:2:1: error: tab"):
        merge_edit(snapshot(backup), "ntp\n\tserver 1.2.3.4\n", None, backup, sender=2)
