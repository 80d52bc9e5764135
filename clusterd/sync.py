"""Generations of the cluster configuration: made on the primary, applied on secondaries, merged from edits.

The cluster configuration is the cluster-wide part of a live backup
(:func:`confmerge.merge.cluster_part`), kept as a
:class:`~clusterd.history.Generation`. A server applies one by adopting it
into its own backup (:func:`confmerge.merge.adopt`): its server-specific
sections stay. A head the primary does not descend from is merged into its
backup three-way against the merge base (:func:`confmerge.merge.merge` with
``base``). Whether two servers hold the same configuration is decided by
:func:`confmerge.merge.cluster_digest`, in normal form, never by bytes.

Everything here is files and the engine; sockets live in :mod:`clusterd.daemon`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from confmerge import (
    Config, ConfError, Conflict, Diagnostic, cluster_digest, cluster_part, merge, parse, read_text, render, validate,
)

from . import livefile


class SyncState(StrEnum):
    IN_SYNC = "in sync"
    CHANGES_PENDING = "changes pending"
    AWAITING_INITIAL_SYNC = "awaiting initial sync"
    SYNCING = "syncing"
    SYNC_FAILED = "sync failed"
    DISCONNECTED = "disconnected"


class SyncError(Exception):
    """A generation that was not applied, and why (reported to the primary and in status)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A live backup as the daemon sees it: its text, its cluster-wide part, and the tree they came from."""

    text: str
    cluster: str
    digest: str
    config: Config | None = field(default=None, compare=False, repr=False)
    """Kept so that applying a generation does not parse the backup again (the engine never mutates a tree)."""


def snapshot(backup: Path, checked: bool = False, last: Snapshot | None = None) -> Snapshot:
    """Read (never half an in-place write: :func:`clusterd.livefile.read`) and parse the live backup.

    :class:`ConfError` if it is not valid or cannot be read; ``checked``: also
    if a reference dangles or a required statement is missing
    (:func:`confmerge.validate`), so that such a backup never becomes a generation.
    ``last``, the snapshot taken before, is returned as it is when the text
    is the same: the periodic full check of a 10,000-line backup then costs
    a read, not a parse (0.2 s of CPU, a secondary's largest idle cost).
    """
    try:
        text = livefile.read(backup).text
    except OSError:
        text = read_text(backup)  # says plainly what is wrong, as a ConfError
    except livefile.Contended as error:
        raise ConfError([Diagnostic("error", 1, 1, str(error), str(backup))]) from None
    if last is not None and last.config is not None and last.text == text:
        return last
    live = snapshot_of(text, backup)
    if checked:
        check(live)
    return live


def check(live: Snapshot) -> None:
    """:class:`ConfError` with every dangling reference and missing required statement of ``live``."""
    problems = validate(live.config) if live.config is not None else []
    if problems:
        raise ConfError(problems)


def snapshot_of(text: str, backup: Path) -> Snapshot:
    config = parse(text, str(backup))
    return Snapshot(text, cluster_part(config), cluster_digest(config), config)


# ---------------------------------------------------------------------------
# Merging a head into the primary's backup


@dataclass(frozen=True, slots=True)
class EditOutcome:
    text: str
    """The primary's live backup after the merge."""
    changed: bool
    conflicts: tuple[Conflict, ...]
    three_way: bool


def merge_edit(live: Snapshot, edit_text: str, base_text: str | None, backup: Path, sender: int) -> EditOutcome:
    """Another head's cluster-wide text merged into the primary's backup, three-way when the base is known.

    Without the base (pruned from every history reached) the merge is a
    union: nothing is lost, but a removal does not propagate; the caller says so.
    """
    try:
        primary_config = live.config or parse(live.text, str(backup))
        edited = parse(edit_text, f"head of server {sender}")
        base = parse(base_text, "base") if base_text is not None else None
        result = merge([primary_config, edited], primary=0, base=base)
    except ConfError as error:
        raise SyncError(f"the head of server {sender} cannot be merged: {error.diagnostics[0]}") from None
    text = render(result.outputs[0])
    return EditOutcome(text, text != live.text, result.conflicts, base is not None)


# ---------------------------------------------------------------------------
# A secondary (applying a generation is :mod:`clusterd.apply`)


def file_stamp(status: os.stat_result) -> tuple[int, int]:
    return (status.st_mtime_ns, status.st_size)

