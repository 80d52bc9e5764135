"""The checker's judgement on recorded histories: it finds a lost edit, and only a lost one."""

from __future__ import annotations

from clusterd.lab.checker import Observations, acknowledged, double_primaries, lost
from clusterd.lab.operators import Edit, Record


def history(*edits: tuple[int, str, int | None, float]) -> Record:
    record = Record()
    record.edits = [Edit(n, server, key, value, at) for n, (server, key, value, at) in enumerate(edits)]
    return record


def seen_holding(*generations: tuple[float, dict[str, int | None]]) -> Observations:
    seen = Observations()
    for n, (at, values) in enumerate(generations):
        seen.contents[f"d{n}"] = values
        seen.acknowledged[f"d{n}"] = at
    return seen


def test_an_edit_is_acknowledged_when_a_generation_held_twice_holds_its_value():
    record = history((1, "lab-a", 10, 1.0), (2, "lab-b", 20, 2.0), (1, "lab-a", 11, 3.0))
    seen = seen_holding((1.5, {"lab-a": 10}), (4.0, {"lab-a": 10, "lab-b": 20}))
    assert acknowledged(record, seen) == {0: 1.5, 1: 4.0}


def test_an_acknowledged_value_missing_at_the_end_is_lost():
    record = history((1, "lab-a", 10, 1.0))
    acked = {0: 1.5}
    assert lost(record, acked, {"lab-a": 10}, []) == []
    assert len(lost(record, acked, {"lab-a": 9}, [])) == 1
    assert len(lost(record, acked, {}, [])) == 1


def test_a_lost_edit_is_told_with_every_edit_of_its_key():
    """What CI keeps of a failed soak is its output: the key's story has to be in it."""
    record = history((0, "lab-a", 10, 1.0), (0, "lab-a", None, 2.0), (2, "lab-a", 10, 3.0))
    (message,) = lost(record, {2: 3.2}, {}, [])
    assert "the key's edits: #0 server 0 None -> 10 at " in message
    assert "; #1 server 0 " in message and "-> None at " in message and "; #2 server 2 " in message


def test_a_later_edit_supersedes_and_a_conflict_excuses_but_an_earlier_one_does_not():
    record = history((1, "lab-a", 9, 0.5), (1, "lab-a", 10, 1.0), (2, "lab-a", 11, 2.0), (2, "lab-b", None, 3.0))
    acked = {1: 1.5}
    assert lost(record, acked, {"lab-a": 11}, []) == [], "a later edit of the same key"
    assert len(lost(record, acked, {"lab-a": 9}, [])) == 1, "an older value came back"
    conflict = {"from": 2, "section": "policy rate lab-a", "statement": "downlink", "chosen": "9"}
    assert lost(record, acked, {"lab-a": 9}, [conflict]) == []


def test_a_removal_supersedes():
    record = history((1, "lab-a", 10, 1.0), (1, "lab-a", None, 2.0))
    assert lost(record, {0: 1.5}, {}, []) == []


def test_two_primaries_in_one_epoch_for_longer_than_detection_are_found():
    seen = Observations()
    seen.primaries = [(t / 10, 1, 4) for t in range(20)] + [(t / 10, 2, 4) for t in range(5, 20)]
    assert len(double_primaries(seen, 0.6, {})) == 1
    assert double_primaries(seen, 2.0, {}) == [], "a tie settled within the detection time is not acting"
    seen.primaries = [(t / 10, 1, 4) for t in range(20)] + [(t / 10, 2, 5) for t in range(20)]
    assert double_primaries(seen, 0.6, {}) == [], "different epochs"


def test_generations_made_by_two_servers_in_one_epoch_are_found_in_the_logs():
    logs = {1: "12:00:00 clusterd[1] INFO: generation 4 (epoch 3, sha256 abc)\n",
            2: "12:00:01 clusterd[2] INFO: generation 4 (epoch 3, sha256 def)\n"}
    found = double_primaries(Observations(), 0.6, logs)
    assert len(found) == 1 and found[0].startswith("servers [1, 2] all made generations in epoch 3 (logs: 12:00:00")
    logs[2] = logs[2].replace("epoch 3", "epoch 4")
    assert double_primaries(Observations(), 0.6, logs) == []
    logs[2] = ("12:00:02 clusterd[2] INFO: generation 5 not applied: generation 5 (epoch 3) is older than "
               "generation 6 (epoch 4) held here; not applied\n")
    assert double_primaries(Observations(), 0.6, logs) == [], "a generation named is not one made"
