"""The cluster-wide part of a backup: the text a primary distributes and the digest servers compare.

Both read the classes the rules set (``rules.statement_class``): a section's
own, or a statement's when a rule names it. ``cluster_content`` is the same
content as a comparable value, for the three-way merge's "was it touched?".
"""

from __future__ import annotations

import hashlib

from .diff import statement_text
from .rules import has_cluster_inside, statement_class
from .schema import ORDERED_SECTIONS
from .tree import LEADING_BLANKS, Config, MergeClass, Node

CLUSTER = MergeClass.CLUSTER
UNCLASSIFIED = MergeClass.UNCLASSIFIED


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
        if cls is CLUSTER or has_cluster_inside(section):
            _emit(section, cls, out, config.newline, header=section is first)
    text = LEADING_BLANKS.sub("", "".join(out))
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
            if statement_class(child, node, cls) is CLUSTER or has_cluster_inside(child)
        )
        return statement_text(node) + ("{" + "\x1f".join(inside) + "}" if inside else "")

    unordered: list[str] = []
    in_order: list[str] = []
    for section in config.root.entries:
        if section.merge_class is CLUSTER or has_cluster_inside(section):
            text = canonical(section, config.root, UNCLASSIFIED)
            (in_order if ordered(section) else unordered).append(text)
    payload = "\x1e".join(sorted(unordered)) + "\x1d" + "\x1e".join(in_order)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def ordered(section: Node) -> bool:
    """A cluster-wide section whose order among its kind is configuration (rules: first match wins)."""
    return section.kind is not None and section.kind.keyword in ORDERED_SECTIONS and section.merge_class is CLUSTER


def cluster_content(node: Node, parent: Node, inherited: MergeClass) -> tuple:
    """The cluster-wide content of an entry, comparable across files (three-way: was it touched?)."""
    cls = statement_class(node, parent, inherited)
    own = (node.kind, node.values if node.kind is not None else node.words)
    inside = frozenset(
        cluster_content(child, node, cls) for child in node.entries
        if statement_class(child, node, cls) is CLUSTER or has_cluster_inside(child)
    )
    return own, inside


def _emit(node: Node, cls: MergeClass, out: list[str], newline: str, header: bool = False) -> None:
    if not header:
        out.append(node.leading)
    out.append(node.text)
    out.append(node.ending or newline)
    for child in node.entries:
        child_class = statement_class(child, node, cls)
        if child_class is CLUSTER or has_cluster_inside(child):
            _emit(child, child_class, out, newline)
