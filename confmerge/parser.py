"""Text in, typed tree out: :func:`parse` builds a :class:`~confmerge.tree.Config`.

The grammar's scanner gives the lines; this module nests them into blocks by
indentation, types every statement against the schema, and checks the rules of
the format page, section 6. It collects every error before raising, so an
operator fixes a file in one pass.
"""

from __future__ import annotations

from collections import Counter
from typing import Hashable, Iterator, cast

from .diagnostics import ConfError, Diagnostic, Severity
from .grammar import BOM, RawLine, scan, word_columns
from .rules import Rules, default_rules
from .schema import ROOT, Field, Kind, Literal, Optional
from .tree import Config, Identity, Node, collector_paused


MAX_DEPTH = 32
"""How deep statements may nest (a section is level 1). BQN writes three levels;
the bound keeps every recursive walk over a tree (render, diff, merge, data) far
from the interpreter's stack limit, whatever a file holds."""


class _Mismatch(Exception):
    def __init__(self, word: int, message: str) -> None:
        self.word = word
        self.message = message


def match(kind: Kind, words: tuple[str, ...]) -> tuple[tuple[Hashable, ...], int]:
    """Type ``words`` against ``kind``'s signature.

    Returns the field values and how many words the signature used; raises
    :class:`_Mismatch` with the index of the offending word.
    """
    plain = kind.plain
    if plain is not None and len(words) == len(kind.elements):
        try:
            if len(plain) == 1:
                index, parse_field = plain[0]
                return (parse_field(words[index]),), len(words)
            return tuple(parse_field(words[index]) for index, parse_field in plain), len(words)
        except ValueError:
            pass
    values: list[Hashable] = []
    position = _match_elements(kind.elements, words, 0, values)
    return tuple(values), position


def _match_elements(elements, words: tuple[str, ...], position: int, values: list[Hashable]) -> int:
    count = len(words)
    for element in elements:
        if element.__class__ is Field:
            if position >= count:
                raise _Mismatch(position, f"missing {element.type if '|' not in element.type else element.name} after '{words[position - 1]}'")
            try:
                values.append(element.parse(words[position]))
            except ValueError as error:
                raise _Mismatch(position, str(error)) from None
            position += 1
        elif element.__class__ is Literal:
            if position >= count:
                raise _Mismatch(position, f"missing '{element.word}' after '{words[position - 1]}'")
            if words[position] != element.word:
                raise _Mismatch(position, f"expected '{element.word}', got '{words[position]}'")
            position += 1
        elif element.__class__ is Optional:
            inner = element.elements
            present = position < count and words[position] == cast(Literal, inner[0]).word
            if any(e.__class__ is Field for e in inner):
                if present:
                    position = _match_elements(inner, words, position, values)
                else:
                    values.extend(None for e in inner if e.__class__ is Field)
            else:
                values.append(present)
                if present:
                    position += len(inner)
    return position


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.diagnostics: list[Diagnostic] = []
        self.single: dict[Kind, Identity] = {}
        self.repeats: list[tuple[Node, Node, RawLine, str]] = []
        """Repeated entries (first, repeat, its line, the warning): judged once their blocks are read."""

    def identity(self, kind: Kind, values: tuple[Hashable, ...]) -> Identity:
        if kind.single:
            identity = self.single.get(kind)
            if identity is None:
                identity = self.single[kind] = Identity((kind.keyword,))
            return identity
        return Identity(kind.identity_of(values))

    def report(self, severity: Severity, raw: RawLine, word: int | None, message: str) -> None:
        if word is None:
            column = raw.indent + 1
        else:
            columns = word_columns(raw.text)
            column = columns[word] if word < len(columns) else len(raw.text.rstrip()) + 2
        self.diagnostics.append(Diagnostic(severity, raw.number, column, message, self.file))

    def node(self, parent: Node, raw: RawLine, leading: str) -> Node:
        words = raw.words
        assert words is not None, "only statement lines become nodes"
        kind = parent.kind.child(words) if parent.kind is not None else None
        values: tuple[Hashable, ...] = ()
        if kind is not None:
            try:
                values, used = match(kind, words)
            except _Mismatch as mismatch:
                self.report("error", raw, mismatch.word, mismatch.message)
                kind = None
            else:
                if used < len(words):
                    self.report("warning", raw, used, f"unexpected words after '{kind.keyword}' statement; kept as written")
                    kind = None
        identity = self.identity(kind, values) if kind is not None else Identity(("", *words))
        return Node(kind, words, values, identity, line=raw.number, text=raw.text,
                    ending=raw.ending, leading=leading, indent=raw.indent)

    def add(self, parent: Node, node: Node, raw: RawLine) -> None:
        index = parent.index()
        first = index.get(node.identity)
        if first is None:
            index[node.identity] = node
        else:
            node.repeated = True
            if parent.kind is ROOT:
                self.report("error", raw, None, f"section '{node.identity}' given twice (first at line {first.line})")
            elif node.kind is not None and node.kind.single:
                self.report("error", raw, None, f"'{node.kind.keyword}' given twice in one block (first at line {first.line})")
            elif first.words == node.words:
                self.repeats.append((first, node, raw, f"'{node.text.strip(' ')}' repeated (first at line {first.line}); "
                                                       "it counts once"))
            elif node.kind is not None and node.kind is first.kind and node.values == first.values:
                self.repeats.append((first, node, raw, f"'{node.text.strip(' ')}' is equal in normal form to line "
                                                       f"{first.line} ({node.identity}); it counts once: the first counts"))
            else:
                self.report("error", raw, None, f"'{node.identity}' given twice with different values (first at line {first.line})")
        parent.children.append(node)

    def judge_repeats(self) -> None:
        """A repeat counts once only if its block adds nothing: a different block would be dropped, so it is an error."""
        for first, node, raw, warning in self.repeats:
            if node.children and _content(node) != _content(first):
                self.report("error", raw, None, f"'{node.identity}' given twice with different blocks (first at line "
                                                f"{first.line}); write one block")
            else:
                self.report("warning", raw, None, warning)


def _content(node: Node) -> tuple[Hashable, ...]:
    """What a block says, in normal form and in order (nesting is bounded, so recursion is safe)."""
    own: Hashable = node.values if node.kind is not None else node.words
    return (node.identity, own, tuple(_content(child) for child in node.entries))



def parse(text: str, file: str = "<input>", rules: Rules | None = None) -> Config:
    """Build the typed tree of ``text``; raise :class:`ConfError` with every error.

    Warnings (a repeated line, extra words kept as written) are on ``config.warnings``.
    """
    with collector_paused():
        return _parse(text, file, rules)


def _parse(text: str, file: str, rules: Rules | None) -> Config:
    builder = _Builder(file)
    errors: list[Diagnostic] = []
    bom = text.startswith(BOM)
    body = text[1:] if bom else text
    root = Config.empty(file).root
    stack: list[tuple[Node, int]] = [(root, 0)]
    previous: Node | None = None
    leading: list[str] = []
    endings: Counter[str] = Counter()
    unit = 0
    too_deep = False
    for raw in scan(body, errors):
        endings[raw.ending] += 1
        if raw.words is None:
            leading.append(raw.text + raw.ending)
            continue
        indent = raw.indent
        if previous is not None and indent > previous.indent:
            if len(stack) == MAX_DEPTH:
                if not too_deep:
                    builder.report("error", raw, None, f"nested too deep: a statement is at most {MAX_DEPTH} levels "
                                                       "deep (a section is level 1)")
                too_deep = True
                leading.clear()
                continue
            stack.append((previous, indent))
            unit = unit or indent - previous.indent
        else:
            while len(stack) > 1 and indent < stack[-1][1]:
                stack.pop()
            if indent != stack[-1][1]:
                if previous is None:
                    builder.report("error", raw, None, "indented statement with no statement above it")
                else:
                    builder.report("error", raw, None, "dedent to a level that is not open")
        parent = stack[-1][0]
        node = builder.node(parent, raw, "".join(leading))
        leading.clear()
        builder.add(parent, node, raw)
        previous = node
        too_deep = False
    builder.judge_repeats()
    diagnostics = sorted(errors + builder.diagnostics, key=lambda d: (d.line, d.column))
    diagnostics = [d.at(file) for d in diagnostics]
    if any(d.severity == "error" for d in diagnostics):
        raise ConfError(diagnostics)
    del endings[""]
    newline = "\r\n" if endings["\r\n"] > endings["\n"] else "\n"
    config = Config(root, tail="".join(leading), bom=bom, newline=newline, indent_unit=unit or 2, file=file)
    config.warnings = tuple(diagnostics)
    (rules or default_rules()).classify(config)
    return config
