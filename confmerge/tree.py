"""The typed tree of a backup: sections and statements with their source text.

A :class:`Node` is one statement line (a section is a top-level node). It
holds the typed view that diff and merge read (kind, normal-form values,
identity, merge class) beside the source that rendering writes back (its text,
line ending and the comment and blank lines before it), so an untouched tree
renders to its input byte for byte and an edit touches only its own lines.
"""

from __future__ import annotations

import gc
import re
from contextlib import contextmanager
from enum import StrEnum
from typing import Hashable, Iterator, cast

from .diagnostics import Diagnostic
from .schema import ROOT, Kind
from .types import show


class MergeClass(StrEnum):
    CLUSTER = "cluster"
    SERVER = "server"
    UNCLASSIFIED = "unclassified"

    @property
    def label(self) -> str:
        return {"cluster": "cluster-wide", "server": "server-specific", "unclassified": "unclassified"}[self.value]


class Identity(tuple):
    """What makes an entry the same entry in another file.

    The keyword, then the normal-form values the schema names as identity
    (``("policy rate", "plan-100M")``, ``("server", "8.8.8.8")``). A generic
    node's identity is ``("", *words)``: it compares by its words.
    """

    __slots__ = ()

    @property
    def generic(self) -> bool:
        return self[0] == ""

    def __str__(self) -> str:
        """As the line writes it: a generic node's words quoted where they must be, so that a
        quoted ``"policy rate"`` never reads (or is classified) as the keywords ``policy rate``."""
        if self.generic:
            return " ".join(quote(part) for part in self[1:])
        return " ".join(show(part) for part in self if part != "")

    def __repr__(self) -> str:
        return f"Identity({str(self)!r})"


class Node:
    """One statement line and the block under it."""

    __slots__ = (
        "kind", "words", "values", "identity", "children", "line", "text", "ending",
        "leading", "indent", "repeated", "merge_class", "_index",
    )

    def __init__(
        self,
        kind: Kind | None,
        words: tuple[str, ...],
        values: tuple[Hashable, ...],
        identity: Identity,
        *,
        line: int = 0,
        text: str = "",
        ending: str = "\n",
        leading: str = "",
        indent: int = 0,
    ) -> None:
        self.kind = kind
        self.words = words
        self.values = values
        self.identity = identity
        self.children: list[Node] = []
        self.line = line
        self.text = text
        self.ending = ending
        self.leading = leading
        self.indent = indent
        self.repeated = False
        self.merge_class: MergeClass | None = None
        self._index: dict[Identity, Node] | None = None

    @property
    def generic(self) -> bool:
        return self.kind is None

    @property
    def keyword(self) -> str:
        return self.kind.keyword if self.kind is not None else self.words[0]

    def value(self, name: str) -> Hashable:
        """A field's normal form (``None`` for an absent optional field)."""
        assert self.kind is not None, "generic nodes have words, not fields"
        return self.values[self.kind.fields.index(name)]

    @property
    def fields(self) -> dict[str, Hashable]:
        return dict(zip(self.kind.fields, self.values)) if self.kind is not None else {}

    @property
    def entries(self) -> Iterator["Node"]:
        """Children that count: a repeated line counts once."""
        return (child for child in self.children if not child.repeated)

    def index(self) -> dict[Identity, "Node"]:
        """Children by identity (built once, kept current by :meth:`append` and :meth:`remove`)."""
        if self._index is None:
            self._index = {child.identity: child for child in self.children if not child.repeated}
        return self._index

    def get(self, identity: Identity) -> "Node | None":
        return self.index().get(identity)

    def insert(self, position: int, child: "Node") -> None:
        self.children.insert(position, child)
        if self._index is not None:
            self._index[child.identity] = child

    def append(self, child: "Node") -> None:
        self.insert(len(self.children), child)

    def set_children(self, children: list["Node"]) -> None:
        """The whole block at once (its index rebuilt when next asked for)."""
        self.children = children
        self._index = None

    def remove(self, child: "Node") -> None:
        self.children.remove(child)
        if self._index is not None and self._index.get(child.identity) is child:
            del self._index[child.identity]

    def walk(self) -> Iterator["Node"]:
        """This node's descendants, depth first, in file order."""
        for child in self.children:
            yield child
            yield from child.walk()

    def same_value(self, other: "Node") -> bool:
        """Equal in normal form: the statement itself, not its block."""
        if self.kind is None or other.kind is None:
            return self.kind is other.kind and self.words == other.words
        return self.kind is other.kind and self.values == other.values

    def same_tree(self, other: "Node") -> bool:
        """Equal in normal form: the line and its whole block, order aside."""
        if self is other:  # a tree read again only where it changed shares the rest (cluster_tree)
            return True
        if not self.same_value(other):
            return False
        left, right = self.children, other.children
        if not left and not right:
            return True
        entries = list(self.entries), list(other.entries)
        if len(entries[0]) == len(entries[1]) and all(x.identity == y.identity for x, y in zip(*entries)):
            return all(x.same_tree(y) for x, y in zip(*entries))  # one call per level: deep blocks stay linear
        left_index, right_index = self.index(), other.index()
        if left_index.keys() != right_index.keys():
            return False
        return all(x.same_tree(right_index[key]) for key, x in left_index.items())

    def clone(self) -> "Node":
        """A copy of this node and its block that can be edited without touching this one (values are shared)."""
        copy = Node.__new__(Node)
        copy.kind = self.kind
        copy.words = self.words
        copy.values = self.values
        copy.identity = self.identity
        copy.line = self.line
        copy.text = self.text
        copy.ending = self.ending
        copy.leading = self.leading
        copy.indent = self.indent
        copy.repeated = self.repeated
        copy.merge_class = self.merge_class
        copy._index = None
        copy.children = [child.clone() for child in self.children] if self.children else []
        return copy

    def __repr__(self) -> str:
        return f"<Node {self.identity} line {self.line}>"


LEADING_BLANKS = re.compile(r"\A(?:[ \t]*\r?\n)+")
"""The blank lines that open a node's ``leading`` text (its comments follow them)."""

_QUOTE_NEEDED = re.compile(r'[\s"\\]|^$|^#')


@contextmanager
def collector_paused() -> Iterator[None]:
    """Building or copying a tree allocates a node per line and frees none; the cyclic
    collector would rescan the growing heap again and again (half the parse time of a
    large backup). Trees hold no cycles, so reference counting alone frees them. The
    collector is left as it was found: a library call must not freeze a long-lived
    caller's objects or keep its garbage."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def quote(word: str) -> str:
    """A word as the format writes it: bare when it can be, else quoted."""
    if not _QUOTE_NEEDED.search(word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Config:
    """A whole backup: the sections, and what surrounds them in the file."""

    __slots__ = ("root", "tail", "bom", "newline", "indent_unit", "file", "warnings")

    def __init__(
        self,
        root: Node,
        *,
        tail: str = "",
        bom: bool = False,
        newline: str = "\n",
        indent_unit: int = 2,
        file: str = "<input>",
    ) -> None:
        self.root = root
        self.tail = tail
        self.bom = bom
        self.newline = newline
        self.indent_unit = indent_unit
        self.file = file
        self.warnings: tuple[Diagnostic, ...] = ()

    @classmethod
    def empty(cls, file: str = "<input>") -> "Config":
        return cls(Node(ROOT, (), (), Identity(("",))), file=file)

    @property
    def sections(self) -> list[Node]:
        return self.root.children

    def section(self, *key: Hashable) -> Node | None:
        return self.root.get(Identity(key))

    @property
    def metadata(self) -> dict[str, str]:
        """The header: ``# key: value`` comment lines at the top of the file.

        Lines end at LF (or CRLF) only, as everywhere in the format: a line
        separator or form feed in a comment is part of the comment."""
        head = self.sections[0].leading if self.sections else self.tail
        meta: dict[str, str] = {}
        for line in head.split("\n"):
            stripped = line.removesuffix("\r").strip(" ")
            if not stripped:
                continue
            if not stripped.startswith("#"):
                break
            key, colon, value = stripped[1:].partition(":")
            key = key.strip(" ")
            if colon and key and " " not in key:
                meta[key] = value.strip(" ")
        return meta

    @property
    def bqn_id(self) -> int | None:
        section = self.section("bqn-id")
        return cast(int, section.value("id")) if section is not None and section.kind is not None else None

    @property
    def hostname(self) -> str | None:
        section = self.section("hostname")
        return cast(str, section.value("name")) if section is not None and section.kind is not None else None

    def new_node(
        self, kind: Kind | None, words: tuple[str, ...], values: tuple[Hashable, ...], identity: Identity, depth: int
    ) -> Node:
        """A node written in this file's own style: its indentation unit and line ending."""
        indent = depth * self.indent_unit
        text = " " * indent + " ".join(quote(word) for word in words)
        return Node(kind, words, values, identity, text=text, ending=self.newline, indent=indent)
