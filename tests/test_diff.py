"""The diff engine: equal in normal form is no difference, every real change is named once.

Each equivalence of the issue has a fixture under ``fixtures/diff/equal/``: the
base backup written with that one kind of noise. Both ways are tested: the
variant against the base is no difference (either direction), and the same
variant with one real change hidden in its noise names exactly that change.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from confmerge.diff import (
    Change, FieldChange, Op, Scope, diff, entry_text, longest_increasing, rule_moves, statement_text,
)
from confmerge.parser import parse
from confmerge.reference import reference_changes
from confmerge.rules import default_rules, load_rules
from confmerge.tree import Config, Identity, MergeClass

from .conftest import FIXTURES
from .test_merge_strategies import contents, styled

DIFF = FIXTURES / "diff"
CLUSTER, SERVER, UNCLASSIFIED = MergeClass.CLUSTER, MergeClass.SERVER, MergeClass.UNCLASSIFIED
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def load(path: Path, text: str | None = None) -> Config:
    if text is None:
        text = path.read_bytes().decode("utf-8")
    return parse(text, path.name)


def summary(change: Change) -> tuple:
    """A change as the operator reads it: op, class, where, and old and new in normal form."""
    show = entry_text if change.op in (Op.ADDED, Op.REMOVED) else statement_text
    return (
        change.op.value, change.merge_class.value, str(change.section), change.statement,
        show(change.old) if change.old is not None else None,
        show(change.new) if change.new is not None else None,
    )


def summaries(old: Config, new: Config, scope: Scope = Scope.ALL) -> list[tuple]:
    return [summary(change) for change in diff(old, new, scope).changes]


def text_diff(old: str, new: str, scope: Scope = Scope.ALL, rules=None) -> list[tuple]:
    return [summary(c) for c in diff(parse(old, "old.conf", rules), parse(new, "new.conf", rules), scope).changes]


BASE = DIFF / "base.conf"

SPEED_TESTS_RULE = "rule speed-tests\n  policy plan-1G\n  time-profile always\n  speed-test-profile speed-tests\n"

# variant: substitutions (a text of the variant, once, and what replaces it) that make one real change, then the
# change(s) the diff must name
HIDDEN = {
    "indent": (("        role   read-only  ", "        role   admin  "), [
        ("changed", "cluster", "rest-api", "user viewer / role", "role read-only", "role admin")]),
    "order": ((SPEED_TESTS_RULE, ""), ("routing\n", SPEED_TESTS_RULE + "routing\n"), [
        ("moved", "cluster", "rule speed-tests", None, "rule speed-tests", "rule speed-tests")]),
    "comments": (("  server 8.8.8.8\n", "  # server 8.8.8.8\n"), [
        ("removed", "cluster", "dns", "server 8.8.8.8", "server 8.8.8.8", None)]),
    "header": (("timezone Europe/Madrid", "timezone Europe/Lisbon"), [
        ("changed", "cluster", "timezone", None, "timezone Europe/Madrid", "timezone Europe/Lisbon")]),
    "crlf": (("  mtu 1500\r\n", "  mtu 1492\r\n"), [
        ("changed", "server", "interface en0o1", "mtu", "mtu 1500", "mtu 1492")]),
    "rates": (("downlink 100000k", "downlink 10000k"), [
        ("changed", "cluster", "policy rate plan-100M", "downlink", "downlink 100M", "downlink 10M")]),
    "ipv6": (("via 2001:DB8:0::1", "via 2001:DB8:0::10"), [
        ("changed", "server", "routing", "static 2001:db8:100::/48",
         "static 2001:db8:100::/48 via 2001:db8::1 metric 20", "static 2001:db8:100::/48 via 2001:db8::10 metric 20")]),
    "days": (("range mon-sun 00:00-24:00", "range mon-sat 00:00-24:00"), [
        ("removed", "cluster", "profile time always", "range all 00:00-24:00", "range all 00:00-24:00", None),
        ("added", "cluster", "profile time always", "range mon,tue,wed,thu,fri,sat 00:00-24:00", None,
         "range mon,tue,wed,thu,fri,sat 00:00-24:00")]),
    "quotes": (('description "uplink"', 'description "up link"'), [
        ("changed", "server", "interface en0o2", "description", "description uplink", 'description "up link"')]),
    "bools": (("congestion-management on", "congestion-management off"), [
        ("changed", "cluster", "policy rate plan-100M", "congestion-management",
         "congestion-management yes", "congestion-management no")]),
}


def test_every_equivalence_has_a_fixture():
    assert sorted(path.stem for path in (DIFF / "equal").glob("*.conf")) == sorted(HIDDEN)


@pytest.mark.parametrize("variant", sorted(HIDDEN))
def test_equal_in_normal_form_is_no_difference(variant):
    base, other = load(BASE), load(DIFF / "equal" / f"{variant}.conf")
    assert not diff(base, other)
    assert not diff(other, base)


def with_hidden_change(variant: str) -> str:
    """The variant's text with its one real change (the substitutions of ``HIDDEN``)."""
    text = (DIFF / "equal" / f"{variant}.conf").read_bytes().decode("utf-8")
    for before, after in HIDDEN[variant][:-1]:
        assert text.count(before) == 1, "a substitution must name one place"
        text = text.replace(before, after)
    return text


@pytest.mark.parametrize("variant", sorted(HIDDEN))
def test_one_real_change_hidden_in_the_noise_is_named(variant):
    path = DIFF / "equal" / f"{variant}.conf"
    expected = HIDDEN[variant][-1]
    changed = load(path, with_hidden_change(variant))
    assert summaries(load(BASE), changed) == expected
    assert summaries(load(path), changed) == expected


def test_the_variants_really_differ_in_text():
    base = BASE.read_bytes()
    for path in (DIFF / "equal").glob("*.conf"):
        assert path.read_bytes() != base


# ---------------------------------------------------------------------------
# Operations


OLD = """\
ntp
  server 129.6.15.28 prefer
  server 162.159.200.1
routing
  static 0.0.0.0/0 via 192.168.0.1
  static 10.20.0.0/16 via 192.168.0.254 metric 10
policy rate p
  downlink 100M
"""


def test_added_removed_and_changed_statements():
    new = OLD.replace("  server 162.159.200.1\n", "  server 216.229.0.50\n").replace(
        "metric 10", "metric 20").replace("server 129.6.15.28 prefer", "server 129.6.15.28")
    assert text_diff(OLD, new) == [
        ("changed", "cluster", "ntp", "server 129.6.15.28", "server 129.6.15.28 prefer", "server 129.6.15.28"),
        ("removed", "cluster", "ntp", "server 162.159.200.1", "server 162.159.200.1", None),
        ("added", "cluster", "ntp", "server 216.229.0.50", None, "server 216.229.0.50"),
        ("changed", "server", "routing", "static 10.20.0.0/16",
         "static 10.20.0.0/16 via 192.168.0.254 metric 10", "static 10.20.0.0/16 via 192.168.0.254 metric 20"),
    ]


def test_a_changed_statement_names_its_fields_and_lines():
    new = OLD.replace("static 10.20.0.0/16 via 192.168.0.254 metric 10", "static 10.20.0.0/16 via 192.168.0.253")
    (change,) = diff(parse(OLD), parse("\n" + new)).changes
    assert change.fields == (FieldChange("via", "192.168.0.254", "192.168.0.253"), FieldChange("metric", 10, None))
    assert (change.old_line, change.new_line) == (6, 7)
    assert change.section == Identity(("routing",)) and change.path == (Identity(("static", "10.20.0.0/16")),)


def test_added_and_removed_sections_carry_their_block():
    new = OLD + "rest-api\n  enabled yes\n  user api-admin\n    role admin\n"
    (added,) = diff(parse(OLD), parse(new)).changes
    assert summary(added) == ("added", "cluster", "rest-api", None, None,
                              "rest-api\n  enabled yes\n  user api-admin\n    role admin")
    assert (added.old_line, added.new_line) == (None, 9)
    (removed,) = diff(parse(new), parse(OLD)).changes
    assert removed.op is Op.REMOVED and removed.old_line == 9 and removed.new is None


def test_a_single_section_with_a_value_is_a_changed_value():
    assert text_diff("hostname bqn0\nbqn-id 0\n", "hostname bqn1\nbqn-id 0\n") == [
        ("changed", "server", "hostname", None, "hostname bqn0", "hostname bqn1")]


def test_nested_blocks_compare_by_identity_and_name_a_path():
    old = "rest-api\n  user api-admin\n    role admin\n    password-hash x\n  user viewer\n    role read-only\n"
    new = "rest-api\n  user viewer\n    role read-only\n  user api-admin\n    password-hash y\n    role read-only\n"
    assert text_diff(old, new) == [
        ("changed", "cluster", "rest-api", "user api-admin / password-hash", "password-hash x", "password-hash y"),
        ("changed", "cluster", "rest-api", "user api-admin / role", "role admin", "role read-only"),
    ]


def test_repeated_lines_count_once():
    old = "ntp\n  server 162.159.200.1\n"
    new = "ntp\n  server 162.159.200.1\n  server 162.159.200.1\n"
    assert text_diff(old, new) == [] and text_diff(new, old) == []


# ---------------------------------------------------------------------------
# Rule order


def rules(*names: str, extra: str = "") -> str:
    return "policy rate p\n  downlink 1M\n" + "".join(f"rule {name}\n  policy p\n" for name in names) + extra


def test_a_rule_that_moved_is_a_move_with_its_positions():
    (change,) = diff(parse(rules("a", "b", "c", "d")), parse(rules("d", "a", "b", "c"))).changes
    assert summary(change) == ("moved", "cluster", "rule d", None, "rule d", "rule d")
    assert (change.old_position, change.new_position) == (4, 1)
    assert (change.old_line, change.new_line) == (9, 3)


def test_only_the_fewest_rules_are_moved():
    moves = rule_moves(parse(rules("a", "b", "c", "d", "e")), parse(rules("b", "a", "c", "e", "d")))
    assert len(moves) == 2


def test_added_and_removed_rules_are_no_moves():
    changes = summaries(parse(rules("a", "b", "c")), parse(rules("x", "a", "c", "y")))
    assert [(op, section) for op, _, section, *_ in changes] == [("added", "rule x"), ("removed", "rule b"), ("added", "rule y")]


def test_the_order_of_other_sections_is_no_difference():
    old = rules("a", "b", extra="ntp\n  server 1.1.1.1\ndns\n  server 8.8.8.8\n")
    new = "dns\n  server 8.8.8.8\nrule a\n  policy p\nntp\n  server 1.1.1.1\npolicy rate p\n  downlink 1M\nrule b\n  policy p\n"
    assert text_diff(old, new) == []


def test_a_moved_rule_with_a_changed_block_is_both():
    new = rules("b", "a").replace("rule a\n  policy p\n", "rule a\n  policy p\n  enabled no\n")
    assert [c[0] for c in text_diff(rules("a", "b"), new)] == ["moved", "added"]


@given(st.lists(st.integers(0, 20), max_size=30))
def test_longest_increasing_is_longest_and_increasing(values):
    keep = sorted(longest_increasing(values))
    assert all(values[i] < values[j] for i, j in zip(keep, keep[1:]))
    best = [1] * len(values)
    for j in range(len(values)):
        for i in range(j):
            if values[i] < values[j]:
                best[j] = max(best[j], best[i] + 1)
    assert len(keep) == max(best, default=0)


# ---------------------------------------------------------------------------
# Classes and scope


GUIDE_CLUSTER = [
    ("added", "cluster", "ntp", "server 216.229.0.50", None, "server 216.229.0.50"),
    ("added", "cluster", "rest-api", None, None,
     "rest-api\n  enabled yes\n  port 3443\n  user api-admin\n"
     "    password-hash $6$rounds=5000$bqn1salt$Qm9vdHN0cmFwIGhhc2ggZm9yIHRlc3Rz#x\n    role admin"),
    ("added", "cluster", "profile speed-test speed-tests", "host speedtest.googlefiber.net", None,
     "host speedtest.googlefiber.net"),
    ("removed", "cluster", "profile sw-update sw-updates", "host dl.google.com", "host dl.google.com", None),
    ("removed", "cluster", "policy rate sw-updates-peak", None, "policy rate sw-updates-peak\n  downlink 5M\n  uplink 1M",
     None),
    ("removed", "cluster", "rule sw-updates-at-peak", None,
     "rule sw-updates-at-peak\n  time-profile peak-time\n  sw-update-profile sw-updates\n  policy sw-updates-peak", None),
]
GUIDE_SERVER = [
    ("changed", "server", "hostname", None, "hostname bqn0", "hostname bqn1"),
    ("changed", "server", "bqn-id", None, "bqn-id 0", "bqn-id 1"),
    ("changed", "server", "management", "address", "address 192.168.0.121/24", "address 192.168.0.122/24"),
    ("removed", "server", "interface en0o1", None, 'interface en0o1\n  description "access side"\n  mtu 1500\n  speed 10G', None),
    ("removed", "server", "interface en0o2", None, 'interface en0o2\n  description "internet side"\n  mtu 1500\n  speed 10G', None),
    ("added", "server", "interface en0o3", None, None, 'interface en0o3\n  description "access side"\n  mtu 9000\n  speed 25G'),
    ("added", "server", "interface en0o4", None, None, 'interface en0o4\n  description "internet side"\n  mtu 9000\n  speed 25G'),
    ("changed", "server", "wire wire0", "access", "access en0o1", "access en0o3"),
    ("changed", "server", "wire wire0", "internet", "internet en0o2", "internet en0o4"),
]


def guide() -> tuple[Config, Config]:
    return load(FIXTURES / "bqn0-v1.conf"), load(FIXTURES / "bqn1-v1.conf")


def test_the_guide_scenario_shows_exactly_the_guides_differences():
    """NTP server, REST API, speed-test host, sw-update host, policy and rule: cluster-wide;
    interfaces (and so the wire), names and management address: server-specific; routing: equal."""
    old, new = guide()
    assert summaries(old, new) == GUIDE_CLUSTER + GUIDE_SERVER


@pytest.mark.parametrize(("scope", "expected", "outside"), [
    (Scope.ALL, GUIDE_CLUSTER + GUIDE_SERVER, 0),
    (Scope.CLUSTER, GUIDE_CLUSTER, len(GUIDE_SERVER)),
    (Scope.SERVER, GUIDE_SERVER, len(GUIDE_CLUSTER)),
])
def test_scope_keeps_its_class(scope, expected, outside):
    result = diff(*guide(), scope)
    assert [summary(c) for c in result.changes] == expected
    assert result.outside == outside
    assert result.counts == {
        CLUSTER: sum(c[1] == "cluster" for c in expected), SERVER: sum(c[1] == "server" for c in expected),
        UNCLASSIFIED: 0,
    }


def test_scope_all_includes_unclassified_and_the_others_do_not():
    old, new = "snmp\n  community public\n", "snmp\n  community private\n"
    assert len(text_diff(old, new)) == 2
    assert text_diff(old, new, Scope.CLUSTER) == [] and text_diff(old, new, Scope.SERVER) == []


def test_generic_content_compares_by_words_and_is_unclassified():
    old = 'snmp\n  community public\n    access read-only\n  location "rack 4"\nntp\n  server 1.1.1.1\n'
    new = 'snmp\n  community "public"\n    access read-write\n  location "rack 4"\nntp\n  server 1.1.1.1\n  source-interface en0o0\n'
    assert text_diff(old, new) == [
        ("removed", "unclassified", "snmp", "community public / access read-only", "access read-only", None),
        ("added", "unclassified", "snmp", "community public / access read-write", None, "access read-write"),
        ("added", "unclassified", "ntp", "source-interface en0o0", None, "source-interface en0o0"),
    ]


def test_a_statement_level_rule_gives_a_statement_its_class():
    custom = default_rules().then(load_rules("classes:\n  rest-api / user *: server\n", "rules.yaml"))
    old = "rest-api\n  port 3443\n  user a\n    role admin\n"
    new = "rest-api\n  port 8443\n  user a\n    role read-only\n"
    assert [(c[1], c[3]) for c in text_diff(old, new, rules=custom)] == [("cluster", "port"), ("server", "user a / role")]
    assert [c[3] for c in text_diff(old, new, Scope.SERVER, rules=custom)] == ["user a / role"]


def test_differences_are_grouped_cluster_wide_first_in_file_order():
    old, new = guide()
    classes = [change.merge_class for change in diff(old, new).changes]
    assert classes == sorted(classes, key=[CLUSTER, SERVER, UNCLASSIFIED].index)


# ---------------------------------------------------------------------------
# Normal form as text


def test_statement_text_is_the_normal_form():
    config = parse('ntp\n  server 2001:0DB8::0001 prefer\nprofile time t\n  range sun,sat 12:00-24:00\n'
                   'policy rate p\n  downlink 100000k\n  acceleration on\ninterface e\n  description "a b"\n'
                   'cluster\n  peer 1 address 10.0.0.2\n  peer 2 address 10.0.0.3 ssh-port 2022\n')
    assert [statement_text(node) for node in config.root.walk()] == [
        "ntp", "server 2001:db8::1 prefer", "profile time t", "range sat,sun 12:00-24:00",
        "policy rate p", "downlink 100M", "acceleration yes", "interface e", 'description "a b"',
        "cluster", "peer 1 address 10.0.0.2", "peer 2 address 10.0.0.3 ssh-port 2022",
    ]


@pytest.mark.parametrize("path", [FIXTURES / "all-statements.conf", BASE, FIXTURES / "lossless" / "unknown-sections.conf"])
def test_the_normal_form_text_parses_back_to_the_same_configuration(path):
    config = load(path)
    text = "\n".join(entry_text(section) for section in config.root.entries) + "\n"
    assert not diff(config, parse(text, "normal.conf"))


# ---------------------------------------------------------------------------
# Properties, with deepdiff as the reference


@SETTINGS
@given(st.data())
def test_one_content_in_two_styles_is_no_difference(data):
    blocks = data.draw(contents(0))
    first, second = data.draw(styled(blocks)), data.draw(styled(blocks))
    assert not diff(parse(first, "a"), parse(second, "b"))


@SETTINGS
@given(st.data())
def test_the_changes_are_the_ones_deepdiff_finds(data):
    old = parse(data.draw(styled(data.draw(contents(0)))), "a")
    new = parse(data.draw(styled(data.draw(contents(data.draw(st.sampled_from([0, 1])))))), "b")
    ours = {(c.op.value, (tuple(c.section), *map(tuple, c.path))) for c in diff(old, new).changes if c.op is not Op.MOVED}
    assert ours == reference_changes(old, new)


@SETTINGS
@given(st.data())
def test_moving_the_moved_rules_back_gives_the_old_order(data):
    old = parse(data.draw(styled(data.draw(contents(0)))), "a")
    new = parse(data.draw(styled(data.draw(contents(0)))), "b")
    moves = rule_moves(old, new)
    order = {config: [s.identity for s in config.root.entries if s.keyword == "rule"] for config in (old, new)}
    common = set(order[old]) & set(order[new])
    stay = [[identity for identity in order[c] if identity in common and identity not in moves] for c in (old, new)]
    assert stay[0] == stay[1]
    assert len(common) - len(moves) == len(longest_increasing(
        [[i for i in order[new] if i in common].index(identity) for identity in order[old] if identity in common]))
