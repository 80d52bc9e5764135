"""The syntax of a backup, from ``grammar/bqnconf.lark``.

The Lark file is the one definition of the syntax. Two readers use it:

* :func:`scan`, the reader the engine uses: a line scanner whose regular
  expressions are compiled from the grammar's terminals (``WORD``, ``QUOTED``,
  ``COMMENT``). It yields one :class:`RawLine` per physical line with the line's
  words and source text, at C speed for the common case; a line it rejects is
  handed to the LALR ``line`` rule, whose error gives the position and message.
* :func:`parse_blocks`, the full LALR parse with an indenter: the reference
  that the scanner and the block builder are tested against. It is about three
  times slower (see ``docs/performance.md``), which is why it is not the path
  every file takes.

The scanner's terminals are also kept in ``grammar/terminals.json`` with the
sha256 of the grammar they came from, so that a program that reads valid
files never imports Lark (0.08 s of CPU at every start of ``confmerge`` and
``clusterd``). Where the hash does not match the grammar the terminals come
from Lark; ``tests/test_grammar.py`` fails until the file is made again
(:func:`write_terminals`).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, NamedTuple

from .diagnostics import Diagnostic

if TYPE_CHECKING:
    from lark import Lark, Token, Tree

BOM = "\ufeff"
TERMINALS = ("WORD", "QUOTED", "COMMENT")
"""The grammar's terminals the line scanner is compiled from."""


def grammar_text() -> str:
    return resources.files("confmerge._grammar").joinpath("bqnconf.lark").read_text(encoding="utf-8")


def grammar_sha256() -> str:
    return hashlib.sha256(grammar_text().encode("utf-8")).hexdigest()


@cache
def lark_parser() -> "Lark":
    from lark import Lark
    from lark.indenter import Indenter

    class BQNIndenter(Indenter):
        """Turns the indentation after each line break into block tokens."""

        NL_type = "_NL"
        OPEN_PAREN_types: list[str] = []
        CLOSE_PAREN_types: list[str] = []
        INDENT_type = "_INDENT"
        DEDENT_type = "_DEDENT"
        tab_len = 8

    return Lark(grammar_text(), parser="lalr", postlex=BQNIndenter(), start=["start", "line"],
                maybe_placeholders=False)


def terminals_from_lark() -> dict[str, str]:
    """The scanner's terminals as regular expressions, as Lark compiles them from the grammar."""
    parser = lark_parser()
    return {name: parser.get_terminal(name).pattern.to_regexp() for name in TERMINALS}


def kept_terminals() -> dict[str, str]:
    """The same, with the grammar's sha256: what ``grammar/terminals.json`` holds."""
    return {"grammar_sha256": grammar_sha256(), **terminals_from_lark()}


def _terminals() -> dict[str, str]:
    """The kept terminals when they are the grammar's (no Lark import), else Lark's."""
    try:
        kept = json.loads(resources.files("confmerge._grammar").joinpath("terminals.json").read_text(encoding="utf-8"))
        if kept.get("grammar_sha256") == grammar_sha256():
            return {name: str(kept[name]) for name in TERMINALS}
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    return terminals_from_lark()


@dataclass(frozen=True, slots=True)
class Scanner:
    """Regular expressions compiled from the grammar's terminals."""

    line: re.Pattern[str]
    word: re.Pattern[str]

    @classmethod
    @cache
    def from_grammar(cls) -> "Scanner":
        word, quoted, comment = _terminals().values()
        token = f"(?:{quoted}|{word})"
        line = re.compile(f"(?P<indent> *)(?:(?P<comment>{comment})|(?P<words>{token}(?: +{token})*) *)?")
        return cls(line=line, word=re.compile(f"({quoted})|{word}"))


class RawLine(NamedTuple):
    """One physical line: its number, text (without the ending) and ending.

    ``words`` is ``None`` for a blank or comment line; for a statement it holds
    the unquoted words. ``indent`` is the width of the leading spaces.
    """

    number: int
    text: str
    ending: str
    indent: int
    words: tuple[str, ...] | None


_ESCAPE = re.compile(r'\\(["\\])')


def unquote(token: str) -> str:
    if token[:1] != '"':
        return token
    inner = token[1:-1]
    return _ESCAPE.sub(r"\1", inner) if "\\" in inner else inner


def scan(text: str, errors: list[Diagnostic]) -> Iterator[RawLine]:
    """Split ``text`` (without BOM) into lines; append syntax errors to ``errors``.

    A line with an error is still yielded, as a blank one, so that its text
    survives and the rest of the file is still checked.
    """
    scanner = Scanner.from_grammar()
    fullmatch = scanner.line.fullmatch
    # one string per distinct word: a backup repeats its keywords and names on every line, and a daemon keeps
    # the tree of its backup (copies of the same words were a quarter of its memory)
    seen: dict[str, str] = {}
    shared = seen.setdefault
    pieces = text.split("\n")
    last = len(pieces) - 1
    for index, piece in enumerate(pieces):
        if index == last:
            if not piece:
                return
            ending = ""
        elif piece[-1:] == "\r":
            piece = piece[:-1]
            ending = "\r\n"
        else:
            ending = "\n"
        match = fullmatch(piece)
        if match is None:
            errors.append(line_error(piece, index + 1))
            yield RawLine(index + 1, piece, ending, 0, None)
            continue
        body = match["words"]
        if body is None:
            yield RawLine(index + 1, piece, ending, 0, None)
            continue
        if '"' in body:
            words = tuple(unquote(q or w) for q, w in _quoted_and_bare(scanner.word, body))
        else:
            split = body.split()
            words = tuple(map(shared, split, split))
        yield RawLine(index + 1, piece, ending, len(match["indent"]), words)


def _quoted_and_bare(word: re.Pattern[str], body: str) -> Iterator[tuple[str, str]]:
    for match in word.finditer(body):
        yield match[1] or "", match[0]


def word_columns(text: str) -> list[int]:
    """The 1-based column where each word of a statement line starts."""
    return [match.start() + 1 for match in Scanner.from_grammar().word.finditer(text)]


def line_error(text: str, number: int) -> Diagnostic:
    """The error for a line the scanner rejects, located by the LALR line rule."""
    indent = len(text) - len(text.lstrip(" \t"))
    tab = text.find("\t", 0, indent)
    if tab >= 0:
        return Diagnostic("error", number, tab + 1, "tab in indentation (indent with spaces)")
    carriage = text.find("\r")
    if carriage >= 0:
        return Diagnostic("error", number, carriage + 1,
                          f"{character(chr(13))} not before a line feed: a line ends with LF or CRLF")
    from lark import UnexpectedInput, UnexpectedToken

    try:
        lark_parser().parse(text, start="line")
    except UnexpectedToken as error:
        return Diagnostic("error", number, error.column, f"expected a space before {str(error.token)!r}")
    except UnexpectedInput as error:
        column = error.column if isinstance(error.column, int) and error.column > 0 else 1
        char = text[column - 1:column]
        if char == '"':
            message = "unterminated quote"
        elif char.isspace():
            message = (f"white space {character(char)} outside quotes: only spaces (U+0020) indent and separate "
                       "words; quote a word that holds other white space")
        else:
            message = f"unexpected character {character(char)}"
        return Diagnostic("error", number, column, message)
    return Diagnostic("error", number, 1, "line not understood")


_CONTROL_NAMES = {
    "\t": "CHARACTER TABULATION", "\n": "LINE FEED", "\x0b": "LINE TABULATION", "\x0c": "FORM FEED",
    "\r": "CARRIAGE RETURN", "\x1c": "FILE SEPARATOR", "\x1d": "GROUP SEPARATOR", "\x1e": "RECORD SEPARATOR",
    "\x1f": "UNIT SEPARATOR", "\x85": "NEXT LINE",
}


def character(char: str) -> str:
    """A character as a message names it: ``'x'`` when it can be seen, else its code point and name."""
    if char.isprintable() and not char.isspace():
        return repr(char)
    name = _CONTROL_NAMES.get(char) or unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")


Block = tuple[tuple[str, ...], tuple["Block", ...]]


def parse_blocks(text: str) -> tuple[Block, ...]:
    """The statements of ``text`` as nested (words, children) by the LALR grammar.

    Raises :class:`lark.UnexpectedInput` (or an indenter error) on the first
    problem; :func:`scan` and the tree builder report them all.
    """
    if text.startswith(BOM):
        text = text[1:]
    tree = lark_parser().parse("\n" + text + "\n", start="start")
    return tuple(_blocks(tree.children))


def _blocks(items: list["Tree | Token"]) -> Iterator[Block]:
    from lark import Tree

    for item in items:
        if not isinstance(item, Tree):
            continue
        if item.data == "statement":
            yield _words(item), ()
        elif item.data == "block":
            head, *children = item.children
            yield _words(head), tuple(_blocks(children))


def _words(statement: "Tree") -> tuple[str, ...]:
    from lark import Token

    return tuple(unquote(str(token)) for token in statement.children if isinstance(token, Token) and token.type != "SP")


def write_terminals() -> Path:
    """Make ``grammar/terminals.json`` again from the grammar (after an edit of it, in a checkout)."""
    target = Path(__file__).resolve().parent.parent / "grammar" / "terminals.json"
    target.write_text(json.dumps(kept_terminals(), indent=2) + "\n", encoding="utf-8")
    return target
