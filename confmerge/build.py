"""Building outputs: each input's copy edited to match the decisions, touching only the lines that change.

An existing line stays byte for byte; a new one is written in the output's
own indentation and line ending where it belongs (a statement after its last
sibling of the same keyword, a section after the section it follows in the
input it came from, a rule where the one rule order puts it). Then what an
added entry names is brought along, the top level is laid out in one pass,
and the output is checked.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

from .check import references, validate
from .cluster import ordered
from .decide import Decision
from .diagnostics import ConfError, Diagnostic
from .diff import longest_increasing
from .result import Action, Edit, shown
from .schema import ROOT
from .tree import LEADING_BLANKS, Config, Identity, Node


_LINE_END = re.compile(r"[ \t]*\r?\n")
LEADING_BLANKS = re.compile(r"\A(?:[ \t]*\r?\n)+")


class Output:
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
        self.unplaced: set[int] = set()
        self.edits: list[Edit] = []
        self.check: list[tuple[Node, str, Config | None]] = []
        self.positions = positions

    # -- entries

    def apply(self, decisions: list[Decision], parent: Node | None, section: str | None,
              path: tuple[str, ...], record: bool) -> None:
        if parent is None:
            for d in decisions:
                existing = self.present.get(d.identity)
                if (existing is not None and d.present and d.source is not None
                        and (d.children or not existing.same_value(d.source))):
                    self.own(existing)
        block = _Block(parent) if parent is not None else None
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
                    if block is None:
                        self.remove(existing)
                    else:
                        block.remove(existing)
                    if record:
                        self.edits.append(Edit(Action.REMOVED, here, statement, shown(existing), reason=d.reason))
                continue
            source, origin = d.source, d.origin
            assert source is not None, "a present decision names its line"
            if existing is None:
                node = self.new_line(source, origin, parent, block)
                if block is None:
                    assert origin is not None
                    self.place(node, origin, source)
                else:
                    block.insert(node)
                if record:
                    self.edits.append(Edit(Action.ADDED, here, statement, shown(node), reason=d.reason))
                    self.check.append((node, here, origin))
                if d.children:
                    self.apply(d.children, node, here, where, False)
                continue
            if not existing.same_value(source):
                before = shown(existing)
                self.replace_line(existing, source, block)
                self.edits.append(Edit(Action.CHANGED, here, statement, shown(existing), before, d.reason))
                self.check.append((existing, here, origin))
            if d.children:
                self.apply(d.children, existing, here, where, record)
        if block is not None:
            block.commit()

    def own(self, node: Node) -> Node:
        """This output's own copy of a top-level node, in its place, before the first edit inside it."""
        if id(node) in self.owned:
            return node
        if self.slots is None:
            self.slots = {id(child): k for k, child in enumerate(self.children)}
        copy = node.clone()
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
            copy = self.copies[id(node)] = node.clone()
        return copy

    def new_line(self, source: Node, origin: Config | None, parent: Node | None, block: "_Block | None" = None) -> Node:
        """``source``'s line as written, in this file's indentation and line ending."""
        first = block.first() if block is not None else (parent.children[0] if parent is not None and parent.children else None)
        if parent is None:
            indent = 0
        elif first is not None:
            indent = first.indent
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

    def replace_line(self, node: Node, source: Node, block: "_Block | None") -> None:
        node.text = " " * node.indent + source.text.strip(" ")
        node.kind, node.words, node.values = source.kind, source.words, source.values
        if block is not None:
            block.drop_repeats(node)

    def remove(self, node: Node) -> None:
        """A top-level entry out of this output (a reference may keep it after all: :meth:`close_references`)."""
        del self.present[node.identity]
        self.removed[node.identity] = node

    # -- top-level layout

    def place(self, node: Node, origin: Config, source: Node) -> None:
        self.present[node.identity] = node
        if ordered(node):
            self.new_rules.append((node, origin, source))
            self.unplaced.add(id(node))
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
        for k in range(positions.get(id(source), 0) - 1, -1, -1):
            candidate = self.present.get(sections[k].identity)
            if candidate is not None and id(candidate) not in self.unplaced:
                return candidate
        keyword = source.keyword
        for node in reversed(self.children):
            if node.keyword == keyword and self.present.get(node.identity) is node:
                return node
        return None

    def order(self, order: list[Identity], reason: str) -> None:
        """Put the cluster-wide rules in ``order``, moving as few as possible (those off a longest increasing run)."""
        rank = {identity: k for k, identity in enumerate(order)}
        existing = [n for n in self.children if self.present.get(n.identity) is n and ordered(n) and n.identity in rank]
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

    def close_references(self, lookup: Callable[[Identity, Config | None], tuple[Config, Node] | None]) -> None:
        """Bring what added or changed entries name when this output lacks it; keep what a removal would leave dangling."""
        pending = list(self.check)
        if self.removed:
            pending += [(node, str(identity), None) for identity, node in self.present.items()]
        restored: set[str] = set()
        while pending:
            node, owner, came_from = pending.pop()
            for _, target in references(node):
                if target in self.present:
                    continue
                kept = self.removed.pop(target, None)
                if kept is not None:
                    self.present[target] = kept
                    restored.add(str(target))
                    pending.append((kept, str(target), None))
                    continue
                found = lookup(target, came_from)
                if found is None:
                    continue
                origin, source = found
                copy = self.copy_tree(source, origin, None)
                self.place(copy, origin, source)
                self.edits.append(Edit(Action.ADDED, str(target), None, shown(copy),
                                       reason=f"referenced by {owner}"))
                pending.append((copy, str(target), origin))
        if restored:
            self.edits = [e for e in self.edits
                          if not (e.action is Action.REMOVED and e.statement is None and e.section in restored)]

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
                if gap and not LEADING_BLANKS.match(self.copies.get(id(node), node).leading):
                    copy = self.writable(node)
                    copy.leading = gap + copy.leading
                gap = ""
                laid.append(node)
            elif node is not header:
                blank = LEADING_BLANKS.match(node.leading)
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
                    blank = LEADING_BLANKS.match(node.leading)
                    if blank and node is not header and not LEADING_BLANKS.match(ahead[0].leading):
                        first, own = self.writable(ahead[0]), self.writable(node)
                        first.leading = blank[0] + first.leading
                        own.leading = own.leading[blank.end():]
                    stack.extend((n, False) for n in reversed(ahead))

        for node in self.children:
            key = id(node)
            if key in self.moved:
                if node is not header:
                    blank = LEADING_BLANKS.match(node.leading)
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


class _Block:
    """The edits to one block, collected and made in one pass by :meth:`commit`.

    A new statement goes after its last sibling with the same keyword, else at
    the end; a removal takes every line of its entry; a changed line drops its
    repeats. The result is what making each edit at once would give, without a
    scan of the block per edit.
    """

    __slots__ = ("parent", "gone", "repeats_gone", "after", "end", "by_keyword", "start")

    def __init__(self, parent: Node) -> None:
        self.parent = parent
        self.gone: set[Identity] = set()
        self.repeats_gone: set[Identity] = set()
        self.after: dict[int, list[Node]] = {}
        self.end: list[Node] = []
        self.by_keyword: dict[str, list[Node]] | None = None
        self.start = 0

    def dropped(self, node: Node) -> bool:
        return node.identity in self.gone or (node.repeated and node.identity in self.repeats_gone)

    def first(self) -> Node | None:
        """The block's first line as it stands (its indentation is the block's)."""
        children = self.parent.children
        while self.start < len(children) and self.dropped(children[self.start]):
            self.start += 1
        if self.start < len(children):
            return children[self.start]
        return self.end[0] if self.end else next((nodes[0] for nodes in self.after.values()), None)

    def insert(self, node: Node) -> None:
        if self.by_keyword is None:
            self.by_keyword = {}
            for child in self.parent.children:
                self.by_keyword.setdefault(child.keyword, []).append(child)
        same = self.by_keyword.setdefault(node.keyword, [])
        while same and self.dropped(same[-1]):
            same.pop()
        if same:
            self.after.setdefault(id(same[-1]), []).append(node)
        else:
            self.end.append(node)
        same.append(node)

    def remove(self, node: Node) -> None:
        self.gone.add(node.identity)

    def drop_repeats(self, node: Node) -> None:
        self.repeats_gone.add(node.identity)

    def commit(self) -> None:
        if not (self.gone or self.repeats_gone or self.after or self.end):
            return
        children: list[Node] = []
        after = self.after

        def lay(node: Node, keep: bool) -> None:
            stack = [(node, keep)]
            while stack:
                line, kept = stack.pop()
                if kept:
                    children.append(line)
                stack.extend((follower, True) for follower in after.get(id(line), ()))

        for child in self.parent.children:
            lay(child, not self.dropped(child))
        for node in self.end:
            lay(node, True)
        self.parent.set_children(children)


def lookup(configs: Sequence[Config], target: Identity, origin: Config | None) -> tuple[Config, Node] | None:
    """``target`` from ``origin`` (the input the entry that names it came from), else from the first of ``configs``."""
    for config in (origin, *configs) if origin is not None else configs:
        node = config.root.get(target)
        if node is not None:
            return config, node
    return None
