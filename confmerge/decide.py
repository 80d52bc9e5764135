"""Deciding: for each cluster-wide entry, whether the outputs have it, whose line they take, what its block gets.

Entries are compared across the inputs by identity, block by block; an entry
equal in every input needs no decision. A conflict is resolved by priority:
the primary, then the others by ``bqn-id``, hostname and text (never by their
place among the arguments). With a base, a change or removal made on some
inputs and not on others is taken. The rule order is decided once for every
output. :func:`decide_adoption` is the same for a secondary taking the
cluster's content as its only source.
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from typing import Iterator, Mapping, Sequence

from .check import references
from .cluster import cluster_content, ordered
from .diagnostics import ConfError, Diagnostic
from .diff import longest_increasing
from .render import render
from .resolve import BASE, Choice, ConflictKey
from .result import Conflict, Unclassified, shown
from .rules import has_cluster_inside, statement_class
from .tree import Config, Identity, MergeClass, Node

CLUSTER = MergeClass.CLUSTER
UNCLASSIFIED = MergeClass.UNCLASSIFIED


class Decision:
    """What the outputs get for one entry: present or not, whose line, and what its block gets.

    A container decision is for a non-cluster entry that holds cluster-wide
    statements: it is never created or removed, only entered.
    """

    __slots__ = ("identity", "present", "source", "origin", "children", "container", "reason")

    def __init__(self, identity: Identity, present: bool, source: Node | None = None, origin: Config | None = None,
                 children: list["Decision"] | None = None, container: bool = False, reason: str = "union") -> None:
        self.identity = identity
        self.present = present
        self.source = source
        self.origin = origin
        self.children = children
        self.container = container
        self.reason = reason


def decide_adoption(server: Node | None, cluster: Node | None, inherited: MergeClass, origin: Config) -> list[Decision]:
    """Decisions that make ``server``'s block hold ``cluster``'s cluster-wide content: the cluster is the only source."""
    decisions: list[Decision] = []
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
                decisions.append(Decision(identity, False, reason="cluster"))
            elif mine is None or not mine.same_tree(theirs):
                children = None
                if theirs.children or (mine is not None and mine.children):
                    children = decide_adoption(mine, theirs, cls, origin)
                decisions.append(Decision(identity, True, theirs, origin, children, reason="cluster"))
        elif mine is not None and (has_cluster_inside(mine) or (theirs is not None and has_cluster_inside(theirs))):
            children = decide_adoption(mine, theirs, cls, origin)
            if children:
                decisions.append(Decision(identity, True, mine, None, children, container=True))
    return decisions


class Decider:
    """The decisions of one merge; ``priority`` ranks the inputs for conflicts, ``conflicts`` lists them."""

    def __init__(self, configs: Sequence[Config], primary: int, base: Config | None,
                 resolutions: Mapping[ConflictKey, Choice] | None = None) -> None:
        self.configs = list(configs)
        self.resolutions = resolutions or {}
        self.count = len(configs)
        self.primary = primary
        self.base = base
        self.priority = [primary, *_by_priority(configs, [i for i in range(self.count) if i != primary])]
        self.rank = {number: k for k, number in enumerate(self.priority)}
        self.conflicts: list[Conflict] = []

    def decide_all(self) -> tuple[list[Decision], list[Identity], str]:
        """The decisions for the top level (and, within them, every block), the one rule order, and the reason its moves get."""
        roots = [config.root for config in self.configs]
        decisions = self.decide(roots, self.base.root if self.base is not None else None, UNCLASSIFIED, None, ())
        self.keep_referenced(decisions)
        absent = {d.identity for d in decisions if not d.present}
        present_rules = {s.identity for config in self.configs for s in config.root.entries if ordered(s)} - absent
        order, reason = self.rule_order(present_rules)
        return decisions, order, reason

    def first(self, candidates: Sequence[int]) -> int:
        return min(candidates, key=self.rank.__getitem__)

    def decide(self, parents: Sequence[Node | None], base: Node | None, inherited: MergeClass,
               section: str | None, path: tuple[str, ...]) -> list[Decision]:
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
        decisions: list[Decision] = []
        for identity, (example, parent) in found.items():
            nodes = [index.get(identity) if index is not None else None for index in indexes]
            cls = statement_class(example, parent, inherited)
            old = base_index.get(identity) if base_index is not None else None
            if cls is CLUSTER and complete and all(
                    node is not None and (node is example or example.same_tree(node)) for node in nodes):
                continue
            here = str(identity) if section is None else section
            where = () if section is None else (*path, str(identity))
            if cls is not CLUSTER:
                if any(node is not None and has_cluster_inside(node) for node in nodes):
                    children = self.decide(nodes, old, cls, here, where)
                    if children:
                        decisions.append(Decision(identity, True, example, None, children, container=True))
                continue
            holders = [i for i in voters if nodes[i] is not None]
            decisions.append(self.entry(identity, nodes, voters, holders, old, parent, inherited, cls, here, where))
        return decisions

    def keep_referenced(self, decisions: list[Decision]) -> None:
        """Undo the removals that would leave a reference dangling, in the decisions, so every output keeps the same entry.

        A three-way removal (or a removal that won a conflict) of a section
        that something kept still names is not made.
        """
        at = {d.identity: k for k, d in enumerate(decisions)}
        chosen: dict[str, str | None] = {}
        pending: list[tuple[Identity, str]] = []
        for config in (self.configs[i] for i in self.priority):
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
            chosen[str(target)] = shown(kept.source)
            for holder in (node for node in nodes if node is not None):
                pending.extend((t, str(target)) for t in _decided_references(kept, holder))
        if chosen:
            self.conflicts = [
                Conflict(c.section, c.statement, c.values, chosen[c.section], c.base)
                if c.section in chosen and c.statement is None and c.chosen is None else c
                for c in self.conflicts
            ]

    def entry(self, identity: Identity, nodes: list[Node | None], voters: list[int], holders: list[int],
              old: Node | None, parent: Node, inherited: MergeClass, cls: MergeClass,
              section: str, where: tuple[str, ...], keep: str | None = None) -> Decision:
        """The decision for one cluster-wide entry: is it kept (three-way removals), and whose line wins.

        ``keep`` (the reason) skips the removal question: the entry is named by one that stays.
        """
        statement = " / ".join(where) or None
        reason = keep or "union"
        if keep is None and old is not None and len(holders) < len(voters):
            removers = [i for i in voters if nodes[i] is None]
            before = cluster_content(old, parent, inherited)
            modifiers = [i for i in holders if cluster_content(_held(nodes, i), parent, inherited) != before]
            if not modifiers:
                return Decision(identity, False, reason="three-way")
            decider = self.primary if self.primary in voters else self.first(removers + modifiers)
            reason = "conflict"
            choice = self.choice((section, statement), voters, old)
            chosen = old if choice == BASE else nodes[decider if choice is None else choice]
            self.conflicts.append(Conflict(section, statement, tuple(map(shown, nodes)), shown(chosen), shown(old)))
            if chosen is None:
                return Decision(identity, False, reason=reason)
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
                if choice == BASE:
                    assert old is not None  # self.choice refuses the base where it lacks the entry
                    self.conflicts.append(Conflict(section, statement, tuple(map(shown, nodes)), shown(old), shown(old)))
                    return self.taken(identity, nodes, old, cls, section, where, reason)
                source = choice if choice is not None else self.primary if self.primary in holders else changers[0]
                self.conflicts.append(Conflict(section, statement, tuple(map(shown, nodes)), shown(nodes[source]),
                                               shown(old)))
        children = None
        if (old is not None and old.children) or any(_held(nodes, i).children for i in holders):
            children = self.decide(nodes, old, cls, section, where)
        return Decision(identity, True, nodes[source], self.configs[source], children, reason=reason)

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
              where: tuple[str, ...], reason: str) -> Decision:
        """The base's entry, chosen by the operator: its line, and its block decided as usual."""
        assert self.base is not None
        children = self.decide(nodes, old, cls, section, where) if old.children or any(
            node is not None and node.children for node in nodes) else None
        return Decision(identity, True, old, self.base, children, reason=reason)

    def rule_order(self, present: set[Identity]) -> tuple[list[Identity], str]:
        """The one rule order of every output, and the reason its moves get.

        The primary's order, with rules it lacks woven in after their
        neighbours in the input they come from. With a base, a reorder made on
        some inputs and not others is taken when the reorders agree.
        """
        orders = [[s.identity for s in config.root.entries if ordered(s) and s.identity in present]
                  for config in self.configs]
        reference, taken, changed = self.primary, False, set()
        base_order = [s.identity for s in self.base.root.entries if ordered(s) and s.identity in present] \
            if self.base is not None else []
        chosen = {choice for (_, statement), choice in self.resolutions.items() if statement == "order"}
        if len(chosen) > 1:
            raise ConfError([Diagnostic("error", 0, 0, "rule-order conflicts take one rule order; "
                                        "they are resolved to different ones", "<resolutions>")])
        if chosen:
            choice = chosen.pop()
            if choice == BASE and self.base is None:
                raise ConfError([Diagnostic("error", 0, 0, "a rule order taken from a base, without one",
                                            "<resolutions>")])
            order = _weave(base_order if choice == BASE else orders[choice], [orders[i] for i in self.priority])
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
        places = [{identity: k for k, identity in enumerate(own)} for own in orders]
        base_places = {identity: k for k, identity in enumerate(base_order)}
        for identity in sorted(misplaced, key=rank.__getitem__):
            values = tuple(_position(own, at, identity) if identity in at else None for own, at in zip(orders, places))
            base = _position(base_order, base_places, identity) if identity in base_places else None
            self.conflicts.append(Conflict(str(identity), "order", values, _position(order, rank, identity), base))


def _refused(key: ConflictKey, why: str) -> ConfError:
    where = f"{key[0]} / {key[1]}" if key[1] else key[0]
    return ConfError([Diagnostic("error", 0, 0, f"{where}: cannot take that choice: {why}", "<resolutions>")])


def _by_priority(configs: Sequence[Config], numbers: list[int]) -> list[int]:
    """Inputs by ``bqn-id``; inputs that share one by hostname, then by their whole text.

    Never by their place among the arguments: the same backups give the same
    outputs in any order. Two inputs equal in all three are interchangeable.
    """
    def key(i: int) -> tuple[int, str]:
        return configs[i].bqn_id or 0, configs[i].hostname or ""

    keys = {i: key(i) for i in numbers}
    tied = {k for k, count in Counter(keys.values()).items() if count > 1}
    texts = {i: render(configs[i]) for i in numbers if keys[i] in tied}
    return sorted(numbers, key=lambda i: (keys[i], texts.get(i, "")))


def _held(nodes: Sequence[Node | None], i: int) -> Node:
    """The entry of input ``i``, which holds it (a holder, by the caller's selection)."""
    node = nodes[i]
    assert node is not None
    return node


def _decided_references(decision: Decision, node: Node) -> Iterator[Identity]:
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


def _position(order: list[Identity], places: dict[Identity, int], identity: Identity) -> str:
    k = places[identity]
    return f"after {order[k - 1]}" if k else "first"


def _consistent(a: Sequence[Identity], b: Sequence[Identity]) -> bool:
    """The two orders agree on the rules they share."""
    common = set(a) & set(b)
    return [x for x in a if x in common] == [x for x in b if x in common]


def _weave(reference: list[Identity], others: list[list[Identity]]) -> list[Identity]:
    """``reference``, with each entry it lacks placed after the latest of the entries that precede it where it comes from.

    An entry placed after another goes after everything placed after that one
    before it; the order is the preorder of that tree. Keys are tuples that sort
    in it and stay short: a run of new entries one input places one after the
    other is one chain of that tree, keyed ``run + (0, i)`` (a reference entry is
    the run ``(k,)`` of one, index 0), and the m-th later entry placed after the
    i-th of a run comes after the whole run, and after what follows its later
    members: ``run + (1, -i, m)`` starts a run of its own.
    """
    start: tuple[int, ...] = (-1, 0, 0)
    key: dict[Identity, tuple[int, ...]] = {identity: (k, 0, 0) for k, identity in enumerate(reference)}
    runs: dict[tuple[int, ...], tuple[tuple[int, ...], int]] = {position: (position[:1], 0) for position in key.values()}
    runs[start] = ((-1,), 0)
    followers: dict[tuple[int, ...], int] = {}
    for order in others:
        latest = start
        made: tuple[int, ...] | None = None
        for identity in order:
            position = key.get(identity)
            if position is None:
                if made is not None and made == latest:
                    run, index = runs[latest][0], runs[latest][1] + 1
                else:
                    anchor, at = runs[latest]
                    count = followers[latest] = followers.get(latest, 0) + 1
                    run, index = (*anchor, 1, -at, count), 1
                position = key[identity] = (*run, 0, index)
                runs[position] = (run, index)
                made = position
            if position > latest:
                latest = position
    return sorted(key, key=key.__getitem__)


def unclassified(config: Config, number: int) -> Iterator[Unclassified]:
    for section in config.root.entries:
        cls = section.merge_class or UNCLASSIFIED
        if cls is UNCLASSIFIED:
            yield Unclassified(number, str(section.identity), None, section.line)
        elif section.children:
            yield from _unclassified_inside(section, section, cls, (), number)


def _unclassified_inside(section: Node, parent: Node, inherited: MergeClass, path: tuple[Node, ...],
                         number: int) -> Iterator[Unclassified]:
    for child in parent.entries:
        child_class = statement_class(child, parent, inherited)
        if child_class is UNCLASSIFIED:
            where = " / ".join(str(node.identity) for node in (*path, child))
            yield Unclassified(number, str(section.identity), where, child.line)
        elif child.children:
            yield from _unclassified_inside(section, child, child_class, (*path, child), number)
