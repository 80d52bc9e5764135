"""The grammar: the scanner compiled from its terminals agrees with its LALR parse."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lark import UnexpectedInput

from confmerge.diagnostics import ConfError
from confmerge.grammar import Scanner, lark_parser, parse_blocks, scan, unquote, word_columns
from confmerge.parser import parse

from .strategies import styled, trees


def nested(node):
    return tuple((child.words, nested(child)) for child in node.children)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_scanner_and_lalr_grammar_build_the_same_blocks(data):
    text = data.draw(styled(data.draw(trees())))
    assert nested(parse(text).root) == parse_blocks(text)


def test_scanner_regexes_come_from_the_grammar_terminals():
    parser = lark_parser()
    scanner = Scanner.from_grammar()
    for terminal in ("WORD", "QUOTED", "COMMENT"):
        assert parser.get_terminal(terminal).pattern.to_regexp() in scanner.line.pattern


def test_words_are_unquoted_with_their_escapes():
    errors = []
    [line] = scan('  description "say \\"hi\\" C:\\\\x # y" bare#hash $6$a#b', errors)
    assert errors == []
    assert line.words == ("description", 'say "hi" C:\\x # y', "bare#hash", "$6$a#b")
    assert line.indent == 2
    assert unquote('"a\\\\b"') == "a\\b"


def test_lines_keep_their_endings():
    errors = []
    lines = list(scan("a\r\nb\nc", errors))
    assert [(line.text, line.ending) for line in lines] == [("a", "\r\n"), ("b", "\n"), ("c", "")]


def test_a_comment_opens_only_at_the_start_of_a_line():
    lines = list(scan("  # comment\nword #not-a-comment\n", []))
    assert lines[0].words is None
    assert lines[1].words == ("word", "#not-a-comment")


@pytest.mark.parametrize(("line", "column", "message"), [
    ('  description "open', 15, "unterminated quote"),
    ("\tserver 1.2.3.4", 1, "tab in indentation"),
    ("  \tserver 1.2.3.4", 3, "tab in indentation"),
    ('word"quoted"', 5, "expected a space"),
])
def test_rejected_lines_are_located(line, column, message):
    errors = []
    list(scan(line + "\n", errors))
    [error] = errors
    assert (error.line, error.column) == (1, column)
    assert message in error.message


def test_word_columns():
    assert word_columns('  a "b c" d') == [3, 5, 11]


def test_the_reference_parse_refuses_what_the_scanner_refuses():
    with pytest.raises(UnexpectedInput):
        parse_blocks('a "open\n')
    with pytest.raises(ConfError):
        parse('a "open\n')


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_garbage_gives_the_projects_own_error_never_another_exception(text):
    try:
        parse(text, "garbage.conf")
    except ConfError as error:
        assert error.diagnostics
        assert all(str(d).startswith("garbage.conf:") for d in error.diagnostics)


def test_the_kept_terminals_are_the_grammars():
    """``grammar/terminals.json`` holds what Lark compiles from the grammar (after an edit of the grammar:
    ``python -c "import confmerge.grammar as g; g.write_terminals()"``)."""
    import json

    from confmerge.grammar import grammar_text, kept_terminals, resources

    kept = json.loads(resources.files("confmerge._grammar").joinpath("terminals.json").read_text())
    assert kept == kept_terminals(), "grammar/terminals.json is stale: make it again (see this test's docstring)"
    assert "WORD" in grammar_text()


def test_reading_a_valid_file_imports_no_lark_and_a_bad_line_still_gets_its_column():
    import subprocess
    import sys

    code = ("import sys\nfrom confmerge import parse, ConfError\nparse('hostname a\\npolicy rate p\\n  downlink 1M\\n')\n"
            "assert 'lark' not in sys.modules, 'lark imported for a valid file'\n"
            "try:\n    parse('hostname \"a\\n', 'f')\nexcept ConfError as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "f:1:10: error: unterminated quote"
