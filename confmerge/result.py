"""What a merge did: the outputs, the conflicts and every edit, as frozen values for the report.

The engine fills them (:mod:`confmerge.merge`); the CLI writes them as
``merge-report.json`` and the daemon logs them. ``docs/merge.md``, "Report",
gives their meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import overload

from .tree import Config, Node


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


@overload
def shown(node: Node) -> str: ...
@overload
def shown(node: None) -> None: ...
@overload
def shown(node: Node | None) -> str | None: ...
def shown(node: Node | None) -> str | None:
    """A line as the report shows it: as written, without its indentation."""
    return node.text.strip(" ") if node is not None else None
