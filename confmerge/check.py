"""Checks beyond syntax and types: references resolve, required statements exist.

A rule or subscriber group names other sections of the same file; a dangling
name is an error of that configuration (format page, section 4). Merge uses
:func:`references` to carry what an added entry needs.
"""

from __future__ import annotations

from typing import Iterator

from .diagnostics import Diagnostic
from .grammar import word_columns
from .tree import Config, Identity, Node


def references(node: Node) -> Iterator[tuple[Node, Identity]]:
    """Each statement in ``node``'s block (itself included) that names a section, with that section's identity."""
    for statement, _, target in _references(node):
        yield statement, target


def _references(node: Node) -> Iterator[tuple[Node, str, Identity]]:
    for statement in (node, *node.walk()):
        kind = statement.kind
        if kind is None or not kind.refs:
            continue
        for name, target in kind.refs.items():
            value = statement.value(name)
            if value is not None:
                yield statement, name, Identity((target, value))


def _column(statement: Node, field: str) -> int:
    """Where the word that holds ``field`` starts, after any spacing and quoted words before it."""
    assert statement.kind is not None, "only typed statements name sections"
    index = statement.kind.position(field)
    columns = word_columns(statement.text)
    return columns[index] if index is not None and index < len(columns) else statement.indent + 1


HEADER_KEYS = ("bqn-version", "bqn-id")
"""Header keys only a BQN writes (format page, section 2)."""


def not_a_backup(config: Config) -> Diagnostic | None:
    """The error for a file with nothing of a BQN backup in it (about the whole file: line 0), else ``None``.

    A backup holds at least one section that the format lists (section 4), or
    a header naming ``bqn-version`` or ``bqn-id`` (section 2). Unknown sections
    beside those are a later release's and are kept; a file of nothing else
    (``/etc/passwd``, notes, an empty file) is not a backup to check, diff or
    merge, and must never be taken for a primary with no ``bqn-id``.
    """
    if any(section.kind is not None for section in config.sections):
        return None
    if any(key in config.metadata for key in HEADER_KEYS):
        return None
    return Diagnostic("error", 0, 0, "not a BQN backup: it has no section the format lists (hostname, bqn-id, "
                      "ntp, rule, ...) and no BQN header ('# bqn-version: ...')", config.file)


def validate(config: Config) -> list[Diagnostic]:
    """Every dangling reference and missing required statement in ``config``."""
    found: list[Diagnostic] = []
    index = config.root.index()
    for section in config.root.entries:
        for statement, name, target in _references(section):
            if target not in index:
                found.append(Diagnostic(
                    "error", statement.line, _column(statement, name),
                    f"{section.identity}: {statement.keyword} '{target[1]}' names a missing '{target[0]}' section",
                    config.file,
                ))
        kind = section.kind
        if kind is not None and kind.required:
            present = {child.keyword for child in section.entries}
            for required in kind.required:
                if required not in present:
                    found.append(Diagnostic(
                        "error", section.line, section.indent + 1,
                        f"{section.identity} has no '{required}' statement (required)", config.file,
                    ))
    return found
