"""``merge``: one test per rule of issue 4, on small backups written out in full."""

from __future__ import annotations

from pathlib import Path

import pytest

from confmerge.check import validate
from confmerge.diagnostics import ConfError
from confmerge.merge import Action, Conflict, Edit, merge
from confmerge.parser import parse
from confmerge.render import render
from confmerge.rules import rules_with

from .conftest import FIXTURES

HEAD = "hostname bqn{0}\nbqn-id {0}\n"


def backups(*bodies: str, ids=None, rules=None):
    ids = ids if ids is not None else range(len(bodies))
    return [parse((HEAD.format(i) if i is not None else "") + body, f"bqn{k}.conf", rules)
            for k, (i, body) in enumerate(zip(ids, bodies))]


def texts(result):
    return [render(output) for output in result.outputs]


def guide():
    return [parse((FIXTURES / name).read_text(), name) for name in ("bqn0-v1.conf", "bqn1-v1.conf")]


# -- the guide's scenario


def test_the_guides_scenario_gives_the_golden_outputs():
    result = merge(guide())
    assert texts(result) == [(FIXTURES / "expected" / name).read_text() for name in ("bqn0-v2.conf", "bqn1-v2.conf")]
    assert result.primary == 0 and result.conflicts == () and result.unclassified == ()
    added = [{(e.section, e.statement) for e in edits} for edits in result.added]
    assert added == [
        {("ntp", "server 216.229.0.50"), ("rest-api", None),
         ("profile speed-test speed-tests", "host speedtest.googlefiber.net")},
        {("profile sw-update sw-updates", "host dl.google.com"), ("policy rate sw-updates-peak", None),
         ("rule sw-updates-at-peak", None)},
    ]
    assert all(edit.action is Action.ADDED for edits in result.edits for edit in edits)


def test_inputs_are_not_modified():
    inputs = guide()
    before = [render(config) for config in inputs]
    merge(inputs)
    assert [render(config) for config in inputs] == before


# -- union, conflicts, primary


def test_cluster_wide_entries_are_united_and_server_specific_ones_kept():
    a, b = backups("ntp\n  server 1.1.1.1\nrouting\n  static 0.0.0.0/0 via 10.0.0.1\n",
                   "ntp\n  server 2.2.2.2\nrouting\n  static 0.0.0.0/0 via 10.0.0.2\n")
    assert texts(merge([a, b])) == [
        HEAD.format(0) + "ntp\n  server 1.1.1.1\n  server 2.2.2.2\nrouting\n  static 0.0.0.0/0 via 10.0.0.1\n",
        HEAD.format(1) + "ntp\n  server 2.2.2.2\n  server 1.1.1.1\nrouting\n  static 0.0.0.0/0 via 10.0.0.2\n",
    ]


def test_a_conflict_takes_the_primarys_value_and_is_listed_with_every_inputs_value():
    inputs = backups("policy rate p\n  downlink 100M\n", "policy rate p\n  downlink 50M\n", "policy rate q\n  downlink 1M\n",
                     ids=[1, 0, 2])
    result = merge(inputs)
    assert result.primary == 1
    assert result.conflicts == (Conflict("policy rate p", "downlink", ("downlink 100M", "downlink 50M", None), "downlink 50M"),)
    assert all("policy rate p\n  downlink 50M\n" in text for text in texts(result))
    assert result.changed[0] == (Edit(Action.CHANGED, "policy rate p", "downlink", "downlink 50M", "downlink 100M", "conflict"),)


def test_equal_in_normal_form_is_no_conflict():
    result = merge(backups("policy rate p\n  downlink 100M\n", "policy rate p\n  downlink 100000k\n"))
    assert result.conflicts == () and texts(result) == [render(c) for c in backups("policy rate p\n  downlink 100M\n",
                                                                                     "policy rate p\n  downlink 100000k\n")]


def test_without_the_primary_the_next_by_bqn_id_wins():
    inputs = backups("ntp\n  server 1.1.1.1\n", "timezone UTC\n", "timezone Europe/Madrid\n", ids=[0, 7, 3])
    result = merge(inputs)
    assert result.conflicts[0].chosen == "timezone Europe/Madrid"


def test_primary_is_the_lowest_bqn_id_and_a_missing_id_is_zero():
    assert merge(backups("timezone A\n", "timezone B\n", ids=[4, 2])).primary == 1
    result = merge(backups("timezone A\n", "timezone B\n", ids=[3, None]))
    assert result.primary == 1 and "timezone B" in render(result.outputs[0])


def test_two_inputs_with_the_lowest_id_need_a_primary():
    inputs = backups("timezone A\n", "timezone B\n", "timezone C\n", ids=[0, 0, 1])
    with pytest.raises(ConfError) as caught:
        merge(inputs)
    assert [str(d) for d in caught.value.diagnostics] == [
        f"bqn{k}.conf:2:1: error: bqn-id 0 is the lowest and is shared by bqn0.conf, bqn1.conf; "
        "name the primary (--primary FILE)" for k in (0, 1)]
    assert merge(inputs, primary=1).conflicts[0].chosen == "timezone B"


# -- three-way


def test_three_way_takes_a_removal_or_change_made_on_one_side_only():
    base = parse("ntp\n  server 1.1.1.1\n  server 2.2.2.2\npolicy rate p\n  downlink 10M\n", "base")
    inputs = backups("ntp\n  server 1.1.1.1\n  server 2.2.2.2\npolicy rate p\n  downlink 10M\n",
                     "ntp\n  server 1.1.1.1\npolicy rate p\n  downlink 20M\n")
    result = merge(inputs, base=base)
    assert result.conflicts == ()
    assert all(text.endswith("ntp\n  server 1.1.1.1\npolicy rate p\n  downlink 20M\n") for text in texts(result))
    assert {(e.action, e.reason) for e in result.edits[0]} == {(Action.REMOVED, "three-way"), (Action.CHANGED, "three-way")}
    without_base = merge(inputs)
    assert "server 2.2.2.2" in render(without_base.outputs[1]) and without_base.conflicts


def test_three_way_changes_that_disagree_conflict_and_the_primary_wins():
    base = parse("policy rate p\n  downlink 10M\n", "base")
    inputs = backups("policy rate p\n  downlink 10M\n", "policy rate p\n  downlink 20M\n", "policy rate p\n  downlink 30M\n")
    result = merge(inputs, base=base)
    assert result.conflicts == (Conflict("policy rate p", "downlink", ("downlink 10M", "downlink 20M", "downlink 30M"),
                                         "downlink 10M", "downlink 10M"),)
    result = merge(inputs, primary=2, base=base)
    assert all("downlink 30M" in text for text in texts(result))


def test_three_way_removal_against_a_change_is_a_conflict_the_primary_decides():
    base = parse("policy rate legacy\n  downlink 10M\n", "base")
    inputs = backups("policy rate legacy\n  downlink 10M\n", "", "policy rate legacy\n  downlink 20M\n")
    kept = merge(inputs, base=base)
    assert kept.conflicts[0] == Conflict("policy rate legacy", None, ("policy rate legacy", None, "policy rate legacy"),
                                         "policy rate legacy", "policy rate legacy")
    assert all("policy rate legacy\n  downlink 20M\n" in text for text in texts(kept))
    removed = merge(inputs, primary=1, base=base)
    assert all("legacy" not in text for text in texts(removed))


def test_an_entry_new_since_the_base_is_added_everywhere():
    base = parse("ntp\n  server 1.1.1.1\n", "base")
    result = merge(backups("ntp\n  server 1.1.1.1\n", "ntp\n  server 1.1.1.1\n  server 3.3.3.3\n"), base=base)
    assert "server 3.3.3.3" in texts(result)[0] and result.added[0][0].reason == "union"


# -- references


def test_a_removal_that_would_leave_a_reference_dangling_is_not_made():
    base = parse("profile time weekend\n  range sat,sun 00:00-24:00\npolicy rate p\n  downlink 1M\n", "base")
    inputs = backups(
        "profile time weekend\n  range sat,sun 00:00-24:00\npolicy rate p\n  downlink 1M\n",
        "policy rate p\n  downlink 1M\n",
        "profile time weekend\n  range sat,sun 00:00-24:00\npolicy rate p\n  downlink 1M\n"
        "rule boost\n  time-profile weekend\n  policy p\n")
    result = merge(inputs, base=base)
    assert all(validate(output) == [] for output in result.outputs)
    assert all("profile time weekend" in text for text in texts(result))
    assert result.removed[0] == () and result.removed[2] == ()
    assert Edit(Action.ADDED, "profile time weekend", None, "profile time weekend",
                reason="referenced by rule boost") in result.added[1]


def test_an_added_entry_brings_a_server_specific_section_it_names(tmp_path: Path):
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text("classes:\n  subscriber-group *: server\n")
    rules = rules_with(rules_file)
    inputs = backups("subscriber-group gamers\n  range 10.50.0.0/16\npolicy rate p\n  downlink 1M\n"
                     "rule gamers\n  subscriber-group gamers\n  policy p\n",
                     "policy rate p\n  downlink 1M\n", rules=rules)
    result = merge(inputs)
    assert render(result.outputs[1]) == (HEAD.format(1) + "subscriber-group gamers\n  range 10.50.0.0/16\n"
                                         "policy rate p\n  downlink 1M\n"
                                         "rule gamers\n  subscriber-group gamers\n  policy p\n")
    assert result.added[1][-1].reason == "referenced by rule gamers"
    assert validate(result.outputs[1]) == []


# -- rule order


def rules(*names: str) -> str:
    return "policy rate p\n  downlink 1M\n" + "".join(f"rule {name}\n  policy p\n" for name in names)


def rule_order(config) -> list[str]:
    return [s.words[1] for s in config.sections if s.keyword == "rule"]


def test_a_rule_brought_in_goes_where_it_stands_among_its_neighbours():
    result = merge(backups(rules("a", "c"), rules("a", "b", "c"), rules("x", "a", "c")))
    assert [rule_order(o) for o in result.outputs] == [["x", "a", "b", "c"]] * 3
    assert result.conflicts == ()
    assert texts(result)[0] == HEAD.format(0) + rules("x", "a", "b", "c")


def test_rules_ordered_differently_conflict_and_every_output_takes_the_primarys_order():
    result = merge(backups(rules("a", "b", "c"), rules("b", "a", "c"), rules("a", "c", "b")))
    assert [rule_order(o) for o in result.outputs] == [["a", "b", "c"]] * 3
    assert result.conflicts == (
        Conflict("rule b", "order", ("after rule a", "first", "after rule c"), "after rule a"),
        Conflict("rule c", "order", ("after rule b", "after rule a", "after rule a"), "after rule b"),
    )
    assert result.moved == ((), (Edit(Action.MOVED, "rule b", None, "after rule a", reason="rule order"),),
                            (Edit(Action.MOVED, "rule c", None, "after rule b", reason="rule order"),))


def test_three_way_takes_a_reorder_made_on_one_side_only():
    base = parse(rules("a", "b", "c"), "base")
    result = merge(backups(rules("a", "b", "c"), rules("c", "a", "b")), base=base)
    assert result.conflicts == ()
    assert [rule_order(o) for o in result.outputs] == [["c", "a", "b"]] * 2
    assert result.moved[0][0].reason == "three-way"


def test_a_woven_rule_stays_after_every_rule_that_preceded_it():
    result = merge(backups(rules("b", "a"), rules("a", "b", "z")))
    assert rule_order(result.outputs[1]) == ["b", "a", "z"]


# -- minimal edits


def test_new_lines_take_each_files_style_and_place():
    a = parse("hostname a\r\nbqn-id 0\r\nntp\r\n    server 1.1.1.1\r\ndns\r\n    server 8.8.8.8\r\n"
              "interface en0\r\n    mtu 1500\r\npolicy rate p\r\n    downlink 1M", "a")
    b = parse("hostname b\nbqn-id 1\nntp\n  server 2.2.2.2\ndns\n  server 8.8.8.8\n  domain isp.example\n"
              "policy rate p\n  downlink 1M\npolicy rate q\n  uplink 2M\n", "b")
    assert render(merge([a, b]).outputs[0]) == (
        "hostname a\r\nbqn-id 0\r\nntp\r\n    server 1.1.1.1\r\n    server 2.2.2.2\r\ndns\r\n    server 8.8.8.8\r\n"
        "    domain isp.example\r\ninterface en0\r\n    mtu 1500\r\npolicy rate p\r\n    downlink 1M\r\n"
        "policy rate q\r\n    uplink 2M\r\n")


def test_a_statement_goes_after_its_last_sibling_of_the_same_keyword():
    a, b = backups("dns\n  server 8.8.8.8\n  domain isp.example\n", "dns\n  server 1.1.1.1\n  domain isp.example\n")
    assert texts(merge([a, b]))[0].endswith("dns\n  server 8.8.8.8\n  server 1.1.1.1\n  domain isp.example\n")


def test_a_new_section_carries_its_comments_and_follows_the_section_it_follows_in_its_input():
    a, b = backups("ntp\n  server 1.1.1.1\n\nrouting\n  static 0.0.0.0/0 via 10.0.0.1\n",
                   "ntp\n  server 1.1.1.1\n\n# the API\nrest-api\n  enabled yes\n")
    assert texts(merge([a, b]))[0] == (HEAD.format(0) + "ntp\n  server 1.1.1.1\n\n# the API\nrest-api\n  enabled yes\n"
                                       "\nrouting\n  static 0.0.0.0/0 via 10.0.0.1\n")


def test_merging_the_outputs_again_changes_nothing():
    inputs = [parse((FIXTURES / "merge" / "three-servers" / f"bqn{k}-v1.conf").read_text(), f"bqn{k}") for k in range(3)]
    first = merge(inputs)
    again = merge([parse(render(output), f"again{k}") for k, output in enumerate(first.outputs)])
    assert texts(again) == texts(first) and again.conflicts == () and again.edits == ((), (), ())


# -- classes


def test_unclassified_content_is_kept_and_listed():
    a, b = backups("snmp\n  community public\nntp\n  server 1.1.1.1\n  source-interface en0\n", "ntp\n  server 2.2.2.2\n")
    result = merge([a, b])
    assert [(u.input, u.section, u.statement, u.line) for u in result.unclassified] == [
        (0, "snmp", None, 3), (0, "ntp", "source-interface en0", 7)]
    assert "snmp" not in texts(result)[1] and "source-interface" not in texts(result)[1]
    assert texts(result)[0] == HEAD.format(0) + "snmp\n  community public\nntp\n  server 1.1.1.1\n  server 2.2.2.2\n  source-interface en0\n"


def test_a_statement_level_rule_overrides_its_sections_class(tmp_path: Path):
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text('classes:\n  "rest-api / user *": server\n  "management / gateway": cluster\n')
    rules = rules_with(rules_file)
    a, b = backups("management\n  interface en0\n  gateway 10.0.0.1\nrest-api\n  enabled yes\n  user a\n    role admin\n",
                   "management\n  interface en1\nrest-api\n  enabled yes\n  user b\n    role read-only\n", rules=rules)
    result = merge([a, b])
    assert texts(result)[1] == HEAD.format(1) + ("management\n  interface en1\n  gateway 10.0.0.1\n"
                                                 "rest-api\n  enabled yes\n  user b\n    role read-only\n")
    assert texts(result)[0] == render(a)


def test_sections_placed_after_rules_that_arrive_are_never_lost():
    """Found by the properties: a policy planned after a new rule, and that rule after a rule planned after the policy."""
    folder = FIXTURES / "merge" / "new-rule-anchor"
    inputs = [parse((folder / f"bqn{k}.conf").read_text(), f"bqn{k}.conf") for k in range(3)]
    result = merge(inputs)
    wanted = {"policy rate plan-100M", "policy rate plan-50M", "rule sw-updates-at-peak", "rule night-owls",
              "subscriber-group home", "subscriber-group business", "profile sw-update sw-updates"}
    for output in result.outputs:
        assert wanted <= {str(section.identity) for section in output.root.entries}
        assert validate(output) == []
    assert rule_order(result.outputs[2]) == rule_order(result.outputs[0])


def test_a_file_of_comments_only_keeps_them_on_top_of_what_it_gains():
    inputs = [parse("# new server, not configured yet\n# (no final newline)", "new.conf"), *guide()[1:]]
    output = render(merge(inputs).outputs[0])
    assert output.startswith("# new server, not configured yet\n# (no final newline)\n")
    assert validate(parse(output)) == [] and "ntp" in output


# -- issue 12


def test_a_tie_between_non_primary_inputs_does_not_depend_on_their_order():
    """Issue 12, item 4: two secondaries with one bqn-id disagree; the primary lacks the entry."""
    from itertools import permutations
    bodies = {"x": "policy rate q\n  downlink 20M\nrule b\n  policy q\n",
              "y": "policy rate q\n  downlink 10M\nrule a\n  policy q\n",
              "z": "policy rate q\n  downlink 30M\nrule c\n  policy q\n"}
    primary = parse(HEAD.format(0) + "ntp\n  server 1.1.1.1\n", "p.conf")
    seen = set()
    for names in permutations(bodies):
        inputs = [primary, *(parse(HEAD.format(1) + bodies[name], f"{name}.conf") for name in names)]
        result = merge(inputs)
        outputs = {name: render(output) for name, output in zip(("p", *names), result.outputs)}
        conflicts = tuple((c.section, c.statement, c.chosen, frozenset(zip(("p", *names), c.values)))
                          for c in result.conflicts)
        edits = {name: edits for name, edits in zip(("p", *names), result.edits)}
        seen.add((tuple(sorted(outputs.items())), conflicts, tuple(sorted(edits.items()))))
    assert len(seen) == 1
    (outputs, conflicts, _), = seen
    assert "downlink 10M" in dict(outputs)["p"]
    assert conflicts[0][2] == "downlink 10M"


def test_a_carried_reference_comes_from_the_input_the_referencing_entry_came_from(tmp_path: Path):
    """Issue 12, item 5: with subscriber groups server-specific and a statement-level rule, the added rule's
    group is copied from the input that had the rule, not from the first input by bqn-id that has a group of that name."""
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text('classes:\n  "subscriber-group *": server\n  "rest-api / user *": server\n')
    rules = rules_with(rules_file)
    policy = "policy rate p\n  downlink 1M\n"
    inputs = backups(policy, policy + "subscriber-group g\n  range 10.1.0.0/16\n",
                     policy + "subscriber-group g\n  range 10.2.0.0/16\nrule r\n  subscriber-group g\n  policy p\n",
                     rules=rules)
    result = merge(inputs)
    output = render(result.outputs[0])
    assert "range 10.2.0.0/16" in output and "range 10.1.0.0/16" not in output
    assert Edit(Action.ADDED, "subscriber-group g", None, "subscriber-group g", reason="referenced by rule r") in result.added[0]
    assert render(result.outputs[1]).count("subscriber-group g\n") == 2  # its own group, and the rule's reference
    assert "range 10.1.0.0/16" in render(result.outputs[1]) and "range 10.2.0.0/16" not in render(result.outputs[1])


def test_a_file_with_nothing_of_a_backup_is_never_chosen_as_the_primary():
    """Issue 12, item 8, through the library: an empty file has no bqn-id, which would count as 0."""
    from confmerge import ConfError, merge, parse
    real = parse((FIXTURES / "bqn1-v1.conf").read_text(), "bqn1-v1.conf")
    for text in ("", "# notes\nbuy milk\n"):
        assert merge([parse(text, "empty.conf"), real]).primary == 1
        with pytest.raises(ConfError) as raised:
            merge([parse(text, "empty.conf"), parse("", "other.conf")])
        assert [d.file for d in raised.value.diagnostics] == ["empty.conf", "other.conf"]
        assert "not a BQN backup" in raised.value.diagnostics[0].message
