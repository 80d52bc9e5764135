"""Unify a cluster's backups: :func:`merge`, :func:`adopt` and :func:`cluster_part`.

The engine is pure: trees in, new trees and a report out. It works in two
steps. *Deciding* compares the inputs entry by entry (an entry is a section or
a statement, matched across files by its identity) and says, for each
cluster-wide entry, whether the outputs have it and which input's line they
take. *Applying* edits a copy of each input to match, touching only the lines
that change: an existing line stays byte for byte, a new one is written in the
output's own indentation and line ending where it belongs (a statement after
its last sibling of the same keyword, a section after the section it follows
in the input it came from, a rule where the one rule order puts it). Then what
an added entry names is brought along, and every output is checked.

Server-specific and unclassified content is never decided: each output keeps
its own. A statement whose class a rule sets overrides its section's class.
"""

from __future__ import annotations

import gc
import hashlib
import re
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from itertools import combinations
from typing import Callable, Iterator, Mapping, Sequence, overload

from .check import references, validate
from .diff import longest_increasing, statement_class, statement_text
from .diagnostics import ConfError, Diagnostic
from .schema import ORDERED_SECTIONS, ROOT
from .resolve import BASE, Choice, ConflictKey
from .tree import Config, Identity, MergeClass, Node

CLUSTER = MergeClass.CLUSTER
UNCLASSIFIED = MergeClass.UNCLASSIFIED


class Action(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    MOVED = "moved"


@dataclass(frozen=True, slots=True)
class Conflict:
    """An entry the inputs disagree on, and what the outputs got.

    ``values`` holds each input's line as written, in input order (``None``:
    that input lacks the entry); ``chosen`` is the line every output has
    (``None``: removed). The primary's value wins, else the next input by
    ``bqn-id``. A rule-order conflict has ``statement`` ``"order"`` and values
    such as ``"after rule business"`` or ``"first"``. ``base`` is the base's
    line (or position) in a three-way merge, ``None`` where it has none.
    """

    section: str
    statement: str | None
    values: tuple[str | None, ...]
    chosen: str | None
    base: str | None = None


@dataclass(frozen=True, slots=True)
class Edit:
    """One change to one output, and why it was made.

    ``line`` is the line as the output now has it (the removed line for a
    removal, the new position for a move: ``"after rule x"`` or ``"first"``);
    ``before`` is the replaced line of a change. ``reason``: ``union`` (another
    input has it), ``three-way`` (changed since the base), ``conflict`` (the
    primary's value), ``rule order``, ``referenced by ...``, ``cluster`` (adopt).
    """

    action: Action
    section: str
    statement: str | None
    line: str
    before: str | None = None
    reason: str = "union"


@dataclass(frozen=True, slots=True)
class Unclassified:
    """Content no rule classifies, kept as each input has it (listed so an operator can classify it)."""

    input: int
    section: str
    statement: str | None
    line: int


@dataclass(frozen=True, slots=True)
class MergeResult:
    """The unified outputs (one per input, in input order) and what it took to get them."""

    outputs: tuple[Config, ...]
    primary: int
    conflicts: tuple[Conflict, ...]
    edits: tuple[tuple[Edit, ...], ...]
    unclassified: tuple[Unclassified, ...]

    def _only(self, action: Action) -> tuple[tuple[Edit, ...], ...]:
        return tuple(tuple(edit for edit in edits if edit.action is action) for edits in self.edits)

    @property
    def added(self) -> tuple[tuple[Edit, ...], ...]:
        """Per output, the entries it gained."""
        return self._only(Action.ADDED)

    @property
    def removed(self) -> tuple[tuple[Edit, ...], ...]:
        return self._only(Action.REMOVED)

    @property
    def changed(self) -> tuple[tuple[Edit, ...], ...]:
        return self._only(Action.CHANGED)

    @property
    def moved(self) -> tuple[tuple[Edit, ...], ...]:
        return self._only(Action.MOVED)


# ---------------------------------------------------------------------------
# Public API


def cluster_part(config: Config) -> str:
    """The cluster-wide part of a backup as ``.conf`` text: what the primary distributes.

    Cluster-wide sections in file order with their comments, without the
    header and without the statements inside them that are not cluster-wide;
    a server-specific section that holds cluster-wide statements (by a
    statement-level rule) appears with those statements only. The same input
    text always gives the same output text.
    """
    out: list[str] = []
    first = config.sections[0] if config.sections else None
    for section in config.root.entries:
        cls = section.merge_class or UNCLASSIFIED
        if cls is CLUSTER or _has_cluster_inside(section):
            _emit_cluster(section, cls, out, config.newline, header=section is first)
    text = _LEADING_BLANKS.sub("", "".join(out))
    return text


def cluster_digest(config: Config) -> str:
    """sha256 of the cluster-wide content in normal form: what servers compare to know they are in sync.

    Two backups have one digest exactly when their cluster-wide entries are
    equal in normal form: comments, formatting, line endings and the order of
    unordered entries do not count; the order of rules does.
    """
    def canonical(node: Node, parent: Node, inherited: MergeClass) -> str:
        cls = statement_class(node, parent, inherited)
        inside = sorted(
            canonical(child, node, cls) for child in node.entries
            if statement_class(child, node, cls) is CLUSTER or _has_cluster_inside(child)
        )
        return statement_text(node) + ("{" + "\x1f".join(inside) + "}" if inside else "")

    unordered: list[str] = []
    ordered: list[str] = []
    for section in config.root.entries:
        if section.merge_class is CLUSTER or _has_cluster_inside(section):
            text = canonical(section, config.root, UNCLASSIFIED)
            (ordered if _ordered(section) else unordered).append(text)
    payload = "\x1e".join(sorted(unordered)) + "\x1d" + "\x1e".join(ordered)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def adopt(server: Config, cluster: Config) -> Config:
    """``server`` with its cluster-wide content replaced by ``cluster``'s: what a secondary applies.

    Cluster-wide entries the cluster lacks are removed, the ones it has are
    added or changed, and the rules take the cluster's order; server-specific
    and unclassified content stays byte for byte, and so does every entry that
    is equal in normal form. ``cluster`` may be :func:`cluster_part` text
    parsed, or a whole backup (only its cluster-wide content is read). Raises
    :class:`ConfError` if the result would not pass ``validate``.
    """
    with _collector_paused():
        output = _Output(server, {})
        output.apply(_decide_adoption(server.root, cluster.root, UNCLASSIFIED, cluster), None, None, (), True)
        output.order([s.identity for s in cluster.root.entries if _ordered(s)], "cluster")
        output.close_references(lambda target: _lookup((cluster, server), target))
        output.finish()
        return output.config


def merge(configs: Sequence[Config], primary: int | None = None, base: Config | None = None,
          resolutions: Mapping[ConflictKey, Choice] | None = None) -> MergeResult:
    """Unify the cluster-wide content of ``configs``; one output per input, in input order.

    ``primary`` is an index into ``configs``; by default the input with the
    lowest ``bqn-id`` (none: 0), and a tie raises :class:`ConfError`. Without
    ``base``, entries are united and differing values resolved by priority
    (the primary, then by ``bqn-id``). With ``base`` (the last unified
    configuration or any common ancestor), a change or removal since the base
    made on some inputs and not on others is taken; changes that disagree are
    conflicts, resolved by priority.

    ``resolutions`` overrides that priority per conflict: a conflict's
    ``(section, statement)`` mapped to the input (an index) whose state of the
    entry every output takes, or :data:`~confmerge.resolve.BASE` for the
    base's; a rule-order conflict takes that input's (or the base's) rule
    order. A choice the conflict cannot take raises :class:`ConfError`.
    """
    if len(configs) < 2:
        raise ValueError("merge needs two configurations or more")
    if primary is None:
        primary = choose_primary(configs)
    elif not 0 <= primary < len(configs):
        raise ValueError(f"primary {primary} is not an input index")
    with _collector_paused():
        return _Merge(configs, primary, base, resolutions or {}).run()


def choose_primary(configs: Sequence[Config]) -> int:
    """The input with the lowest ``bqn-id`` (a backup without one has 0, as a new BQN does).

    Two inputs sharing the lowest id raise :class:`ConfError` at their
    ``bqn-id`` lines: the guide's election cannot tell them apart.
    """
    ids = [config.bqn_id or 0 for config in configs]
    lowest = min(ids)
    tied = [i for i, value in enumerate(ids) if value == lowest]
    if len(tied) == 1:
        return tied[0]
    names = ", ".join(configs[i].file for i in tied)
    problems = []
    for i in tied:
        section = configs[i].section("bqn-id")
        line, column = (section.line, section.indent + 1) if section is not None else (1, 1)
        problems.append(Diagnostic(
            "error", line, column,
            f"bqn-id {lowest} is the lowest and is shared by {names}; name the primary (--primary FILE)",
            configs[i].file,
        ))
    raise ConfError(problems)


# ---------------------------------------------------------------------------
# Classes and comparisons


def _has_cluster_inside(node: Node) -> bool:
    stack = list(node.children)
    while stack:
        child = stack.pop()
        if child.merge_class is CLUSTER:
            return True
        stack.extend(child.children)
    return False


def _ordered(section: Node) -> bool:
    """A cluster-wide section whose order among its kind is configuration (rules: first match wins)."""
    return section.kind is not None and section.kind.keyword in ORDERED_SECTIONS and section.merge_class is CLUSTER


def _same_tree(a: Node, b: Node) -> bool:
    """Equal in normal form: the line and its whole block, order aside."""
    if not a.same_value(b):
        return False
    left, right = a.children, b.children
    if not left and not right:
        return True
    if len(left) == len(right) and all(x.identity == y.identity and _same_tree(x, y) for x, y in zip(left, right)):
        return True
    left_index, right_index = a.index(), b.index()
    if left_index.keys() != right_index.keys():
        return False
    return all(_same_tree(x, right_index[key]) for key, x in left_index.items())


def _cluster_content(node: Node, parent: Node, inherited: MergeClass) -> tuple:
    """The cluster-wide content of an entry, comparable across files (three-way: was it touched?)."""
    cls = statement_class(node, parent, inherited)
    own = (node.kind, node.values if node.kind is not None else node.words)
    inside = frozenset(
        _cluster_content(child, node, cls) for child in node.entries
        if statement_class(child, node, cls) is CLUSTER or _has_cluster_inside(child)
    )
    return own, inside


@overload
def _shown(node: Node) -> str: ...
@overload
def _shown(node: None) -> None: ...
@overload
def _shown(node: Node | None) -> str | None: ...
def _shown(node: Node | None) -> str | None:
    return node.text.strip(" ") if node is not None else None


# ---------------------------------------------------------------------------
# Deciding


class _Decision:
    """What the outputs get for one entry: present or not, whose line, and what its block gets.

    A container decision is for a non-cluster entry that holds cluster-wide
    statements: it is never created or removed, only entered.
    """

    __slots__ = ("identity", "present", "source", "origin", "children", "container", "reason")

    def __init__(self, identity: Identity, present: bool, source: Node | None = None, origin: Config | None = None,
                 children: list["_Decision"] | None = None, container: bool = False, reason: str = "union") -> None:
        self.identity = identity
        self.present = present
        self.source = source
        self.origin = origin
        self.children = children
        self.container = container
        self.reason = reason


def _decide_adoption(server: Node | None, cluster: Node | None, inherited: MergeClass, origin: Config) -> list[_Decision]:
    decisions: list[_Decision] = []
    server_index = server.index() if server is not None else {}
    cluster_index = cluster.index() if cluster is not None else {}
    for identity in {**dict.fromkeys(server_index), **dict.fromkeys(cluster_index)}:
        mine, theirs = server_index.get(identity), cluster_index.get(identity)
        if mine is not None and server is not None:
            cls = statement_class(mine, server, inherited)
        else:
            assert theirs is not None and cluster is not None
            cls = statement_class(theirs, cluster, inherited)
        if cls is CLUSTER:
            if theirs is None:
                decisions.append(_Decision(identity, False, reason="cluster"))
            elif mine is None or not _same_tree(mine, theirs):
                children = None
                if theirs.children or (mine is not None and mine.children):
                    children = _decide_adoption(mine, theirs, cls, origin)
                decisions.append(_Decision(identity, True, theirs, origin, children, reason="cluster"))
        elif mine is not None and (_has_cluster_inside(mine) or (theirs is not None and _has_cluster_inside(theirs))):
            children = _decide_adoption(mine, theirs, cls, origin)
            if children:
                decisions.append(_Decision(identity, True, mine, None, children, container=True))
    return decisions


class _Merge:
    def __init__(self, configs: Sequence[Config], primary: int, base: Config | None,
                 resolutions: Mapping[ConflictKey, Choice]) -> None:
        self.configs = list(configs)
        self.resolutions = resolutions
        self.count = len(configs)
        self.primary = primary
        self.base = base
        others = sorted((i for i in range(self.count) if i != primary), key=lambda i: (configs[i].bqn_id or 0, i))
        self.priority = [primary, *others]
        self.rank = {number: k for k, number in enumerate(self.priority)}
        self.conflicts: list[Conflict] = []

    def run(self) -> MergeResult:
        roots = [config.root for config in self.configs]
        decisions = self.decide(roots, self.base.root if self.base is not None else None, UNCLASSIFIED, None, ())
        self.keep_referenced(decisions)
        absent = {d.identity for d in decisions if not d.present}
        present_rules = {s.identity for config in self.configs for s in config.root.entries if _ordered(s)} - absent
        order, moves = self.rule_order(present_rules)
        positions: dict[int, dict[int, int]] = {}
        outputs = []
        for config in self.configs:
            output = _Output(config, positions)
            output.apply(decisions, None, None, (), True)
            output.order(order, moves)
            output.close_references(lambda target: _lookup([self.configs[i] for i in self.priority], target))
            output.finish()
            outputs.append(output)
        unclassified = tuple(item for number, config in enumerate(self.configs) for item in _unclassified(config, number))
        return MergeResult(
            outputs=tuple(output.config for output in outputs),
            primary=self.primary,
            conflicts=tuple(self.conflicts),
            edits=tuple(tuple(output.edits) for output in outputs),
            unclassified=unclassified,
        )

    def first(self, candidates: Sequence[int]) -> int:
        return min(candidates, key=self.rank.__getitem__)

    def decide(self, parents: Sequence[Node | None], base: Node | None, inherited: MergeClass,
               section: str | None, path: tuple[str, ...]) -> list[_Decision]:
        """Decisions for the entries of one block; ``parents`` holds each input's block or None.

        Only inputs that have the block vote on its entries: an output that
        gains the block gains what was decided, not the removal of everything.
        """
        voters = [i for i in self.priority if parents[i] is not None]
        complete = len(voters) == self.count
        indexes = [block.index() if block is not None else None for block in parents]
        voting = {i: index for i in voters if (index := indexes[i]) is not None}
        base_index = base.index() if base is not None else None
        found: dict[Identity, tuple[Node, Node]] = {}
        for i in voters:
            parent_block = parents[i]
            assert parent_block is not None
            for identity, node in voting[i].items():
                if identity not in found:
                    found[identity] = (node, parent_block)
        if section is None:
            woven = _weave(list(voting[voters[0]]), [list(voting[i]) for i in voters[1:]])
            found = {identity: found[identity] for identity in woven}
        decisions: list[_Decision] = []
        for identity, (example, parent) in found.items():
            nodes = [index.get(identity) if index is not None else None for index in indexes]
            cls = statement_class(example, parent, inherited)
            old = base_index.get(identity) if base_index is not None else None
            if cls is CLUSTER and complete and all(
                    node is not None and (node is example or _same_tree(example, node)) for node in nodes):
                continue
            here = str(identity) if section is None else section
            where = () if section is None else (*path, str(identity))
            if cls is not CLUSTER:
                if any(node is not None and _has_cluster_inside(node) for node in nodes):
                    children = self.decide(nodes, old, cls, here, where)
                    if children:
                        decisions.append(_Decision(identity, True, example, None, children, container=True))
                continue
            holders = [i for i in voters if nodes[i] is not None]
            decisions.append(self.entry(identity, nodes, voters, holders, old, parent, inherited, cls, here, where))
        return decisions

    def keep_referenced(self, decisions: list[_Decision]) -> None:
        """Undo the removals that would leave a reference dangling, in the decisions, so every output keeps the same entry.

        A three-way removal (or a removal that won a conflict) of a section
        that something kept still names is not made.
        """
        at = {d.identity: k for k, d in enumerate(decisions)}
        pending: list[tuple[Identity, str]] = []
        for config in self.configs:
            for section in config.root.entries:
                k = at.get(section.identity)
                if k is None:
                    pending.extend((target, str(section.identity)) for _, target in references(section))
                elif decisions[k].present:
                    pending.extend((target, str(section.identity)) for target in _decided_references(decisions[k], section))
        while pending:
            target, owner = pending.pop()
            k = at.get(target)
            if k is None or decisions[k].present:
                continue
            nodes = [config.root.get(target) for config in self.configs]
            holders = [i for i in self.priority if nodes[i] is not None]
            if not holders:
                continue
            old = self.base.root.get(target) if self.base is not None else None
            example = nodes[holders[0]]
            assert example is not None
            kept = self.entry(target, nodes, list(self.priority), holders, old, self.configs[holders[0]].root,
                              UNCLASSIFIED, example.merge_class or UNCLASSIFIED, str(target), (),
                              keep=f"referenced by {owner}")
            decisions[k] = kept
            self.conflicts = [
                Conflict(c.section, c.statement, c.values, _shown(kept.source), c.base)
                if c.section == str(target) and c.statement is None and c.chosen is None else c
                for c in self.conflicts
            ]
            for holder in (node for node in nodes if node is not None):
                pending.extend((t, str(target)) for t in _decided_references(kept, holder))

    def entry(self, identity: Identity, nodes: list[Node | None], voters: list[int], holders: list[int],
              old: Node | None, parent: Node, inherited: MergeClass, cls: MergeClass,
              section: str, where: tuple[str, ...], keep: str | None = None) -> _Decision:
        """The decision for one cluster-wide entry: is it kept (three-way removals), and whose line wins.

        ``keep`` (the reason) skips the removal question: the entry is named by one that stays.
        """
        statement = " / ".join(where) or None
        reason = keep or "union"
        if keep is None and old is not None and len(holders) < len(voters):
            removers = [i for i in voters if nodes[i] is None]
            before = _cluster_content(old, parent, inherited)
            modifiers = [i for i in holders if _cluster_content(_held(nodes, i), parent, inherited) != before]
            if not modifiers:
                return _Decision(identity, False, reason="three-way")
            decider = self.primary if self.primary in voters else self.first(removers + modifiers)
            reason = "conflict"
            choice = self.choice((section, statement), voters, old)
            chosen = old if choice == BASE else nodes[decider if choice is None else choice]
            self.conflicts.append(Conflict(section, statement, tuple(map(_shown, nodes)), _shown(chosen), _shown(old)))
            if chosen is None:
                return _Decision(identity, False, reason=reason)
            if choice == BASE:
                return self.taken(identity, nodes, old, cls, section, where, reason)
        source = holders[0]
        first = _held(nodes, source)
        if not all(first.same_value(_held(nodes, i)) for i in holders[1:]):
            changers = [i for i in holders if old is None or not _held(nodes, i).same_value(old)]
            if old is not None and all(_held(nodes, changers[0]).same_value(_held(nodes, i)) for i in changers):
                source = changers[0]
                if reason != "conflict":
                    reason = "three-way"
            else:
                choice = self.choice((section, statement), holders, old)
                reason = "conflict"
                source = self.primary if self.primary in holders else changers[0]
                if choice == BASE:
                    assert old is not None  # self.choice refuses the base where it lacks the entry
                    self.conflicts.append(Conflict(section, statement, tuple(map(_shown, nodes)), _shown(old),
                                                   _shown(old)))
                    return self.taken(identity, nodes, old, cls, section, where, reason)
                source = source if choice is None else choice
                self.conflicts.append(Conflict(section, statement, tuple(map(_shown, nodes)), _shown(nodes[source]),
                                               _shown(old)))
        children = None
        if (old is not None and old.children) or any(_held(nodes, i).children for i in holders):
            children = self.decide(nodes, old, cls, section, where)
        return _Decision(identity, True, nodes[source], self.configs[source], children, reason=reason)

    def choice(self, key: ConflictKey, allowed: Sequence[int], old: Node | None) -> Choice | None:
        """The operator's resolution of conflict ``key``, if any; one it cannot take is a :class:`ConfError`."""
        choice = self.resolutions.get(key)
        if choice is None:
            return None
        if choice == BASE:
            if old is None:
                raise _refused(key, "the base does not have this entry")
            return choice
        if choice not in allowed:
            raise _refused(key, f"{self.configs[choice].file} has no state of this entry to take")
        return choice

    def taken(self, identity: Identity, nodes: list[Node | None], old: Node, cls: MergeClass, section: str,
              where: tuple[str, ...], reason: str) -> _Decision:
        """The base's entry, chosen by the operator: its line, and its block merged as usual."""
        assert self.base is not None
        children = self.decide(nodes, old, cls, section, where) if old.children or any(
            node is not None and node.children for node in nodes) else None
        return _Decision(identity, True, old, self.base, children, reason=reason)

    def rule_order(self, present: set[Identity]) -> tuple[list[Identity], str]:
        """The one rule order of every output, and the reason its moves get.

        The primary's order, with rules it lacks woven in after their
        neighbours in the input they come from. With a base, a reorder made on
        some inputs and not others is taken when the reorders agree.
        """
        orders = [[s.identity for s in config.root.entries if _ordered(s) and s.identity in present]
                  for config in self.configs]
        reference, taken, changed = self.primary, False, set()
        chosen = {choice for (_, statement), choice in self.resolutions.items() if statement == "order"}
        if len(chosen) > 1:
            raise ConfError([Diagnostic("error", 0, 0, "rule-order conflicts take one rule order; "
                                        "they are resolved to different ones", "<resolutions>")])
        base_order = [s.identity for s in self.base.root.entries if _ordered(s) and s.identity in present] \
            if self.base is not None else []
        if chosen:
            choice = chosen.pop()
            if choice == BASE and self.base is None:
                raise ConfError([Diagnostic("error", 0, 0, "a rule order taken from a base, without one",
                                            "<resolutions>")])
            ours = base_order if choice == BASE else orders[choice]
            order = _weave(ours, [orders[i] for i in self.priority])
            self.order_conflicts(orders, order, set(range(self.count)), False, base_order)
            return order, "conflict"
        if self.base is not None:
            reordered = [i for i in self.priority if not _consistent(orders[i], base_order)]
            changed = set(reordered)
            if reordered and all(_consistent(orders[a], orders[b]) for a, b in combinations(reordered, 2)):
                reference, taken = reordered[0], True
        order = _weave(orders[reference], [orders[i] for i in self.priority if i != reference])
        self.order_conflicts(orders, order, changed, taken, base_order)
        return order, "three-way" if taken else "rule order"

    def order_conflicts(self, orders: list[list[Identity]], order: list[Identity], changed: set[int], taken: bool,
                        base_order: list[Identity]) -> None:
        """A conflict for each rule some input has out of ``order`` (only the reordering inputs when ``taken``)."""
        rank = {identity: k for k, identity in enumerate(order)}
        misplaced: dict[Identity, None] = {}
        for i, own in enumerate(orders):
            if taken and i not in changed:
                continue
            keep = longest_increasing([rank[identity] for identity in own])
            misplaced.update((identity, None) for k, identity in enumerate(own) if k not in keep)
        for identity in sorted(misplaced, key=rank.__getitem__):
            values = tuple(_position(own, identity) if identity in own else None for own in orders)
            base = _position(base_order, identity) if identity in base_order else None
            self.conflicts.append(Conflict(str(identity), "order", values, _position(order, identity), base))


def _refused(key: ConflictKey, why: str) -> ConfError:
    where = f"{key[0]} / {key[1]}" if key[1] else key[0]
    return ConfError([Diagnostic("error", 0, 0, f"{where}: cannot take that choice: {why}", "<resolutions>")])


def _held(nodes: Sequence[Node | None], i: int) -> Node:
    """The entry of input ``i``, which holds it (a holder, by the caller's selection)."""
    node = nodes[i]
    assert node is not None
    return node


def _decided_references(decision: _Decision, node: Node) -> Iterator[Identity]:
    """What ``node``'s entry names in the outputs: its decided line, decided statements, and what no decision touches."""
    if decision.source is not None:
        yield from _line_references(decision.source)
    inside = {d.identity: d for d in decision.children or ()}
    for child in node.entries:
        d = inside.get(child.identity)
        if d is None:
            for _, target in references(child):
                yield target
        elif d.present:
            yield from _decided_references(d, child)


def _line_references(node: Node) -> Iterator[Identity]:
    kind = node.kind
    if kind is not None:
        for name, target in kind.refs.items():
            value = node.value(name)
            if value is not None:
                yield Identity((target, value))


def _position(order: list[Identity], identity: Identity) -> str:
    k = order.index(identity)
    return f"after {order[k - 1]}" if k else "first"


def _consistent(a: Sequence[Identity], b: Sequence[Identity]) -> bool:
    """The two orders agree on the rules they share."""
    common = set(a) & set(b)
    return [x for x in a if x in common] == [x for x in b if x in common]


def _weave(reference: list[Identity], others: list[list[Identity]]) -> list[Identity]:
    """``reference``, with each entry it lacks placed after the latest of the entries that precede it where it comes from.

    Positions are tuples that sort in the woven order: a reference entry is
    ``(k,)``, the n-th entry placed right after position ``p`` is ``p + (n,)``,
    and an entry with nothing before it goes first, ``(-1, n)``.
    """
    key: dict[Identity, tuple[int, ...]] = {identity: (k,) for k, identity in enumerate(reference)}
    followers: dict[tuple[int, ...], int] = {}
    for order in others:
        latest: tuple[int, ...] = (-1,)
        for identity in order:
            position = key.get(identity)
            if position is None:
                count = followers[latest] = followers.get(latest, 0) + 1
                position = key[identity] = (*latest, count)
            if position > latest:
                latest = position
    return sorted(key, key=key.__getitem__)


def _lookup(configs: Sequence[Config], target: Identity) -> tuple[Config, Node] | None:
    for config in configs:
        node = config.root.get(target)
        if node is not None:
            return config, node
    return None


def _unclassified(config: Config, number: int) -> Iterator[Unclassified]:
    for section in config.root.entries:
        cls = section.merge_class or UNCLASSIFIED
        if cls is UNCLASSIFIED:
            yield Unclassified(number, str(section.identity), None, section.line)
        elif section.children:
            yield from _unclassified_inside(section, section, cls, (), number)


def _unclassified_inside(section: Node, parent: Node, inherited: MergeClass, path: tuple[Node, ...],
                         number: int) -> Iterator[Unclassified]:
    typed = parent.kind is not None
    for child in parent.children:
        if child.repeated:
            continue
        if child.merge_class is not None:
            child_class = child.merge_class
        elif typed and child.kind is None:
            child_class = UNCLASSIFIED
        else:
            child_class = inherited
        if child_class is UNCLASSIFIED:
            where = " / ".join(str(node.identity) for node in (*path, child))
            yield Unclassified(number, str(section.identity), where, child.line)
        elif child.children:
            yield from _unclassified_inside(section, child, child_class, (*path, child), number)


# ---------------------------------------------------------------------------
# Applying


_LINE_END = re.compile(r"[ \t]*\r?\n")
_LEADING_BLANKS = re.compile(r"\A(?:[ \t]*\r?\n)+")


class _Output:
    """One output under construction from its input, copy on write.

    A section is copied when the output edits it; the others are shared with
    the input, which is never modified. Statements are inserted into their
    blocks at once; top-level sections are only planned (after which node,
    before which, or at the end) and laid out in one pass by :meth:`finish`,
    so placing many sections costs one pass.
    """

    def __init__(self, config: Config, positions: dict[int, dict[int, int]]) -> None:
        self.config = Config(Node(ROOT, (), (), Identity(("",))), tail=config.tail, bom=config.bom,
                             newline=config.newline, indent_unit=config.indent_unit, file=config.file)
        self.config.warnings = config.warnings
        self.children = list(config.root.children)
        self.owned: set[int] = set()
        self.copies: dict[int, Node] = {}
        self.slots: dict[int, int] | None = None
        self.present: dict[Identity, Node] = {c.identity: c for c in self.children if not c.repeated}
        self.removed: dict[Identity, Node] = {}
        self.moved: set[int] = set()
        self.after: dict[int, list[Node]] = {}
        self.before: dict[int, list[Node]] = {}
        self.end: list[Node] = []
        self.new_rules: list[tuple[Node, Config, Node]] = []
        self.edits: list[Edit] = []
        self.check: list[tuple[Node, str]] = []
        self.positions = positions

    # -- entries

    def apply(self, decisions: list[_Decision], parent: Node | None, section: str | None,
              path: tuple[str, ...], record: bool) -> None:
        if parent is None:
            for d in decisions:
                existing = self.present.get(d.identity)
                if (existing is not None and d.present and d.source is not None
                        and (d.children or not existing.same_value(d.source))):
                    self.own(existing)
        for d in decisions:
            identity = d.identity
            at_root = parent is None
            existing = self.present.get(identity) if parent is None else parent.get(identity)
            here = str(identity) if at_root or section is None else section
            where = () if at_root else (*path, str(identity))
            statement = " / ".join(where) or None
            if d.container:
                if existing is not None and d.children is not None:
                    self.apply(d.children, existing, here, where, record)
                continue
            if not d.present:
                if existing is not None:
                    self.remove(existing, parent)
                    if record:
                        self.edits.append(Edit(Action.REMOVED, here, statement, _shown(existing), reason=d.reason))
                continue
            source, origin = d.source, d.origin
            assert source is not None, "a present decision names its line"
            if existing is None:
                node = self.new_line(source, origin, parent)
                if parent is None:
                    assert origin is not None
                    self.place(node, origin, source)
                else:
                    _insert_statement(parent, node)
                if record:
                    self.edits.append(Edit(Action.ADDED, here, statement, _shown(node), reason=d.reason))
                    self.check.append((node, here))
                if d.children:
                    self.apply(d.children, node, here, where, False)
                continue
            if not existing.same_value(source):
                before = _shown(existing)
                self.replace_line(existing, source, parent)
                self.edits.append(Edit(Action.CHANGED, here, statement, _shown(existing), before, d.reason))
                self.check.append((existing, here))
            if d.children:
                self.apply(d.children, existing, here, where, record)

    def own(self, node: Node) -> Node:
        """This output's own copy of a top-level node, in its place, before the first edit inside it."""
        if id(node) in self.owned:
            return node
        if self.slots is None:
            self.slots = {id(child): k for k, child in enumerate(self.children)}
        copy = _clone(node)
        self.children[self.slots[id(node)]] = copy
        if self.present.get(node.identity) is node:
            self.present[node.identity] = copy
        self.owned.add(id(copy))
        return copy

    def writable(self, node: Node) -> Node:
        """A node whose leading lines layout may change: owned, or copied aside (plans still name the original)."""
        if id(node) in self.owned:
            return node
        copy = self.copies.get(id(node))
        if copy is None:
            copy = self.copies[id(node)] = _clone(node)
        return copy

    def new_line(self, source: Node, origin: Config | None, parent: Node | None) -> Node:
        """``source``'s line as written, in this file's indentation and line ending."""
        if parent is None:
            indent = 0
        elif parent.children:
            indent = parent.children[0].indent
        else:
            indent = parent.indent + self.config.indent_unit
        unit = self.config.indent_unit
        node = self.config.new_node(source.kind, source.words, source.values, source.identity, indent // unit)
        node.text = " " * indent + source.text.strip(" ")
        node.indent = indent
        node.merge_class = source.merge_class
        if parent is None:
            self.owned.add(id(node))
        header = origin is not None and origin.sections and origin.sections[0] is source
        if source.leading and not header:
            node.leading = _LINE_END.sub(lambda _: self.config.newline, source.leading)
        return node

    def copy_tree(self, source: Node, origin: Config, parent: Node | None) -> Node:
        node = self.new_line(source, origin, parent)
        for child in source.entries:
            node.append(self.copy_tree(child, origin, node))
        return node

    def replace_line(self, node: Node, source: Node, parent: Node | None) -> None:
        node.text = " " * node.indent + source.text.strip(" ")
        node.kind, node.words, node.values = source.kind, source.words, source.values
        if parent is not None:
            for repeat in [c for c in parent.children if c.repeated and c.identity == node.identity]:
                parent.remove(repeat)

    def remove(self, node: Node, parent: Node | None) -> None:
        if parent is None:
            del self.present[node.identity]
            self.removed[node.identity] = node
            return
        for same in [c for c in parent.children if c.identity == node.identity]:
            parent.remove(same)

    # -- top-level layout

    def place(self, node: Node, origin: Config, source: Node) -> None:
        self.present[node.identity] = node
        if _ordered(node):
            self.new_rules.append((node, origin, source))
            return
        anchor = self.anchor(origin, source)
        if anchor is None:
            self.end.append(node)
        else:
            self.after.setdefault(id(anchor), []).append(node)

    def anchor(self, origin: Config, source: Node) -> Node | None:
        """The section a new one goes after: the nearest that precedes it in its input and is here, else the last of its kind.

        New rules are no anchors: their place is only known once :meth:`order`
        runs, and a section planned after one could close a cycle of plans.
        """
        sections = origin.root.children
        positions = self.positions.get(id(origin))
        if positions is None:
            positions = self.positions[id(origin)] = {id(node): k for k, node in enumerate(sections)}
        unplaced = {id(entry[0]) for entry in self.new_rules}
        for k in range(positions.get(id(source), 0) - 1, -1, -1):
            candidate = self.present.get(sections[k].identity)
            if candidate is not None and id(candidate) not in unplaced:
                return candidate
        keyword = source.keyword
        for node in reversed(self.children):
            if node.keyword == keyword and self.present.get(node.identity) is node:
                return node
        return None

    def order(self, order: list[Identity], reason: str) -> None:
        """Put the cluster-wide rules in ``order``, moving as few as possible (those off a longest increasing run)."""
        rank = {identity: k for k, identity in enumerate(order)}
        existing = [n for n in self.children if self.present.get(n.identity) is n and _ordered(n) and n.identity in rank]
        keep = longest_increasing([rank[n.identity] for n in existing])
        staying = [n for k, n in enumerate(existing) if k in keep]
        movers: list[tuple[Node, Config | None, Node | None]] = [
            (n, None, None) for k, n in enumerate(existing) if k not in keep]
        movers += [entry for entry in self.new_rules if entry[0].identity in rank]
        if not movers:
            return
        here = {n.identity: n for n in existing}
        here.update((entry[0].identity, entry[0]) for entry in self.new_rules)
        movers.sort(key=lambda entry: rank[entry[0].identity])
        for node, origin, source in movers:
            previous = None
            for k in range(rank[node.identity] - 1, -1, -1):
                previous = here.get(order[k])
                if previous is not None:
                    break
            if previous is not None:
                self.after.setdefault(id(previous), []).append(node)
            elif staying:
                self.before.setdefault(id(staying[0]), []).append(node)
            else:
                assert origin is not None and source is not None, "a rule already here always has one staying"
                anchor = self.anchor(origin, source)
                if anchor is None:
                    self.end.append(node)
                else:
                    self.after.setdefault(id(anchor), []).append(node)
            if origin is None:
                self.moved.add(id(node))
                position = f"after {previous.identity}" if previous is not None else "first"
                self.edits.append(Edit(Action.MOVED, str(node.identity), None, position, reason=reason))

    def close_references(self, lookup: Callable[[Identity], tuple[Config, Node] | None]) -> None:
        """Bring what added or changed entries name when this output lacks it; keep what a removal would leave dangling."""
        if self.removed:
            pending = [(node, str(identity)) for identity, node in self.present.items()]
        else:
            pending = list(self.check)
        while pending:
            node, owner = pending.pop()
            for _, target in references(node):
                if target in self.present:
                    continue
                kept = self.removed.pop(target, None)
                if kept is not None:
                    self.present[target] = kept
                    self.edits = [e for e in self.edits if not (e.action is Action.REMOVED and e.section == str(target)
                                                                and e.statement is None)]
                    pending.append((kept, str(target)))
                    continue
                found = lookup(target)
                if found is None:
                    continue
                origin, source = found
                copy = self.copy_tree(source, origin, None)
                self.place(copy, origin, source)
                self.edits.append(Edit(Action.ADDED, str(target), None, _shown(copy),
                                       reason=f"referenced by {owner}"))
                pending.append((copy, str(target)))

    def finish(self) -> None:
        """Lay out the top level, then check the result: no output ever fails ``validate``.

        A file of comments only keeps them on top, as the header of what it gains.
        """
        header = self.children[0] if self.children else None
        laid: list[Node] = []
        gap = ""
        before, after, present = self.before, self.after, self.present

        def lay(node: Node) -> None:
            nonlocal gap
            if present.get(node.identity) is node or node.repeated:
                if gap and not _LEADING_BLANKS.match(self.copies.get(id(node), node).leading):
                    copy = self.writable(node)
                    copy.leading = gap + copy.leading
                gap = ""
                laid.append(node)
            elif node is not header:
                blank = _LEADING_BLANKS.match(node.leading)
                gap = gap or (blank[0] if blank else "")

        visited: set[int] = set()

        def visit(start: Node) -> None:
            """``start`` with what was planned before and after it, depth first."""
            stack: list[tuple[Node, bool]] = [(start, False)]
            while stack:
                node, opened = stack.pop()
                if opened:
                    if id(node) in visited:
                        continue
                    visited.add(id(node))
                    lay(node)
                    stack.extend((n, False) for n in reversed(after.get(id(node), ())))
                    continue
                stack.append((node, True))
                ahead = before.get(id(node))
                if ahead:
                    blank = _LEADING_BLANKS.match(node.leading)
                    if blank and node is not header and not _LEADING_BLANKS.match(ahead[0].leading):
                        first, own = self.writable(ahead[0]), self.writable(node)
                        first.leading = blank[0] + first.leading
                        own.leading = own.leading[blank.end():]
                    stack.extend((n, False) for n in reversed(ahead))

        for node in self.children:
            key = id(node)
            if key in self.moved:
                if node is not header:
                    blank = _LEADING_BLANKS.match(node.leading)
                    gap = gap or (blank[0] if blank else "")
            elif key in before or key in after:
                visit(node)
            else:
                lay(node)
        for node in self.end:
            visit(node)
        for planned in (*after.values(), *before.values()):
            for node in planned:
                if id(node) not in visited:
                    visit(node)
        if header is not None and laid and laid[0] is not header:
            first = self.writable(laid[0])
            if present.get(header.identity) is header:
                top = self.writable(header)
                first.leading, top.leading = top.leading + first.leading, ""
            else:
                first.leading = header.leading + first.leading
        if header is None and laid and self.config.tail.strip():
            first = self.writable(laid[0])
            tail = self.config.tail
            first.leading = tail + ("" if tail.endswith("\n") else self.config.newline) + first.leading
            self.config.tail = ""
        laid = [self.copies.get(id(node), node) for node in laid]
        root = Node(ROOT, (), (), Identity(("",)))
        for node in laid:
            root.append(node)
        self.config.root = root
        problems = validate(self.config)
        if problems:
            raise ConfError(Diagnostic(p.severity, p.line or 1, p.column, f"the merged result would be invalid: {p.message}",
                                       p.file) for p in problems)


def _insert_statement(parent: Node, node: Node) -> None:
    """After the last sibling with the same keyword, else at the end of the block."""
    keyword = node.keyword
    for k in range(len(parent.children) - 1, -1, -1):
        if parent.children[k].keyword == keyword:
            parent.insert(k + 1, node)
            return
    parent.append(node)


def _emit_cluster(node: Node, cls: MergeClass, out: list[str], newline: str, header: bool = False) -> None:
    if not header:
        out.append(node.leading)
    out.append(node.text)
    out.append(node.ending or newline)
    for child in node.entries:
        child_class = statement_class(child, node, cls)
        if child_class is CLUSTER or _has_cluster_inside(child):
            _emit_cluster(child, child_class, out, newline)


def _clone(node: Node) -> Node:
    copy = Node.__new__(Node)
    copy.kind = node.kind
    copy.words = node.words
    copy.values = node.values
    copy.identity = node.identity
    copy.line = node.line
    copy.text = node.text
    copy.ending = node.ending
    copy.leading = node.leading
    copy.indent = node.indent
    copy.repeated = node.repeated
    copy.merge_class = node.merge_class
    copy._index = None
    copy.children = [_clone(child) for child in node.children] if node.children else []
    return copy


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Copying trees allocates a node per line and frees none; the cyclic collector would rescan them in vain."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
