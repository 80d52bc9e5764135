"""Hostile input: the parser and the CLI never crash (issues 12 and 18).

Texts are built from real backup lines, mutated with arbitrary Unicode,
control characters, every Unicode space and line-break character, deep
nesting and huge numbers, and joined with every line ending. The properties:
only :class:`ConfError` is ever raised, every diagnostic points inside the
text, what parses renders back byte for byte and agrees with the LALR
grammar, and ``confmerge check/parse/diff/merge`` end with 0, 1 or 2.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lark import UnexpectedInput

from confmerge.check import not_a_backup, validate
from confmerge.data import config_data, dump
from confmerge.diagnostics import ConfError, Diagnostic
from confmerge.diff import diff
from confmerge.grammar import Scanner, lark_parser, parse_blocks
from confmerge.merge import adopt, cluster_digest, cluster_part, merge
from confmerge.parser import MAX_DEPTH, parse
from confmerge.reference import reference_changes
from confmerge.render import render
from confmerge.rules import Rules, default_rules, load_rules
from confmerge.tree import Config, quote

from .conftest import FIXTURES, run_confmerge

SPACES = [chr(c) for c in range(0x110000) if chr(c).isspace()]
"""Every Unicode white space character, the line breaks of str.splitlines() among them."""
ENDINGS = ["\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\r\r\n"]
LINES = sorted({line for name in ("all-statements.conf", "bqn0-v1.conf", "lossless/unknown-sections.conf",
                                  "lossless/quoted-escapes.conf")
                for line in (FIXTURES / name).read_text().splitlines()})

characters = st.one_of(
    st.characters(),
    st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Cs", "Co"]),
    st.sampled_from([*SPACES, '"', "\\", "#", "\x1b", "\x00", "\ufeff", "\x7f"]),
)


@st.composite
def mutated(draw) -> str:
    line = draw(st.sampled_from(LINES))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(line)))
        line = line[:at] + draw(st.text(characters, min_size=1, max_size=3)) + line[at + draw(st.integers(0, 2)):]
    return line


huge = st.builds(lambda keyword, digits, unit: f"{keyword} {digits}{unit}",
                 st.sampled_from(["  downlink", "  uplink", "bqn-id", "  port", "  mtu",
                                  "  static 0.0.0.0/0 via 10.0.0.1 metric"]),
                 st.integers(4000, 6000).map(lambda n: "9" * n), st.sampled_from(["", "k", "M", "G"]))
deep = st.integers(1, 1100).map(lambda n: "\n".join(["snmp", *(" " * d + f"x{d}" for d in range(1, n))]))
lines = st.one_of(st.sampled_from(LINES), mutated(), st.text(characters, max_size=40), huge, deep)


no_line_end = characters.filter(lambda c: c not in "\r\n")


@st.composite
def survivable(draw) -> str:
    """A real backup with hostile content where the format allows it: comments, quoted words, unknown
    sections with odd words, nesting up to the limit, a huge quoted number, LF or CRLF."""
    lines = (FIXTURES / draw(st.sampled_from(["bqn0-v1.conf", "all-statements.conf"]))).read_text().splitlines()
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(lines)))
        choice = draw(st.integers(0, 3))
        if choice == 0:
            lines.insert(at, " " * draw(st.integers(0, 3)) + "#" + draw(st.text(no_line_end, max_size=20)))
        elif choice == 1:
            words = draw(st.lists(st.text(no_line_end, max_size=8), min_size=1, max_size=3))
            block = [f"x-{draw(st.integers(0, 9))} " + " ".join(quote(w) if w else '""' for w in words)]
            block += [" " * d + quote(draw(st.text(no_line_end, min_size=1, max_size=6))) for d in
                      range(1, draw(st.integers(1, MAX_DEPTH)))]
            lines[at:at] = block if at == len(lines) or not lines[at].startswith(" ") else []
        elif choice == 2:
            lines.insert(at, "")
        else:
            lines.insert(at, f"timezone {quote('9' * draw(st.integers(1, 6000)))}")
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    return ending.join(lines) + draw(st.sampled_from(["", ending]))


@st.composite
def hostile(draw) -> str:
    out = ["\ufeff"] if draw(st.booleans()) else []
    for line in draw(st.lists(lines, max_size=12)):
        out.append(line + draw(st.sampled_from(ENDINGS)))
    text = "".join(out)
    return text[:-1] if text and draw(st.booleans()) else text


def assert_located(diagnostics: tuple[Diagnostic, ...] | list[Diagnostic], text: str) -> None:
    physical = (text[1:] if text.startswith("\ufeff") else text).split("\n")
    for d in diagnostics:
        assert d.file == "fuzz.conf"
        if d.line == 0:
            assert d.column == 0 and d.message.startswith("not a BQN backup")
            continue
        assert 1 <= d.line <= len(physical), d
        assert 1 <= d.column <= len(physical[d.line - 1].removesuffix("\r")) + 2, d
        assert d.message and "Traceback" not in d.message
        assert not any(python in d.message for python in ("int_max_str_digits", "Exceeds the limit", "Error:"))


def nested(node):
    return tuple((child.words, nested(child)) for child in node.children)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.one_of(hostile(), survivable()))
def test_the_engine_refuses_hostile_text_with_diagnostics_only(text):
    try:
        config = parse(text, "fuzz.conf")
    except ConfError as error:
        event("refused")
        assert error.errors
        assert_located(error.diagnostics, text)
        return
    event("parsed")
    assert_located(config.warnings, text)
    assert render(config) == text
    assert nested(config.root) == parse_blocks(text)
    problems = validate(config)
    backup = not_a_backup(config)
    assert_located([*problems, *([backup] if backup else [])], text)
    for fmt in ("json", "yaml"):
        dump(config_data(config), fmt, StringIO())
    assert not diff(config, config)
    if not problems and backup is None:
        event("merged")
        merge([config, parse(render(config), "fuzz.conf")], primary=0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.one_of(mutated(), st.text(characters, max_size=40)), min_size=1, max_size=8))
def test_the_scanner_and_the_lalr_line_rule_accept_the_same_lines(pieces):
    scanner = Scanner.from_grammar()
    for piece in pieces:
        for line in piece.replace("\r\n", "\n").split("\n"):
            try:
                lark_parser().parse(line, start="line")
            except UnexpectedInput:
                accepted = False
            else:
                accepted = True
            assert (scanner.line.fullmatch(line) is not None) == accepted, repr(line)



@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                               HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(hostile(), survivable()), min_size=2, max_size=2))
def test_the_cli_exits_0_1_or_2_without_a_traceback(tmp_path, texts):
    paths = []
    for i, text in enumerate(texts):
        path = tmp_path / f"in{i}.conf"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        paths.append(path)
    out = tmp_path / "out"
    for args in (("check", *paths), ("parse", paths[0]), ("parse", "--format", "yaml", paths[1]),
                 ("diff", "--format", "json", *paths), ("diff", *paths), ("merge", *paths, "-o", out)):
        result = run_confmerge(*args)
        assert result.returncode in (0, 1, 2), (args, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr


HOSTILE_FILES = {
    "nbsp-line": "hostname a\nbqn-id 1\n\u00a0\n",
    "nbsp-in-word": "hostname bqn\u00a0edge\nbqn-id 1\n",
    "deep": "hostname a\nbqn-id 1\n" + "\n".join(["snmp", *(" " * d + f"x{d}" for d in range(1, 1000))]) + "\n",
    "huge-rate": "hostname a\nbqn-id 1\npolicy rate p\n  downlink " + "9" * 5000 + "M\n",
    "empty": "",
    "notes": "Things to do\n  call the ISP\n",
    "passwd": "root:x:0:0:root:/root:/bin/bash\n",
    "line-separator": "hostname a\u2028bqn-id 1\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_FILES))
def test_each_hostile_file_is_refused_by_every_command_with_exit_2(tmp_path, name):
    path = tmp_path / f"{name}.conf"
    path.write_text(HOSTILE_FILES[name], encoding="utf-8")
    good = FIXTURES / "bqn1-v1.conf"
    out = tmp_path / "out"
    for args in (("check", path), ("parse", path), ("diff", path, good), ("merge", path, good, "-o", out),
                 ("rules", path)):
        result = run_confmerge(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.startswith(f"{path}:"), result.stderr
        assert not out.exists()


STACK_BUDGET = 400
"""Frames a walk may take at the deepest nesting the format accepts: the rest of the
interpreter's default 1,000 is left to the caller (the daemon runs the engine deep in asyncio)."""


def deepest(tag: str, rules: Rules) -> Config:
    chain = ["x-deep", *(" " * depth + f"x{depth}" for depth in range(1, MAX_DEPTH - 1)), " " * (MAX_DEPTH - 1) + tag]
    text = (FIXTURES / "bqn0-v1.conf").read_text()
    if tag == "b":
        text = text.replace("bqn-id 0", "bqn-id 1").replace("hostname bqn0", "hostname bqn1")
    return parse(text + "\n".join(chain) + "\n", f"{tag}.conf", rules)


def within_budget(run) -> None:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack(0)) + STACK_BUDGET)
    try:
        run()
    finally:
        sys.setrecursionlimit(limit)


def test_every_walk_fits_the_stack_at_the_deepest_accepted_nesting():
    rules = default_rules().then(load_rules("classes:\n  x-deep: cluster\n  'x-deep / *': cluster\n", "deep.yaml"))
    a, b = deepest("a", rules), deepest("b", rules)
    assert max(len(list(s.walk())) for s in a.sections) == MAX_DEPTH - 1
    walks = {
        "parse": lambda: deepest("a", rules), "validate": lambda: validate(a), "render": lambda: render(a),
        "diff": lambda: diff(a, b), "json": lambda: dump(config_data(a), "json", StringIO()),
        "yaml": lambda: dump(config_data(a), "yaml", StringIO()), "merge": lambda: merge([a, b]),
        "cluster_part": lambda: cluster_part(a), "cluster_digest": lambda: cluster_digest(a),
        "adopt": lambda: adopt(b, a), "reference": lambda: reference_changes(a, b), "walk": lambda: list(a.root.walk()),
    }
    for name, run in walks.items():
        try:
            within_budget(run)
        except RecursionError:
            pytest.fail(f"{name} needs more than {STACK_BUDGET} frames at nesting depth {MAX_DEPTH}")
    assert merge([a, b]).outputs[1].section("", "x-deep") is not None
