"""Results as text for a person: the diff report, the merge summary and dry run.

Data in, text out, nothing printed: the CLI writes these strings, the daemon
returns them, and every line that quotes a backup or a file name goes through
:func:`printable`, so a backup cannot drive the reader's terminal.
"""

from __future__ import annotations

import logging
from itertools import groupby
from pathlib import PurePath
from typing import Sequence

from .diagnostics import printable
from .diff import CLASS_ORDER, SEPARATOR, Change, Diff, Op, Scope, entry_text, statement_text
from .merge import Action, Edit, MergeResult
from .tree import MergeClass

__all__ = ["printable", "PrintableFormatter", "diff_text", "diff_summary", "merge_summary", "merge_dry_run", "merge_conflicts"]

SHOWN_CONFLICTS = 10


class PrintableFormatter(logging.Formatter):
    """Log records for a terminal or a journal: a message that quotes a peer or a backup has its control
    characters escaped, newlines too (one record, one line); a traceback below it stays as it is."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record), one_line=True)

_SIGN = {Op.ADDED: "+", Op.REMOVED: "-", Op.CHANGED: "~", Op.MOVED: ">"}
_OP_STYLE = {Op.ADDED: "32", Op.REMOVED: "31", Op.CHANGED: "33", Op.MOVED: "36"}
_CLASS_STYLE = {MergeClass.CLUSTER: "1;35", MergeClass.SERVER: "1;34", MergeClass.UNCLASSIFIED: "1;33"}
_WHERE_COLUMN = 56


def diff_text(result: Diff, colour: bool = False) -> str:
    """Sections of one class together, cluster-wide first; a summary line last."""
    def paint(text: str, style: str) -> str:
        text = printable(text)
        return f"\x1b[{style}m{text}\x1b[0m" if colour else text

    out: list[str] = []
    if result.changes:
        out += [paint(f"--- {result.old_file}", "1"), paint(f"+++ {result.new_file}", "1")]
    for (merge_class, section), group in groupby(result.changes, key=lambda c: (c.merge_class, c.section)):
        out.append("")
        out.append(f"{paint(str(section), '1')}  {paint(f'[{merge_class.label}]', _CLASS_STYLE[merge_class])}")
        for change in group:
            first, *block = _describe(change)
            text = f"  {_SIGN[change.op]} {printable(first)}"
            where = _where(change)
            out.append(f"{paint(text.ljust(_WHERE_COLUMN), _OP_STYLE[change.op])}  {paint(where, '2')}".rstrip())
            out += [paint(f"    {line}", _OP_STYLE[change.op]) for line in block]
    if result.changes:
        out.append("")
    out.append(paint(diff_summary(result), "1"))
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


def diff_summary(result: Diff) -> str:
    """``N differences: a cluster-wide, b server-specific, c unclassified`` (the classes in scope)."""
    total = len(result.changes)
    counts = result.counts
    shown = ", ".join(f"{counts[c]} {c.label}" for c in CLASS_ORDER if result.scope.includes(c))
    head = f"{total} difference{'' if total == 1 else 's'}"
    if result.scope is Scope.ALL:
        return f"{head}: {shown}"
    return f"{head} in scope {result.scope.value}: {shown}; {result.outside} outside the scope"


# -- merge


_ACTION_SIGN = {Action.ADDED: "+", Action.REMOVED: "-", Action.CHANGED: "~", Action.MOVED: ">"}


def merge_conflicts(result: MergeResult, names: Sequence[str]) -> str:
    """The conflicts and how they were resolved, the first :data:`SHOWN_CONFLICTS` of them; empty when none."""
    if not result.conflicts:
        return ""
    lines = [f"{len(result.conflicts)} conflict(s), resolved with {names[result.primary]} first:"]
    for conflict in result.conflicts[:SHOWN_CONFLICTS]:
        values = "; ".join(f"{PurePath(name).name}: {value if value is not None else '(absent)'}"
                           for name, value in zip(names, conflict.values))
        chosen = conflict.chosen if conflict.chosen is not None else "(removed)"
        lines.append(f"  {_at(conflict.section, conflict.statement)}: {values} -> {chosen}")
    if len(result.conflicts) > SHOWN_CONFLICTS:
        lines.append(f"  ... and {len(result.conflicts) - SHOWN_CONFLICTS} more")
    return _text(lines)


def merge_summary(result: MergeResult, names: Sequence[str], outputs: Sequence[str], report: str) -> str:
    """What a merge wrote: the primary, each output's counts, the conflicts, the report's name."""
    config = result.outputs[result.primary]
    lines = [f"primary: {names[result.primary]} (bqn-id {config.bqn_id or 0})"]
    lines += [f"{output} <- {name}: {_counts(edits)}" for name, output, edits in zip(names, outputs, result.edits)]
    text = _text(lines) + merge_conflicts(result, names)
    tail = []
    if result.unclassified:
        count = len(result.unclassified)
        tail.append(f"{count} unclassified entr{'y' if count == 1 else 'ies'} kept as is (classify them with --rules)")
    tail.append(f"report: {report}")
    return text + _text(tail)


def merge_dry_run(result: MergeResult, names: Sequence[str], outputs: Sequence[str]) -> str:
    """What a merge would write: every edit of every output with its reason."""
    lines = [f"primary: {names[result.primary]}"]
    for name, output, edits in zip(names, outputs, result.edits):
        lines.append(f"{output} <- {name}: {_counts(edits)}")
        lines += [f"  {_ACTION_SIGN[edit.action]} {_shown(edit)}  ({edit.reason})" for edit in edits]
    return _text(lines) + merge_conflicts(result, names) + "dry run: nothing written\n"


def _text(lines: list[str]) -> str:
    return "".join(printable(line) + "\n" for line in lines)


def _at(section: str, statement: str | None) -> str:
    return f"{section} / {statement}" if statement else section


def _counts(edits: tuple[Edit, ...]) -> str:
    parts = []
    for action in Action:
        count = sum(1 for edit in edits if edit.action is action)
        if count:
            parts.append(f"{count} {action.value}")
    return ", ".join(parts) if parts else "unchanged"


def _shown(edit: Edit) -> str:
    """An edit as an operator reads it: where it is, and the line itself (``ntp / server 216.229.0.50``)."""
    parents = edit.statement.split(" / ")[:-1] if edit.statement else []
    if edit.action is Action.MOVED:
        return f"{edit.section}: {edit.line}"
    line = f"{edit.before} -> {edit.line}" if edit.action is Action.CHANGED else edit.line
    if edit.statement is None:
        return line
    return " / ".join([edit.section, *parents, line])
