"""``cluster_part`` and ``adopt``: what the primary distributes and what a secondary does with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from confmerge.check import validate
from confmerge.diagnostics import ConfError
from confmerge.merge import adopt, cluster_part
from confmerge.parser import parse
from confmerge.render import render
from confmerge.rules import rules_with
from confmerge.tree import MergeClass

from .conftest import FIXTURES
from .test_merge_strategies import backup, cluster_form, own_sections


def load(name: str, rules=None):
    path = FIXTURES / name
    return parse(path.read_bytes().decode(), str(path), rules)


def section_texts(config, keep):
    """Each section's rendered block, for the sections ``keep`` selects."""
    out = []
    for section in config.sections:
        if keep(section):
            lines = [section.text] + [node.text for node in section.walk()]
            out.append("\n".join(lines))
    return out


def server_side(section) -> bool:
    return section.merge_class is not MergeClass.CLUSTER


def test_cluster_part_is_the_cluster_wide_sections_in_file_order_without_header():
    text = cluster_part(load("bqn0-v1.conf"))
    assert not text.startswith("#") and "bqn-version" not in text
    part = parse(text, "cluster")
    assert [str(s.identity) for s in part.sections] == [
        "timezone", "ntp", "dns", "profile time peak-time", "profile speed-test speed-tests",
        "profile sw-update sw-updates", "subscriber-group business", "policy rate plan-100M",
        "policy rate sw-updates-peak", "rule sw-updates-at-peak", "rule business",
    ]
    assert all(s.merge_class is MergeClass.CLUSTER for s in part.sections)
    assert "# throttle software updates at peak time\nrule sw-updates-at-peak\n" in text
    assert validate(part) == []


def test_cluster_part_is_deterministic_and_ends_with_a_newline():
    source = (FIXTURES / "lossless" / "no-final-newline.conf").read_text()
    first, second = cluster_part(parse(source)), cluster_part(parse(source))
    assert first == second
    assert first.endswith("\n")


def test_cluster_part_leaves_out_statements_a_rule_makes_server_specific(tmp_path: Path):
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text('classes:\n  "rest-api / user *": server\n')
    text = cluster_part(load("bqn1-v1.conf", rules_with(rules_file)))
    assert "rest-api\n  enabled yes\n  port 3443\n" in text
    assert "api-admin" not in text and "password-hash" not in text


def test_adopting_the_primarys_cluster_part_gives_the_guides_result_with_the_secondarys_own_sections():
    primary, secondary = load("bqn0-v1.conf"), load("bqn1-v1.conf")
    adopted = adopt(secondary, parse(cluster_part(primary), "cluster"))
    assert validate(adopted) == []
    assert section_texts(adopted, server_side) == section_texts(secondary, server_side)
    assert cluster_form(adopted) == cluster_form(primary)
    text = render(adopted)
    assert "rest-api" not in text and "216.229.0.50" not in text and "googlefiber" not in text
    assert "  host dl.google.com\n" in text
    assert text.index("rule sw-updates-at-peak") < text.index("rule business")
    assert text.startswith("# bqn-version: R5.0.3\n# saved: 2026-03-26 19:35:17 UTC\n# hostname: bqn1\n")


@pytest.mark.parametrize("name", ["bqn0-v1.conf", "bqn1-v1.conf", "all-statements.conf", "lossless/crlf.conf",
                                  "lossless/four-space-indent.conf", "lossless/unknown-sections.conf",
                                  "lossless/no-final-newline.conf", "lossless/bom.conf"])
def test_adopting_its_own_cluster_part_changes_nothing(name):
    server = load(name)
    adopted = adopt(server, parse(cluster_part(server), "cluster"))
    assert render(adopted) == render(server) == (FIXTURES / name).read_bytes().decode()
    assert adopted is not server and adopted.root is not server.root


def test_an_entry_equal_in_normal_form_stays_byte_identical():
    server = parse("hostname a\npolicy rate p\n    downlink 100000k\n    uplink 20M\n", "a")
    cluster = parse("policy rate p\n  downlink 100M\n  uplink 20000k\n", "cluster")
    assert render(adopt(server, cluster)) == render(server)


def test_changed_and_added_lines_take_the_servers_style():
    server = parse("hostname a\r\nntp\r\n    server 1.1.1.1\r\npolicy rate p\r\n    downlink 10M\r\n", "a")
    cluster = parse("ntp\n  server 1.1.1.1\n  server 2.2.2.2\npolicy rate p\n  downlink 20M\n"
                    "policy rate q\n  downlink 5M\n", "cluster")
    text = render(adopt(server, cluster))
    assert text == ("hostname a\r\nntp\r\n    server 1.1.1.1\r\n    server 2.2.2.2\r\npolicy rate p\r\n"
                    "    downlink 20M\r\npolicy rate q\r\n    downlink 5M\r\n")


def test_the_input_tree_is_not_modified():
    server, primary = load("bqn1-v1.conf"), load("bqn0-v1.conf")
    before = render(server)
    adopt(server, parse(cluster_part(primary)))
    assert render(server) == before


def test_rules_take_the_clusters_order_moving_as_few_as_possible():
    server = parse("hostname a\npolicy rate p\n  downlink 1M\n"
                   "rule a\n  policy p\nrule b\n  policy p\nrule c\n  policy p\nrule d\n  policy p\n", "a")
    cluster = parse("policy rate p\n  downlink 1M\n"
                    "rule a\n  policy p\nrule c\n  policy p\nrule d\n  policy p\nrule b\n  policy p\n", "cluster")
    text = render(adopt(server, cluster))
    assert text == ("hostname a\npolicy rate p\n  downlink 1M\n"
                    "rule a\n  policy p\nrule c\n  policy p\nrule d\n  policy p\nrule b\n  policy p\n")


def test_server_specific_and_unclassified_content_is_kept_and_cluster_entries_the_cluster_lacks_go():
    server = load("lossless/unknown-sections.conf")
    cluster = parse("ntp\n  server 9.9.9.9\n", "cluster")
    text = render(adopt(server, cluster))
    assert text == (
        "# A later BQN release adds statements this release does not know.\nhostname edge\n"
        "snmp\n  community public\n    access read-only\n  location \"rack 4\"\n"
        "ntp\n  server 162.159.200.1 iburst\n  server 9.9.9.9\n  source-interface en0o0\nlicense key ABC-123\n"
    )


def test_statement_level_rule_keeps_the_servers_own_users(tmp_path: Path):
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text('classes:\n  "rest-api / user *": server\n')
    rules = rules_with(rules_file)
    server = parse("hostname a\nrest-api\n  enabled no\n  user local\n    role admin\n", "a", rules)
    cluster = parse("rest-api\n  enabled yes\n  port 3443\n  user other\n    role read-only\n", "cluster", rules)
    assert render(adopt(server, cluster)) == (
        "hostname a\nrest-api\n  enabled yes\n  user local\n    role admin\n  port 3443\n")


def test_a_result_that_would_not_validate_is_refused(tmp_path: Path):
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text("classes:\n  subscriber-group *: server\n")
    rules = rules_with(rules_file)
    server = parse("hostname a\npolicy rate p\n  downlink 1M\n", "a", rules)
    cluster = parse("policy rate p\n  downlink 1M\nrule r\n  subscriber-group g\n  policy p\n", "cluster", rules)
    with pytest.raises(ConfError) as caught:
        adopt(server, cluster)
    assert "names a missing 'subscriber-group' section" in str(caught.value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(backup(1), backup(0))
def test_adopt_takes_the_clusters_content_and_keeps_the_servers_own(server_text, primary_text):
    server, primary = parse(server_text, "server"), parse(primary_text, "primary")
    assert render(adopt(server, parse(cluster_part(server), "own"))) == server_text
    adopted = adopt(server, parse(cluster_part(primary), "cluster"))
    assert validate(adopted) == []
    assert own_sections(adopted) == own_sections(server)
    assert cluster_form(adopted) == cluster_form(primary)
    text = render(adopted)
    assert render(parse(text, "again")) == text
    assert render(adopt(parse(text, "again"), parse(cluster_part(primary), "cluster"))) == text


# ---------------------------------------------------------------------------
# cluster_digest: what clusterd compares to know two servers are in sync

from confmerge.diff import Scope, diff  # noqa: E402
from confmerge.merge import cluster_digest  # noqa: E402

from .test_diff import BASE, DIFF, HIDDEN, with_hidden_change  # noqa: E402


@pytest.mark.parametrize("variant", sorted(HIDDEN))
def test_the_digest_ignores_noise_and_sees_the_hidden_change(variant):
    path = DIFF / "equal" / f"{variant}.conf"
    base, other = load(BASE), load(path)
    changed = parse(with_hidden_change(variant), str(path))
    assert cluster_digest(base) == cluster_digest(other)
    hidden_is_cluster_wide = bool(diff(other, changed, Scope.CLUSTER))
    assert (cluster_digest(changed) != cluster_digest(other)) == hidden_is_cluster_wide


def test_the_digest_is_equal_exactly_when_the_cluster_wide_diff_is_empty():
    before = [load("bqn0-v1.conf"), load("bqn1-v1.conf")]
    after = [load("expected/bqn0-v2.conf"), load("expected/bqn1-v2.conf")]
    assert cluster_digest(before[0]) != cluster_digest(before[1])
    assert diff(before[0], before[1], Scope.CLUSTER)
    assert cluster_digest(after[0]) == cluster_digest(after[1])
    assert not diff(after[0], after[1], Scope.CLUSTER)


def test_the_digest_counts_rule_order():
    text = (FIXTURES / "bqn0-v1.conf").read_text()
    peak = "rule sw-updates-at-peak\n  time-profile peak-time\n  sw-update-profile sw-updates\n  policy sw-updates-peak\n"
    business = "rule business\n  subscriber-group business\n  policy plan-100M\n"
    assert peak + business in text
    swapped = parse(text.replace(peak + business, business + peak), "swapped.conf")
    assert cluster_digest(swapped) != cluster_digest(parse(text, "bqn0-v1.conf"))


# ---------------------------------------------------------------------------
# cluster_tree: a generation read again only where it differs from the server's cluster part

import sys  # noqa: E402

from hypothesis import strategies as st  # noqa: E402

from confmerge.cluster import cluster_tree  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
from generate import backup as generated  # noqa: E402


def adopted(server, cluster):
    try:
        return render(adopt(server, cluster))
    except ConfError as error:
        return f"refused: {error.diagnostics[0].message}"


def spliced(text: str, other: str, edits: list[tuple[int, int, int]]) -> str:
    """``text`` with lines deleted, changed or taken from ``other``, as a primary's edits (and worse) make them."""
    lines, pool = text.splitlines(keepends=True), other.splitlines(keepends=True) or ["\n"]
    for kind, at, pick in edits:
        at %= len(lines) + 1
        if kind == 0 and at < len(lines):
            del lines[at]
        elif kind == 1:
            lines.insert(at, pool[pick % len(pool)])
        elif kind == 2 and at < len(lines):
            lines[at] = lines[at].replace("1", "7", 1)
        elif kind == 3:
            lines.insert(at, "# a comment\n" if pick % 2 else "\n")
    return "".join(lines)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(backup(1), backup(0), st.lists(st.tuples(st.integers(0, 3), st.integers(0, 400), st.integers(0, 400)),
                                      min_size=1, max_size=4))
def test_a_generation_read_again_where_it_changed_is_adopted_as_the_whole_parse_is(server_text, primary_text, edits):
    server = parse(server_text, "server")
    text = spliced(cluster_part(server), cluster_part(parse(primary_text, "primary")), edits)
    quick = cluster_tree(server, text, "generation")
    try:
        whole = parse(text, "generation")
    except ConfError:
        assert quick is None
        return
    if quick is not None:
        assert cluster_part(quick) == cluster_part(whole)
        assert cluster_digest(quick) == cluster_digest(whole)
        assert adopted(server, quick) == adopted(server, whole)


def test_one_changed_value_of_a_large_backup_reads_two_sections_again():
    text = generated(2000, seed=3).replace("bqn-id 0", "bqn-id 4")
    server = parse(text, "server")
    primary = text.replace("  uplink 1M\n", "  uplink 2M\n", 1)
    generation = cluster_part(parse(primary, "primary"))
    quick = cluster_tree(server, generation, "generation")
    assert quick is not None
    read_again = [s for s in quick.sections if all(s is not t for t in server.sections)]
    assert len(read_again) == 2, "the first section (whose text lost the header) and the changed one"
    assert "  uplink 2M" in [node.text for s in read_again for node in s.walk()]
    assert render(adopt(server, quick)) == render(adopt(server, parse(generation, "generation"))) == \
        primary.replace("bqn-id 0", "bqn-id 4")
    changed = next(s for s in read_again if s is not quick.sections[0])
    assert changed.line == generation[:generation.index(changed.text + "\n")].count("\n") + 1, "numbered in the text"


@pytest.mark.parametrize("make, why", [
    (lambda part: part.replace("  downlink 100M\n", "  downlink lots\n", 1), "a problem in the section read again"),
    (lambda part: part + "policy rate plan-100M\n  downlink 1M\n", "a section given twice"),
    (lambda part: part + "# a comment after the last statement\n", "comments after the last statement"),
    (lambda part: "\ufeff" + part, "a byte order mark"),
])
def test_the_shortcut_is_not_taken_where_it_could_differ_from_a_whole_parse(make, why):
    server = load("bqn1-v1.conf")
    text = make(cluster_part(server))
    assert text != cluster_part(server)
    assert cluster_tree(server, text, "generation") is None, why
