"""Checks beyond syntax and types: references resolve, required statements exist.

A rule or subscriber group names other sections of the same file; a dangling
name is an error of that configuration (format page, section 4). Merge uses
:func:`references` to carry what an added entry needs.
"""

from __future__ import annotations

from typing import Iterator

from .diagnostics import Diagnostic
from .tree import Config, Identity, Node


def references(node: Node) -> Iterator[tuple[Node, Identity]]:
    """Each statement in ``node``'s block (itself included) that names a section, with that section's identity."""
    for statement in (node, *node.walk()):
        kind = statement.kind
        if kind is None or not kind.refs:
            continue
        for name, target in kind.refs.items():
            value = statement.value(name)
            if value is not None:
                yield statement, Identity((target, value))


def validate(config: Config) -> list[Diagnostic]:
    """Every dangling reference and missing required statement in ``config``."""
    found: list[Diagnostic] = []
    index = config.root.index()
    for section in config.root.entries:
        for statement, target in references(section):
            if target not in index:
                column = len(statement.text) - len(statement.text.lstrip(" ")) + len(statement.words[0]) + 2
                found.append(Diagnostic(
                    "error", statement.line, column,
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
