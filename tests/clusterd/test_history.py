"""``clusterd.history`` on disk: content-addressed generations, ancestry, merge bases, lineages, pruning."""

from __future__ import annotations

import json

import pytest

from clusterd import history as history_module
from clusterd.history import KEEP, NONE, Generation, History


def child(history: History, parents: list[Generation], text: str, author: int = 0, epoch: int = 1) -> Generation:
    generation = Generation.make(parents, author, epoch, 1000.0 + len(text), text, f"digest of {text}")
    history.add(generation, text)
    return generation


def test_a_generations_id_is_its_content_and_a_tampered_one_is_refused():
    a = Generation.make([], 0, 1, 5.0, "ntp\n", "d")
    assert a == Generation.make([], 0, 1, 5.0, "ntp\n", "d")
    assert a.id != Generation.make([], 1, 1, 5.0, "ntp\n", "d").id, "the author is part of it"
    assert Generation.from_data(json.loads(json.dumps(a.as_data()))) == a
    with pytest.raises(ValueError, match="does not match"):
        Generation.from_data({**a.as_data(), "epoch": 9})
    with pytest.raises(ValueError, match="not a generation"):
        Generation.from_data({"id": a.id})


def test_ancestry_and_the_merge_base_of_two_branches(tmp_path):
    h = History(tmp_path)
    root = child(h, [], "root\n")
    left = child(h, [root], "left\n", author=1)
    right = child(h, [root], "right\n", author=2, epoch=2)
    merged = child(h, [left, right], "merged\n")
    assert h.contains(root.id, merged.id) and h.contains(right.id, merged.id) and h.contains("", left.id)
    assert not h.contains(left.id, right.id) and not h.contains(merged.id, left.id)
    assert h.merge_base(left.id, right.id) == root
    assert h.merge_base(merged.id, right.id) == right
    assert merged.number == 3 and merged.parents == (left.id, right.id)


def test_the_nearest_common_ancestor_is_known_by_metadata_the_merge_base_by_its_text(tmp_path):
    h = History(tmp_path)
    root = child(h, [], "root\n")
    nearest = Generation.make([root], 0, 1, 7.0, "nearest\n", "d")
    h.add(nearest, None)
    left = child(h, [nearest], "left\n", author=1)
    right = child(h, [nearest], "right\n", author=2)
    assert h.common_ancestor(left.id, right.id) == nearest, "a peer may still keep its text"
    assert h.merge_base(left.id, right.id) == root, "the nearest whose text is kept here"
    assert h.common_ancestor(left.id, child(h, [], "unrelated\n").id) is None


def test_a_lineage_lets_another_server_place_a_generation_in_its_own_history(tmp_path):
    mine, theirs = History(tmp_path / "a"), History(tmp_path / "b")
    root = child(mine, [], "root\n")
    theirs.add(root, "root\n")
    edit = child(theirs, [root], "edit\n", author=2)
    later = child(theirs, [edit], "later\n", author=2)
    assert not mine.contains(root.id, later.id)
    mine.learn(theirs.lineage(later.id) + [{"id": "junk"}])
    assert mine.contains(root.id, later.id) and mine.text(edit.id) is None, "metadata only"
    assert mine.merge_base(root.id, later.id) == root


def test_the_head_survives_a_restart_and_pruning_keeps_its_ancestors(tmp_path):
    h = History(tmp_path)
    assert h.head is NONE
    chain = [child(h, [], "g0\n")]
    for n in range(1, KEEP + 10):
        chain.append(child(h, [chain[-1]], f"g{n}\n"))
    side = child(h, [chain[0]], "side\n", author=3)
    h.set_head(chain[-1])
    again = History(tmp_path)
    assert again.head == chain[-1]
    assert again.text(chain[-KEEP].id) is not None and again.text(chain[0].id) is None
    assert again.text(side.id) is None, "old side branches' texts go"
    assert again.common_ancestor(side.id, chain[-1].id) == chain[0], \
        "the ancestry is kept longer than the texts: the merge base is found, its text asked of the peer"


def test_metadata_beyond_its_own_bound_goes_and_a_merge_is_then_a_union(tmp_path, monkeypatch):
    monkeypatch.setattr(history_module, "KEEP_METADATA", KEEP + 20)
    h = History(tmp_path)
    chain = [child(h, [], "g0\n")]
    for n in range(1, KEEP + 40):
        chain.append(child(h, [chain[-1]], f"g{n}\n"))
    h.set_head(chain[-1])
    assert h.get(chain[0].id) is None and h.get(chain[-(KEEP + 20)].id) is not None
    assert not h.contains(chain[0].id, chain[-1].id), "beyond the kept ancestry: a merge is a union, and says so"


def test_how_a_generation_was_made_is_part_of_its_id_and_older_ones_stay_valid(tmp_path):
    old = Generation.make([], 0, 1, 5.0, "ntp\n", "d")
    stored = {"id": old.id, "parents": [], "author": 0, "epoch": 1, "time": 5.0, "number": 1, "sha256": old.sha256,
              "digest": "d"}
    assert Generation.from_data(stored) == old and old.made == "edit", "a generation stored before the notes existed"
    load = Generation.make([old], 2, 1, 6.0, "dns\n", "e", how="load", deadline=66.0, on=1, summary="added dns")
    assert load.id != Generation.make([old], 2, 1, 6.0, "dns\n", "e", how="load", deadline=67.0, on=1,
                                      summary="added dns").id
    assert Generation.from_data(json.loads(json.dumps(load.as_data()))) == load
    with pytest.raises(ValueError, match="does not match"):
        Generation.from_data({**load.as_data(), "deadline": 600.0})
    with pytest.raises(ValueError, match="does not match"):
        Generation.from_data({**load.as_data(), "summary": "nothing"})
    h = History(tmp_path)
    h.add(load, "dns\n")
    assert History(tmp_path).get(load.id) == load
    assert Generation.make([old, load], 0, 1, 7.0, "x\n", "f").made == "merge"
