"""What really differs between two backups: the typed trees compared by identity.

Entries are matched by :attr:`~confmerge.tree.Node.identity` and compared in
normal form, so spelling, layout, comments, the header and the order of
unordered entries never show. The order of ``rule`` sections is configuration:
the rules off a longest common subsequence of the two orders are reported as
moved, the fewest moves that explain the new order.

The engine is pure: two :class:`~confmerge.tree.Config` in, a :class:`Diff`
of frozen :class:`Change` values out. Printing is the CLI's job
(``confmerge.cli.diff``). ``docs/diff.md`` explains the choices and their cost.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from enum import StrEnum
from typing import Hashable, Iterator, Sequence

from .rules import statement_class
from .schema import ORDERED_SECTIONS, Element, Field, Literal, Optional
from .tree import Config, Identity, MergeClass, Node, quote
from .types import show

SEPARATOR = " / "
"""Between the identities of a statement path, as in statement-level rules (``user api-admin / role``)."""

CLASS_ORDER = (MergeClass.CLUSTER, MergeClass.SERVER, MergeClass.UNCLASSIFIED)
"""What the operator has to decide first: cluster-wide differences are the ones a merge unifies."""


class Op(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    MOVED = "moved"


class Scope(StrEnum):
    """Which classes of difference count: ``all`` includes unclassified content."""

    ALL = "all"
    CLUSTER = "cluster"
    SERVER = "server"

    def includes(self, merge_class: MergeClass) -> bool:
        return self is Scope.ALL or merge_class.value == self.value


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of a changed statement, normal forms on each side (``None``: an optional part absent)."""

    name: str
    old: Hashable
    new: Hashable


@dataclass(frozen=True, slots=True)
class Change:
    """One difference, with the nodes it was found on (``None`` on the side that lacks the entry).

    ``path`` is the statement's place inside ``section``: the identities from
    the section down to the statement, empty when the change is the section
    itself (added, removed, a single section's value, a moved rule).
    """

    op: Op
    section: Identity
    path: tuple[Identity, ...]
    merge_class: MergeClass
    old: Node | None
    new: Node | None
    fields: tuple[FieldChange, ...] = ()
    old_position: int | None = None
    new_position: int | None = None

    @property
    def statement(self) -> str | None:
        """The statement path as text (``user api-admin / role``), ``None`` for the section itself."""
        return SEPARATOR.join(map(str, self.path)) or None

    @property
    def old_line(self) -> int | None:
        return self.old.line if self.old is not None else None

    @property
    def new_line(self) -> int | None:
        return self.new.line if self.new is not None else None


@dataclass(frozen=True, slots=True)
class Diff:
    """The changes in scope, cluster-wide first, each class in file order; ``outside`` counts those out of scope."""

    old_file: str
    new_file: str
    scope: Scope
    changes: tuple[Change, ...]
    outside: int = 0

    def __bool__(self) -> bool:
        return bool(self.changes)

    @property
    def counts(self) -> dict[MergeClass, int]:
        counts = dict.fromkeys(CLASS_ORDER, 0)
        for change in self.changes:
            counts[change.merge_class] += 1
        return counts


def diff(old: Config, new: Config, scope: Scope = Scope.ALL) -> Diff:
    """Every difference between ``old`` and ``new`` in normal form, filtered to ``scope``."""
    found: list[Change] = []
    _compare(old.root, new.root, None, (), MergeClass.UNCLASSIFIED, found, rule_moves(old, new))
    rank = {merge_class: k for k, merge_class in enumerate(CLASS_ORDER)}
    found.sort(key=lambda change: rank[change.merge_class])
    kept = tuple(change for change in found if scope.includes(change.merge_class))
    return Diff(old.file, new.file, scope, kept, len(found) - len(kept))


def _compare(old: Node, new: Node, section: Identity | None, path: tuple[Identity, ...], inherited: MergeClass,
             found: list[Change], moves: dict[Identity, tuple[int, int]]) -> None:
    """The entries of two blocks with the same identity (at the top, the two roots), matched by identity, recursively."""
    if not moves and _same_children(old, new):
        return
    for identity, a, b in _pairs(old, new):
        where_section, where = (identity, ()) if section is None else (section, (*path, identity))
        if a is None:
            assert b is not None
            found.append(Change(Op.ADDED, where_section, where, statement_class(b, new, inherited), None, b))
        elif b is None:
            found.append(Change(Op.REMOVED, where_section, where, statement_class(a, old, inherited), a, None))
        else:
            merge_class = statement_class(b, new, inherited)
            if identity in moves:
                found.append(Change(Op.MOVED, where_section, where, merge_class, a, b, (), *moves[identity]))
            if not a.same_value(b):
                found.append(Change(Op.CHANGED, where_section, where, merge_class, a, b, field_changes(a, b)))
            if a.children or b.children:
                _compare(a, b, where_section, where, merge_class, found, {})


def _same_children(a: Node, b: Node) -> bool:
    """The fast path: the same entries with the same values in the same order (most blocks of two similar backups)."""
    x, y = a.children, b.children
    if len(x) != len(y):
        return False
    for p, q in zip(x, y):
        if p.identity != q.identity or p.values != q.values:
            return False
        if (p.children or q.children) and not _same_children(p, q):
            return False
    return True


def _pairs(old: Node, new: Node) -> Iterator[tuple[Identity, Node | None, Node | None]]:
    """The entries of both blocks by identity, in the new file's order; an entry
    only in the old file comes after the entry that preceded it there."""
    old_index, new_index = old.index(), new.index()
    removed_after: dict[Identity | None, list[Node]] = {}
    anchor: Identity | None = None
    for node in old.entries:
        if node.identity in new_index:
            anchor = node.identity
        else:
            removed_after.setdefault(anchor, []).append(node)
    for node in removed_after.get(None, ()):
        yield node.identity, node, None
    for node in new.entries:
        yield node.identity, old_index.get(node.identity), node
        for gone in removed_after.get(node.identity, ()):
            yield gone.identity, gone, None


def field_changes(old: Node, new: Node) -> tuple[FieldChange, ...]:
    """The fields whose normal forms differ (none for generic content, which compares by its words)."""
    if old.kind is None or new.kind is None:
        return ()
    return tuple(
        FieldChange(name, a, b) for name, a, b in zip(old.kind.fields, old.values, new.values) if a != b
    )


# ---------------------------------------------------------------------------
# Rule order


def rule_moves(old: Config, new: Config) -> dict[Identity, tuple[int, int]]:
    """The ordered sections (rules) that moved, each with its 1-based position among
    its kind in the old and the new file: those off a longest common subsequence."""
    moves: dict[Identity, tuple[int, int]] = {}
    for keyword in ORDERED_SECTIONS:
        old_order, new_order = _ordered(old, keyword), _ordered(new, keyword)
        old_position = {identity: k for k, identity in enumerate(old_order, 1)}
        new_position = {identity: k for k, identity in enumerate(new_order, 1)}
        common = [identity for identity in old_order if identity in new_position]
        rank = {identity: k for k, identity in enumerate(i for i in new_order if i in old_position)}
        stay = longest_increasing([rank[identity] for identity in common])
        for k, identity in enumerate(common):
            if k not in stay:
                moves[identity] = (old_position[identity], new_position[identity])
    return moves


def _ordered(config: Config, keyword: str) -> list[Identity]:
    return [s.identity for s in config.root.entries if s.kind is not None and s.kind.keyword == keyword]


def longest_increasing(values: Sequence[int]) -> set[int]:
    """Indexes of a longest strictly increasing subsequence of ``values`` (patience sorting, O(n log n))."""
    tails: list[int] = []
    tail_values: list[int] = []
    previous = [-1] * len(values)
    for i, value in enumerate(values):
        k = bisect_left(tail_values, value)
        if k:
            previous[i] = tails[k - 1]
        if k == len(tails):
            tails.append(i)
            tail_values.append(value)
        else:
            tails[k] = i
            tail_values[k] = value
    keep: set[int] = set()
    i = tails[-1] if tails else -1
    while i != -1:
        keep.add(i)
        i = previous[i]
    return keep


# ---------------------------------------------------------------------------
# Normal form as text


def statement_text(node: Node) -> str:
    """The statement in normal form as the format writes it (``downlink 100M``, ``range sat,sun 12:00-24:00``)."""
    if node.kind is None:
        return " ".join(quote(word) for word in node.words)
    return " ".join(_words(node.kind.elements, iter(node.values)))


def _words(elements: Sequence[Element], values: Iterator[Hashable]) -> Iterator[str]:
    for element in elements:
        if isinstance(element, Literal):
            yield element.word
        elif isinstance(element, Field):
            yield quote(show(next(values)))
        elif isinstance(element, Optional):
            inner = element.elements
            if any(isinstance(e, Field) for e in inner):
                group = [next(values) for e in inner if isinstance(e, Field)]
                if group[0] is not None:
                    yield from _words(inner, iter(group))
            elif next(values):
                yield from (e.word for e in inner if isinstance(e, Literal))


def entry_text(node: Node, indent: str = "  ") -> str:
    """The entry in normal form with its block, one statement a line, ``indent`` a level deeper each."""
    lines: list[str] = []

    def emit(entry: Node, depth: int) -> None:
        lines.append(indent * depth + statement_text(entry))
        for child in entry.entries:
            emit(child, depth + 1)

    emit(node, 0)
    return "\n".join(lines)
