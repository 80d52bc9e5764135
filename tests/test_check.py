"""References resolve; required statements exist."""

import pytest

from confmerge.check import not_a_backup, references, validate
from confmerge.parser import parse

from .conftest import FIXTURES


def test_the_guide_fixtures_and_the_full_fixture_are_valid():
    for name in ("bqn0-v1.conf", "bqn1-v1.conf", "all-statements.conf"):
        assert validate(parse((FIXTURES / name).read_text(), name)) == []


def test_dangling_references_and_missing_policy():
    config = parse((FIXTURES / "errors" / "dangling-reference.conf").read_text(), "d.conf")
    found = [(d.line, d.column, d.message) for d in validate(config)]
    assert found == [
        (2, 10, "rule r: policy 'missing' names a missing 'policy rate' section"),
        (3, 16, "rule r: time-profile 'nowhere' names a missing 'profile time' section"),
        (4, 1, "rule no-policy has no 'policy' statement (required)"),
    ]


def test_references_of_a_rule():
    config = parse((FIXTURES / "bqn0-v1.conf").read_text())
    rule = config.section("rule", "sw-updates-at-peak")
    targets = sorted(str(target) for _, target in references(rule))
    assert targets == ["policy rate sw-updates-peak", "profile sw-update sw-updates", "profile time peak-time"]
    group = config.section("subscriber-group", "business")
    assert [str(t) for _, t in references(group)] == ["policy rate plan-100M"]


def test_a_dangling_reference_is_located_at_its_name_after_spacing_and_quoting():
    text = 'rule r\n  policy    nowhere\nrule s\n  "policy" nowhere2\n'
    found = [(d.line, d.column) for d in validate(parse(text))]
    assert found == [(2, 13), (4, 12)]


@pytest.mark.parametrize("text", [
    "",
    "\n\n# just a comment\n",
    "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
    "Things to do\n  call the ISP about the new uplink\n  hostname of the new box is bqn9\n",
])
def test_a_file_with_nothing_of_a_backup_is_not_a_backup(text):
    problem = not_a_backup(parse(text, "x.conf"))
    assert problem is not None and problem.severity == "error"
    assert str(problem).startswith("x.conf: error: not a BQN backup")


@pytest.mark.parametrize("text", [
    "hostname a\n",
    "snmp\n  community public\nntp\n  server 10.0.0.1\n",
    "# bqn-version: R5.0.3\n# saved: 2026-03-26 19:28:22 UTC\n",
    "# bqn-id: 3\nlicense x\n",
])
def test_one_listed_section_or_a_bqn_header_makes_a_backup(text):
    assert not_a_backup(parse(text)) is None
