"""The typed tree: kinds, normal forms, identities, classes, errors and warnings."""

import pytest

from confmerge.diagnostics import ConfError
from confmerge.parser import parse
from confmerge.schema import SECTIONS
from confmerge.tree import Identity, MergeClass
from confmerge.types import Rate

from .conftest import FIXTURES


@pytest.fixture(scope="module")
def every_statement():
    return parse((FIXTURES / "all-statements.conf").read_text(), "all-statements.conf")


def kinds_in(node):
    for child in node.children:
        yield child.kind
        yield from kinds_in(child)


def all_kinds(kinds):
    for kind in kinds:
        yield kind
        yield from all_kinds(kind.children)


def test_the_fixture_types_every_statement_of_the_format(every_statement):
    typed = set(kinds_in(every_statement.root))
    missing = [kind.signature for kind in all_kinds(SECTIONS) if kind not in typed]
    assert missing == []
    assert None not in typed


def test_values_are_in_normal_form(every_statement):
    config = every_statement
    assert config.section("bqn-id").value("id") == 7
    assert config.section("policy rate", "plan-100M").get(Identity(("downlink",))).value("rate") == Rate(100_000)
    dns = config.section("dns")
    assert dns.get(Identity(("server", "2001:4860:4860::8888"))) is not None
    server = config.section("ntp").get(Identity(("server", "129.6.15.28")))
    assert server.fields == {"address": "129.6.15.28", "prefer": True}
    peer = config.section("cluster").get(Identity(("peer", 1)))
    assert peer.fields == {"id": 1, "address": "216.58.205.47", "ssh_port": 2022}
    static = config.section("routing").get(Identity(("static", "10.20.0.0/16")))
    assert static.fields == {"prefix": "10.20.0.0/16", "via": "192.168.0.254", "metric": 10}
    user = config.section("rest-api").get(Identity(("user", "api-admin")))
    assert user.get(Identity(("password-hash",))).value("hash") == "$6$rounds=5000$salt$hash#with#hashes"
    assert config.section("timezone").value("zone") == "America/Argentina/Buenos_Aires"


def test_identities_and_lines(every_statement):
    config = every_statement
    section = config.section("profile", "time")
    assert section is None
    section = config.section("profile time", "peak-time")
    assert str(section.identity) == "profile time peak-time"
    assert section.line == 50
    ranges = [str(child.identity) for child in section.children]
    assert ranges == ["range mon,tue,wed,thu,fri 18:00-23:00", "range sat,sun 12:00-24:00"]


def test_each_section_has_its_default_class(every_statement):
    classes = {str(s.identity): s.merge_class for s in every_statement.sections}
    assert classes["hostname"] is MergeClass.SERVER
    assert classes["interface en0o1"] is MergeClass.SERVER
    assert classes["cluster"] is MergeClass.SERVER
    assert classes["ntp"] is MergeClass.CLUSTER
    assert classes["rule business"] is MergeClass.CLUSTER
    assert classes["profile sw-update sw-updates"] is MergeClass.CLUSTER


def test_header_metadata_is_read_but_is_not_configuration(every_statement):
    assert every_statement.metadata == {"bqn-version": "R5.0.3", "saved": "2026-03-26 19:28:22 UTC", "hostname": "bqn-all"}
    assert all(section.kind is not None for section in every_statement.sections)


def test_unknown_content_is_kept_as_generic_nodes():
    config = parse((FIXTURES / "lossless" / "unknown-sections.conf").read_text())
    snmp = config.section("", "snmp")
    assert snmp.generic and snmp.merge_class is MergeClass.UNCLASSIFIED
    assert [child.words for child in snmp.children] == [("community", "public"), ("location", "rack 4")]
    assert snmp.children[0].children[0].words == ("access", "read-only")
    ntp = config.section("ntp")
    assert [child.generic for child in ntp.children] == [False, True, True]
    [warning] = config.warnings
    assert (warning.line, warning.column, warning.severity) == (9, 24, "warning")


def test_indentation_width_is_free_but_shared_within_a_block():
    config = parse((FIXTURES / "lossless" / "four-space-indent.conf").read_text())
    user = config.section("rest-api").get(Identity(("user", "admin")))
    assert [c.keyword for c in user.children] == ["role", "password-hash"]
    assert config.indent_unit == 4


def errors_of(name):
    with pytest.raises(ConfError) as caught:
        parse((FIXTURES / "errors" / name).read_text(), name)
    return [(d.line, d.column, d.message) for d in caught.value.diagnostics if d.severity == "error"]


@pytest.mark.parametrize(("name", "expected"), [
    ("tab-indent.conf", [(2, 1, "tab in indentation")]),
    ("bad-dedent.conf", [(3, 3, "dedent to a level that is not open")]),
    ("unterminated-quote.conf", [(2, 15, "unterminated quote")]),
    ("too-few-words.conf", [(2, 10, "missing address after 'server'"), (3, 13, "missing name after 'rate'")]),
    ("wrong-type.conf", [(1, 8, "0..255"), (3, 10, "'10.0.0.300'"), (5, 12, "'10X'"), (7, 9, "'mon-fry'")]),
    ("single-twice.conf", [(3, 3, "'downlink' given twice in one block"), (5, 1, "section 'hostname' given twice")]),
    ("duplicate-section.conf", [(3, 1, "section 'policy rate p' given twice (first at line 1)")]),
])
def test_each_error_at_its_line_and_column(name, expected):
    found = errors_of(name)
    assert len(found) == len(expected)
    for (line, column, message), (want_line, want_column, want_text) in zip(found, expected):
        assert (line, column) == (want_line, want_column)
        assert want_text in message


def test_every_error_in_a_file_is_reported_not_only_the_first():
    found = errors_of("every-error.conf")
    assert [line for line, _, _ in found] == [1, 3, 4, 6, 9, 10, 14]


def test_a_multi_entry_given_twice_with_other_values_is_an_error():
    with pytest.raises(ConfError, match="given twice with different values"):
        parse("routing\n  static 0.0.0.0/0 via 10.0.0.1\n  static 0.0.0.0/0 via 10.0.0.2\n")


def test_a_repeated_line_warns_and_counts_once():
    config = parse((FIXTURES / "warnings.conf").read_text(), "warnings.conf")
    assert [(w.line, w.severity) for w in config.warnings] == [(4, "warning"), (6, "warning"), (9, "warning")]
    assert len(list(config.section("ntp").entries)) == 1
    assert str(config.warnings[0]).startswith("warnings.conf:4:3: warning: ")


def test_an_indented_first_statement_is_an_error():
    with pytest.raises(ConfError, match="no statement above it"):
        parse("  hostname a\n")


# Unicode white space (format notes, "White space and line breaks")

UNICODE_SPACES = [chr(c) for c in range(0x110000) if chr(c).isspace() and chr(c) not in " \n"]


@pytest.mark.parametrize("space", UNICODE_SPACES, ids=lambda c: f"U+{ord(c):04X}")
def test_white_space_other_than_the_ascii_space_is_an_error_between_words(space):
    with pytest.raises(ConfError) as caught:
        parse(f"hostname a\nntp\n  server 10.0.0.1{space}prefer\n", "u.conf")
    [error] = caught.value.errors
    assert (error.line, error.column) == (3, 18)
    assert f"U+{ord(space):04X}" in error.message


@pytest.mark.parametrize("space", [s for s in UNICODE_SPACES if s != "\r"], ids=lambda c: f"U+{ord(c):04X}")
def test_a_line_made_only_of_unicode_white_space_is_an_error_not_a_crash(space):
    with pytest.raises(ConfError) as caught:
        parse(f"hostname a\n{space}\n", "u.conf")
    [error] = caught.value.errors
    assert (error.line, error.column) == (2, 1)


@pytest.mark.parametrize("space", [s for s in UNICODE_SPACES if s != "\r"], ids=lambda c: f"U+{ord(c):04X}")
def test_unicode_white_space_is_kept_inside_quotes_and_comments(space):
    text = f'# note{space}here\ninterface en0\n  description "a{space}b"\n'
    config = parse(text)
    description = config.section("interface", "en0").children[0]
    assert description.value("text") == f"a{space}b"
    assert config.sections[0].leading == f"# note{space}here\n"


def test_a_carriage_return_not_before_a_line_feed_is_an_error():
    for text in ("hostname a\rb\n", 'interface en0\n  description "a\rb"\n', "# a\rb\nhostname a\n"):
        with pytest.raises(ConfError, match="U\\+000D"):
            parse(text)


def test_the_header_is_read_line_by_line_at_line_feeds_only():
    config = parse("# saved: a\u2028b\x85c\n# hostname: h\nhostname h\n")
    assert config.metadata == {"saved": "a\u2028b\x85c", "hostname": "h"}


# Depth, numbers


def test_nesting_deeper_than_the_format_allows_is_one_error_not_a_crash():
    from confmerge.parser import MAX_DEPTH

    lines = ["snmp"] + [" " * depth + f"level{depth}" for depth in range(1, 1000)] + ["hostname a"]
    with pytest.raises(ConfError) as caught:
        parse("\n".join(lines) + "\n", "deep.conf")
    [error] = caught.value.errors
    assert (error.line, error.column) == (MAX_DEPTH + 1, MAX_DEPTH + 1)
    assert f"at most {MAX_DEPTH} levels" in error.message


def test_nesting_at_the_limit_is_accepted():
    from confmerge.parser import MAX_DEPTH

    lines = ["snmp"] + [" " * depth + f"level{depth}" for depth in range(1, MAX_DEPTH)]
    config = parse("\n".join(lines) + "\n")
    assert len(list(config.sections[0].walk())) == MAX_DEPTH - 1


@pytest.mark.parametrize(("text", "bound"), [
    ("policy rate p\n  downlink {}M\n", "1000G"),
    ("routing\n  static 0.0.0.0/0 via 10.0.0.1 metric {}\n", "4294967295"),
    ("bqn-id {}\n", "255"),
    ("rest-api\n  port {}\n", "65535"),
    ("interface e\n  mtu {}\n", "9216"),
])
def test_a_huge_number_is_refused_with_the_formats_bound(text, bound):
    with pytest.raises(ConfError) as caught:
        parse(text.format("9" * 5000), "huge.conf")
    [error] = caught.value.errors
    assert bound in error.message
    for python in ("int_max_str_digits", "Exceeds the limit", "integer string conversion"):
        assert python not in error.message
    assert len(error.message) < 200


# Normal forms and keywords


def test_entries_equal_in_normal_form_are_a_repeat_not_a_conflict():
    config = parse("ntp\n  server 2001:db8::1\n  server 2001:DB8::0:1\n", "n.conf")
    [warning] = config.warnings
    assert (warning.severity, warning.line, warning.column) == ("warning", 3, 3)
    assert "equal in normal form to line 2 (server 2001:db8::1)" in warning.message
    assert "the first counts" in warning.message
    assert len(list(config.section("ntp").entries)) == 1


def test_a_repeated_entry_with_a_different_block_is_an_error_not_a_dropped_block():
    head = "rest-api\n  user admin\n    role admin\n"
    with pytest.raises(ConfError) as raised:
        parse(head + "  user admin\n    role read-only\n", "u.conf")
    [error] = raised.value.diagnostics
    assert (error.severity, error.line, error.column) == ("error", 4, 3)
    assert "'user admin' given twice with different blocks (first at line 2)" in error.message
    for same in ("  user admin\n    role admin\n", "  user admin\n"):
        config = parse(head + same, "u.conf")
        [warning] = config.warnings
        assert (warning.severity, warning.line) == ("warning", 4)
        assert "counts once" in warning.message


def test_a_quoted_first_word_is_a_word_not_two_keywords():
    config = parse('"policy rate" plan\n  downlink 10M\n"hostname x" a\n')
    assert config.warnings == ()
    for section, words in zip(config.sections, [("policy rate", "plan"), ("hostname x", "a")]):
        assert section.generic and section.words == words
    assert config.section("policy rate", "plan") is None and config.section("", "policy rate", "plan") is not None


def test_quoting_a_keyword_that_needs_no_quotes_changes_nothing():
    config = parse('"policy" rate p\n  "downlink" 10M\n')
    assert config.section("policy rate", "p").get(Identity(("downlink",))).value("rate") == Rate(10_000)
