"""The cluster-wide part of a backup: the text a primary distributes and the digest servers compare.

Both read the classes the rules set (``rules.statement_class``): a section's
own, or a statement's when a rule names it. ``cluster_content`` is the same
content as a comparable value, for the three-way merge's "was it touched?".
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import replace

from .diagnostics import ConfError, Diagnostic
from .diff import statement_text
from .grammar import BOM
from .parser import parse
from .rules import Rules, has_cluster_inside, statement_class
from .schema import ORDERED_SECTIONS, ROOT
from .tree import LEADING_BLANKS, Config, Identity, MergeClass, Node

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
    return LEADING_BLANKS.sub("", "".join(text for _, text in _pieces(config)))


def _pieces(config: Config) -> list[tuple[Node, str]]:
    """Each section that :func:`cluster_part` writes, with the text it writes for it (before the first's blanks go)."""
    pieces = []
    first = config.sections[0] if config.sections else None
    for section in config.root.entries:
        cls = section.merge_class or UNCLASSIFIED
        if cls is CLUSTER or has_cluster_inside(section):
            out: list[str] = []
            _emit(section, cls, out, config.newline, header=section is first)
            pieces.append((section, "".join(out)))
    return pieces


def cluster_tree(server: Config, text: str, file: str = "<input>", rules: Rules | None = None) -> Config | None:
    """The tree of cluster-part ``text`` for :func:`adopt`, read only where ``text`` differs from ``server``'s part.

    A secondary holds the tree of its backup, and a new generation differs
    from that backup's cluster part in a few sections: only those are read
    again; every other section is ``server``'s own node, whose cluster-wide
    content (all that adopt reads of it) is equal to the text's by
    construction. So an apply of a 10,000-line backup parses a few lines,
    not 190 KB. Nodes kept from ``server`` keep their line numbers there,
    and ``warnings`` are those of the sections read again: the tree is for
    adopting, and a caller that reports a problem parses ``text`` itself.

    None when nothing would be saved or the shortcut could differ from
    :func:`~confmerge.parser.parse` (a problem in the sections read again, a
    section they repeat, a byte order mark, comments after the last
    statement): then parse ``text``.
    """
    pieces = _pieces(server)
    if len(pieces) < 2 or text.startswith(BOM):
        return None
    old = "".join(piece for _, piece in pieces)
    blanks = LEADING_BLANKS.match(old)
    stripped = blanks.end() if blanks else 0
    old = old[stripped:]
    # where each section's text starts in ``old`` (and where ``old`` ends), the first's blank lines gone
    starts = [0, *(at - stripped for at in itertools.accumulate(len(piece) for _, piece in pieces))]
    prefix = _common_prefix(old, text)
    suffix = _common_prefix(old[prefix:][::-1], text[prefix:][::-1])
    first = next(k for k in range(len(pieces)) if starts[k + 1] >= prefix)
    last = max(k for k in range(len(pieces)) if starts[k] <= len(old) - suffix)
    # the first section is always read again: its text lost the header and leading blanks its node keeps
    spans = [(0, last + 1)] if first <= 1 else [(0, 1), (first, last + 1)]
    if spans == [(0, len(pieces))]:
        return None
    grown = len(text) - len(old)
    sections: list[Node] = []
    warnings: list[Diagnostic] = []
    kept = 0
    for begin, end in spans:
        sections += [node for node, _ in pieces[kept:begin]]
        chunk_start, chunk_end = starts[begin], starts[end] + (grown if end > first else 0)
        read = _read(text, chunk_start, chunk_end, file, rules)
        if read is None:
            return None
        sections += read.root.children
        warnings += read.warnings
        kept = end
    sections += [node for node, _ in pieces[kept:]]
    root = Node(ROOT, (), (), Identity(("",)))
    root.set_children(sections)
    if len(root.index()) < len(sections):
        return None
    crlf = text.count("\r\n")
    unit = _INDENTED.search(text)
    config = Config(root, newline="\r\n" if crlf > text.count("\n") - crlf else "\n",
                    indent_unit=len(unit[1]) if unit else 2, file=file)
    config.warnings = tuple(warnings)
    return config


_INDENTED = re.compile(r"^( +)[^ #\r\n]", re.MULTILINE)
"""The first indented statement: its indentation is the file's unit, as :func:`~confmerge.parser.parse` finds it."""


def _common_prefix(a: str, b: str) -> int:
    """The length of the longest common prefix, compared in halves (a character loop is 100 times slower)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _read(text: str, start: int, end: int, file: str, rules: Rules | None) -> Config | None:
    """Sections ``text[start:end]`` as :func:`parse` reads them in the whole text (lines numbered so), or None."""
    try:
        config = parse(text[start:end], file, rules)
    except ConfError:
        return None
    if config.tail or not config.sections:
        return None
    shift = text.count("\n", 0, start)
    if shift:
        for node in config.root.walk():
            node.line += shift
        config.warnings = tuple(replace(w, line=w.line + shift) for w in config.warnings)
    return config


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
