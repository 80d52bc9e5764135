"""``confmerge diff``: what really differs between two backups, for a person or a program.

The engine (:mod:`confmerge.diff`) finds the changes; this module reads the
files and prints them: text grouped by section, cluster-wide first, coloured on
a terminal; or JSON / YAML in the versioned schema of ``docs/diff.md``. The
exit status is diff(1)'s: 0 no difference in scope, 1 differences, 2 trouble.
"""

from __future__ import annotations

import argparse
import os
import sys
from itertools import groupby
from pathlib import Path
from typing import Any, TextIO

from ..data import dump
from ..diff import CLASS_ORDER, SEPARATOR, Change, Diff, Op, Scope, diff, entry_text, statement_text
from ..tree import MergeClass, Node
from ..types import to_json
from . import EXIT_DIFFERENT, EXIT_OK, command, load_checked, load_rules, rules_option

SCHEMA = "confmerge.diff/1"


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", type=Path, metavar="OLD", help="a BQN .conf backup")
    parser.add_argument("new", type=Path, metavar="NEW", help="the backup to compare it with")
    parser.add_argument("--scope", choices=[s.value for s in Scope], default=Scope.ALL.value,
                        help="which differences count: all (default), cluster-wide only, or server-specific only")
    parser.add_argument("--format", choices=("text", "json", "yaml"), default="text",
                        help="text for a person (default), json or yaml for programs (schema in docs/diff.md)")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour the text output: auto (a terminal, and NO_COLOR unset), always or never")
    rules_option(parser)


@command("diff", "print what really differs between two backups, in normal form; exit 1 when they differ",
         _arguments)
def run(args: argparse.Namespace) -> int:
    rules = load_rules(args)
    old, new = load_checked([args.old, args.new], rules)
    result = diff(old, new, Scope(args.scope))
    if args.format == "text":
        sys.stdout.write(render_text(result, colour=_colour(args.color, sys.stdout)))
    else:
        dump(diff_data(result), args.format, sys.stdout)
    return EXIT_DIFFERENT if result else EXIT_OK


def _colour(choice: str, stream: TextIO) -> bool:
    """``auto`` colours a terminal unless ``NO_COLOR`` is set to anything (https://no-color.org)."""
    if choice != "auto":
        return choice == "always"
    return not os.environ.get("NO_COLOR") and stream.isatty()


# ---------------------------------------------------------------------------
# JSON / YAML


def diff_data(result: Diff) -> dict[str, Any]:
    """The result as plain data in schema ``confmerge.diff/1`` (``docs/diff.md``); every key is always present."""
    return {
        "schema": SCHEMA,
        "old_file": result.old_file,
        "new_file": result.new_file,
        "scope": result.scope.value,
        "counts": {merge_class.value: count for merge_class, count in result.counts.items()},
        "outside_scope": result.outside,
        "changes": [change_data(change) for change in result.changes],
    }


def change_data(change: Change) -> dict[str, Any]:
    return {
        "op": change.op.value,
        "class": change.merge_class.value,
        "section": str(change.section),
        "statement": change.statement,
        "old": _value(change, change.old),
        "new": _value(change, change.new),
        "old_line": change.old_line,
        "new_line": change.new_line,
        "fields": {f.name: {"old": to_json(f.old), "new": to_json(f.new)} for f in change.fields}
        if change.op is Op.CHANGED else None,
        "old_position": change.old_position,
        "new_position": change.new_position,
    }


def _value(change: Change, node: Node | None) -> str | None:
    """An added or removed entry with its whole block; a changed or moved one as its own line."""
    if node is None:
        return None
    return entry_text(node) if change.op in (Op.ADDED, Op.REMOVED) else statement_text(node)


# ---------------------------------------------------------------------------
# Text

_SIGN = {Op.ADDED: "+", Op.REMOVED: "-", Op.CHANGED: "~", Op.MOVED: ">"}
_OP_STYLE = {Op.ADDED: "32", Op.REMOVED: "31", Op.CHANGED: "33", Op.MOVED: "36"}
_CLASS_STYLE = {MergeClass.CLUSTER: "1;35", MergeClass.SERVER: "1;34", MergeClass.UNCLASSIFIED: "1;33"}
_WHERE_COLUMN = 56


def render_text(result: Diff, colour: bool = False) -> str:
    """Sections of one class together, cluster-wide first; a summary line last."""
    def paint(text: str, style: str) -> str:
        return f"\x1b[{style}m{text}\x1b[0m" if colour else text

    out: list[str] = []
    if result.changes:
        out += [paint(f"--- {result.old_file}", "1"), paint(f"+++ {result.new_file}", "1")]
    for (merge_class, section), group in groupby(result.changes, key=lambda c: (c.merge_class, c.section)):
        out.append("")
        out.append(f"{paint(str(section), '1')}  {paint(f'[{merge_class.label}]', _CLASS_STYLE[merge_class])}")
        for change in group:
            first, *block = _describe(change)
            text = f"  {_SIGN[change.op]} {first}"
            where = _where(change)
            out.append(f"{paint(text.ljust(_WHERE_COLUMN), _OP_STYLE[change.op])}  {paint(where, '2')}".rstrip())
            out += [paint(f"    {line}", _OP_STYLE[change.op]) for line in block]
    if result.changes:
        out.append("")
    out.append(paint(summary(result), "1"))
    return "\n".join(out) + "\n"


def _describe(change: Change) -> list[str]:
    """The change's lines: its statement (old -> new when changed), then an added or removed block."""
    parent = SEPARATOR.join(map(str, change.path[:-1]))
    prefix = f"{parent}{SEPARATOR}" if parent else ""
    old, new = change.old, change.new
    if change.op is Op.CHANGED and old is not None and new is not None:
        return [f"{prefix}{statement_text(old)} -> {statement_text(new)}"]
    if change.op is Op.MOVED and new is not None:
        return [f"{statement_text(new)} moved: position {change.old_position} -> {change.new_position} among the rules"]
    shown = new if change.op is Op.ADDED else old
    assert shown is not None
    first, *block = entry_text(shown).split("\n")
    return [prefix + first, *block]


def _where(change: Change) -> str:
    if change.old is None:
        return f"new line {change.new_line}"
    if change.new is None:
        return f"old line {change.old_line}"
    return f"old line {change.old_line}, new line {change.new_line}"


def summary(result: Diff) -> str:
    """``N differences: a cluster-wide, b server-specific, c unclassified`` (the classes in scope)."""
    total = len(result.changes)
    counts = result.counts
    shown = ", ".join(f"{counts[c]} {c.label}" for c in CLASS_ORDER if result.scope.includes(c))
    head = f"{total} difference{'' if total == 1 else 's'}"
    if result.scope is Scope.ALL:
        return f"{head}: {shown}"
    return f"{head} in scope {result.scope.value}: {shown}; {result.outside} outside the scope"
