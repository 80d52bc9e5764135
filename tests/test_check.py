"""References resolve; required statements exist."""

from confmerge.check import references, validate
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
