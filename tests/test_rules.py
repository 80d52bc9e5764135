"""``confmerge rules``: the classes in effect, printed as a rules file that decides the same way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from confmerge.rules import default_rules, load_rules, rules_with

from .conftest import FIXTURES, run_confmerge

IDENTITIES = ["hostname", "bqn-id", "timezone", "ntp", "rest-api", "interface en0o1", "policy rate plan-100M",
              "rule business", "cluster", "snmp", "policy rate lab-1", "rest-api / user api-admin"]


def decisions(rules) -> list[str]:
    return [str(rules.section_class(i)) if " / " not in i else str(r.merge_class if (r := rules.rule_for(i)) else None)
            for i in IDENTITIES]


def test_the_defaults_print_as_a_rules_file_that_decides_the_same_way():
    result = run_confmerge("rules")
    assert result.returncode == 0, result.stderr
    assert "  interface *: server" in result.stdout and "  rule *: cluster" in result.stdout
    assert decisions(load_rules(result.stdout, "printed")) == decisions(default_rules())


def test_a_rules_file_overrides_and_the_print_says_so(tmp_path: Path):
    path = tmp_path / "site.yaml"
    path.write_text('classes:\n  rest-api: server\n  "policy rate lab-*": unclassified\n  "rest-api / user *": server\n'
                    '  "*lab*": cluster\n')
    result = run_confmerge("rules", "--rules", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("rest-api:") == 1
    assert "  rest-api: server" in result.stdout
    assert f"# {path}:2; overrides cluster at <default rules.yaml>:19" in result.stdout
    assert '  "*lab*": cluster' in result.stdout
    assert decisions(load_rules(result.stdout, "printed")) == decisions(rules_with(path))


def test_with_a_backup_it_shows_each_sections_class_and_the_rule_that_decided():
    result = run_confmerge("rules", FIXTURES / "merge" / "three-servers" / "bqn2-v1.conf", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = {(row["section"], row["statement"]): row for row in json.loads(result.stdout)}
    assert rows[("interface en0o5", None)]["class"] == "server"
    assert rows[("interface en0o5", None)]["source"] == "<default rules.yaml>:20 (interface *)"
    assert rows[("license key ABC-123-XYZ", None)] == {
        "section": "license key ABC-123-XYZ", "statement": None, "line": 36, "class": "unclassified", "source": None}
    assert rows[("ntp", "source-interface en0o0")]["class"] == "unclassified"
    text = run_confmerge("rules", FIXTURES / "merge" / "three-servers" / "bqn2-v1.conf").stdout
    assert "license key ABC-123-XYZ       unclassified  (no rule)" in text


def test_a_bad_rules_file_is_reported_at_its_line(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("classes:\n  ntp: clustre\n")
    result = run_confmerge("rules", "--rules", path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}:2:3: error: class of 'ntp' must be one of cluster, server, unclassified")


@pytest.mark.parametrize("text, where, message", [
    ('classes:\n  "\x1b[2Jsnmp": cluster\n', "2:4", "not valid YAML: the character U+001B is not allowed"),
    ("classes:\n  ntp: cluster\x7f\n", "2:15", "not valid YAML: the character U+007F is not allowed"),
    ("classes: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", "1:1", "nested too deep for a rules file"),
    ("[" * 100_000 + "]" * 100_000, "1:1", "nested too deep for a rules file"),
], ids=["escape", "delete", "deep-mapping", "deep-list"])
def test_a_rules_file_yaml_cannot_read_is_a_diagnostic_not_a_traceback(tmp_path: Path, text: str, where: str,
                                                                        message: str):
    """A control character (YAML's reader refuses it, with a position and no mark) and deep nesting
    (the YAML composer recurses) were tracebacks."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = run_confmerge("rules", "--rules", path)
    assert (result.returncode, result.stderr) == (2, f"{path}:{where}: error: {message}\n")


def test_a_section_pattern_never_decides_a_statement():
    rules = load_rules('classes:\n  "policy *": cluster\n', "site.yaml")
    assert rules.rule_for("policy rate plan-100M").pattern == "policy *"
    assert rules.rule_for("policy rate plan-100M / downlink") is None


def test_a_quoted_first_word_is_unclassified_not_the_listed_section_it_spells(tmp_path: Path):
    """Issue 18, item 4: ``"policy rate" plan`` is a generic section, kept and reported, not a rate policy."""
    from confmerge import merge, parse
    text = 'hostname bqn0\nbqn-id 0\n"policy rate" plan\n  downlink 10M\npolicy rate plan\n  downlink 20M\n'
    config = parse(text)
    default_rules().classify(config)
    generic, listed = config.sections[2], config.sections[3]
    assert str(generic.identity) == '"policy rate" plan' and generic.merge_class.value == "unclassified"
    assert str(listed.identity) == "policy rate plan" and listed.merge_class.value == "cluster"
    result = merge([config, parse(text.replace("bqn0", "bqn1").replace("bqn-id 0", "bqn-id 1"))])
    assert [u.section for u in result.unclassified] == ['"policy rate" plan'] * 2
