"""The lab's operators: tracked values read and written exactly, swaps that say what they replaced."""

from __future__ import annotations

from pathlib import Path

from clusterd.lab.operators import (Operator, Record, exchange, policies, section, seeded, server_sections,
                                    with_policy, with_routes)
from clusterd.lab.world import unified_backup
from confmerge import parse

BASE = seeded(unified_backup(1))


def test_a_policy_is_added_changed_and_removed_and_the_result_parses():
    added = with_policy(BASE, "lab-s1-7", 123)
    assert policies(added)["lab-s1-7"] == 123
    changed = with_policy(added, "lab-s1-7", 456)
    assert policies(changed) == {**policies(BASE), "lab-s1-7": 456}
    assert policies(with_policy(changed, "lab-s1-7", None)) == policies(BASE)
    parse(changed, "changed.conf")
    assert changed.index("policy rate lab-s1-7") < changed.index("rule ")


def test_units_are_read_in_kbit():
    text = BASE.replace("downlink 50000k", "downlink 50M")
    assert policies(text)["lab-shared-0"] == 50_000


def test_lab_routes_replace_only_the_labs_own():
    routed = with_routes(BASE, ["10.201.3.0/24 via 192.168.0.1"])
    assert section(routed, "routing").splitlines()[1:4] == [
        "  static 0.0.0.0/0 via 192.168.0.1", "  static 10.20.0.0/16 via 192.168.0.254 metric 10",
        "  static 10.201.3.0/24 via 192.168.0.1"]
    assert "10.201.3.0/24" not in with_routes(routed, [])
    assert "10.20.0.0/16" in with_routes(routed, [])
    parse(routed, "routed.conf")


def test_exchange_returns_exactly_what_it_replaced(tmp_path: Path):
    path = tmp_path / "bqn.conf"
    path.write_text("old\n")
    assert exchange(path, "new\n") == "old\n"
    assert path.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["bqn.conf"]


def test_an_operator_records_its_edits_and_what_its_write_carried_back(tmp_path: Path):
    path = tmp_path / "bqn.conf"
    path.write_text(BASE)
    record = Record()
    operator = Operator(1, path, record, seed=3)
    for _ in range(40):
        operator.edit_once()
    assert record.edits and not record.violations
    final = policies(path.read_text())
    for key in final:
        mine = [e for e in record.edits if e.key == key]
        assert not mine or mine[-1].value == final[key]
    assert record.sections[1] == server_sections(path.read_text())
    values = [e.value for e in record.edits if e.value is not None]
    assert len(values) == len(set(values)), "every value written is unique"
    # the daemon rewrites the file between the operator's read and its write: the write is recorded as reverting it
    path.write_text(with_policy(path.read_text(), "lab-shared-0", 999))
    record.add(1, path.read_text(), with_policy(path.read_text(), "lab-shared-0", 998), set())
    assert record.edits[-1].key == "lab-shared-0" and record.edits[-1].value == 998 and not record.edits[-1].intended


def test_own_sections_changed_behind_the_operator_are_reported(tmp_path: Path):
    path = tmp_path / "bqn.conf"
    path.write_text(BASE)
    record = Record()
    operator = Operator(1, path, record, seed=3)
    operator.edit_once()
    path.write_text(path.read_text().replace("hostname bqn1", "hostname changed"))
    operator.edit_once()
    assert any("hostname" in v for v in record.violations)
