"""Lossless: an unchanged tree writes back its input byte for byte."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confmerge.diagnostics import ConfError
from confmerge.parser import parse
from confmerge.render import render
from confmerge.schema import ROOT
from confmerge.tree import Identity

from .conftest import FIXTURES
from .strategies import styled, trees

VALID = sorted(p for p in FIXTURES.rglob("*.conf") if "errors" not in p.parts)


@pytest.mark.parametrize("path", VALID, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_fixture_round_trips_byte_for_byte(path):
    data = path.read_bytes()
    assert render(parse(data.decode("utf-8"), str(path))).encode("utf-8") == data


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_generated_backups_round_trip(data):
    text = data.draw(styled(data.draw(trees())))
    assert render(parse(text)) == text


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(list('ab "\\#\t\r\n  x:')), max_size=80))
def test_whatever_parses_round_trips(text):
    try:
        config = parse(text)
    except ConfError:
        return
    assert render(config) == text


def test_added_lines_take_the_files_own_style():
    config = parse((FIXTURES / "lossless" / "crlf.conf").read_bytes().decode())
    ntp = config.section("ntp")
    kind = ntp.kind.child(("server",))
    ntp.append(config.new_node(kind, ("server", "216.229.0.50"), ("216.229.0.50", False),
                               Identity(("server", "216.229.0.50")), depth=1))
    assert "  server 162.159.200.1\r\n  server 216.229.0.50\r\npolicy rate" in render(config)


def test_a_line_appended_after_a_missing_final_newline_gets_one():
    config = parse("hostname a")
    kind = ROOT.child(("timezone",))
    config.root.append(config.new_node(kind, ("timezone", "Europe/Madrid"), ("Europe/Madrid",),
                                       Identity(("timezone",)), depth=0))
    assert render(config) == "hostname a\ntimezone Europe/Madrid\n"


def test_new_words_are_quoted_when_they_must_be():
    config = parse("interface en0o1\n    mtu 1500\n")
    interface = config.section("interface", "en0o1")
    kind = interface.kind.child(("description",))
    interface.append(config.new_node(kind, ("description", 'a "b"'), ('a "b"',), Identity(("description",)), depth=1))
    assert render(config) == 'interface en0o1\n    mtu 1500\n    description "a \\"b\\""\n'
