"""Generations of the cluster configuration: made on the primary, applied on secondaries, merged from edits.

The cluster configuration is the cluster-wide part of the primary's live
backup (:func:`confmerge.merge.cluster_part`), numbered by a
:class:`Generation`. A secondary applies one by adopting it into its own
backup (:func:`confmerge.merge.adopt`): its server-specific sections stay.
An edit to a secondary's cluster-wide sections goes to the primary and is
merged three-way against the last generation both had
(:func:`confmerge.merge.merge` with ``base``). Whether two servers hold the
same configuration is decided by :func:`confmerge.merge.cluster_digest`, in
normal form, never by bytes.

Everything here is files and the engine; sockets live in :mod:`clusterd.daemon`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from confmerge import (Config, ConfError, Conflict, Diagnostic, cluster_digest, cluster_part, merge, parse, read_text,
                       render, write_atomic)

from . import livefile

HISTORY = 20
"""Generations kept as bases for three-way merges of late edits."""


@dataclass(frozen=True, slots=True)
class Generation:
    """One version of the cluster configuration. Ordered by number, then epoch (a later term wins a tie)."""

    number: int
    epoch: int
    sha256: str
    """Of the transferred text: checks the transfer."""
    digest: str
    """Of the cluster-wide content in normal form: tells whether a server holds it."""

    def older_than(self, other: "Generation") -> bool:
        return (self.number, self.epoch) < (other.number, other.epoch)


NONE = Generation(0, 0, "", "")


class SyncState(StrEnum):
    IN_SYNC = "in sync"
    CHANGES_PENDING = "changes pending"
    AWAITING_INITIAL_SYNC = "awaiting initial sync"
    SYNCING = "syncing"
    SYNC_FAILED = "sync failed"
    DISCONNECTED = "disconnected"


class SyncError(Exception):
    """A generation that was not applied, and why (reported to the primary and in status)."""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A live backup as the daemon sees it: its text, its cluster-wide part, and the tree they came from."""

    text: str
    cluster: str
    digest: str
    config: Config | None = field(default=None, compare=False, repr=False)
    """Kept so that applying a generation does not parse the backup again (the engine never mutates a tree)."""


def snapshot(backup: Path) -> Snapshot:
    """Read (never half an in-place write: :func:`clusterd.livefile.read`) and parse the live backup.

    :class:`ConfError` if it is not valid or cannot be read.
    """
    try:
        text = livefile.read(backup).text
    except OSError:
        text = read_text(backup)  # says plainly what is wrong, as a ConfError
    except livefile.Contended as error:
        raise ConfError([Diagnostic("error", 1, 1, str(error), str(backup))]) from None
    return snapshot_of(text, backup)


def snapshot_of(text: str, backup: Path) -> Snapshot:
    config = parse(text, str(backup))
    return Snapshot(text, cluster_part(config), cluster_digest(config), config)


class Store:
    """The sync state on disk, under ``<state-dir>/sync``: current generation, history, inbox, previous backup."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "sync"
        self.inbox = self.root / "inbox"
        self.history_dir = self.root / "history"
        for directory in (self.root, self.inbox, self.history_dir):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._meta = self.root / "generation.json"

    def current(self) -> tuple[Generation, bool]:
        """The generation this server holds and whether it is committed (a secondary acknowledged it)."""
        try:
            data = json.loads(self._meta.read_text())
            return Generation(**data["generation"]), bool(data["committed"])
        except (OSError, ValueError, KeyError, TypeError):
            return NONE, True

    def text(self, number: int) -> str | None:
        try:
            return (self.history_dir / f"{number}.conf").read_text(encoding="utf-8")
        except OSError:
            return None

    def generation(self, number: int) -> Generation | None:
        """A kept generation's metadata (written beside its text), or None if it is no longer kept."""
        try:
            return Generation(**json.loads((self.history_dir / f"{number}.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, generation: Generation, text: str, committed: bool) -> None:
        """Keep a generation (its text and metadata, the last :data:`HISTORY` of them) and make it the current one."""
        write_atomic(self.history_dir / f"{generation.number}.conf", text)
        write_atomic(self.history_dir / f"{generation.number}.json", json.dumps(asdict(generation)) + "\n")
        self.commit(generation, committed)
        kept = sorted((int(p.stem) for p in self.history_dir.glob("*.conf") if p.stem.isdigit()), reverse=True)
        for number in kept[HISTORY:]:
            (self.history_dir / f"{number}.conf").unlink(missing_ok=True)
            (self.history_dir / f"{number}.json").unlink(missing_ok=True)

    def commit(self, generation: Generation, committed: bool = True) -> None:
        write_atomic(self._meta, json.dumps({"generation": asdict(generation), "committed": committed}) + "\n")

    def forget_uncommitted(self) -> Generation:
        """At start: a generation no secondary acknowledged never reached the cluster; fall back to the last one that did.

        Its content is not lost: it is still in the live backup, which then
        differs from the fallback and is sent to the primary as an edit.
        """
        generation, committed = self.current()
        if committed or generation == NONE:
            return generation
        for number in range(generation.number - 1, 0, -1):
            older = self.generation(number)
            if older is not None and self.text(number) is not None:
                self.commit(older, True)
                return older
        self.commit(NONE, True)
        return NONE

    def clear_inbox(self) -> None:
        for path in self.inbox.iterdir():
            path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------
# The primary


def next_generation(current: Generation, newest_seen: int, epoch: int, live: Snapshot) -> Generation:
    return Generation(max(current.number, newest_seen) + 1, epoch, sha256(live.cluster), live.digest)


@dataclass(frozen=True, slots=True)
class EditOutcome:
    text: str
    """The primary's live backup after the merge."""
    changed: bool
    conflicts: tuple[Conflict, ...]
    three_way: bool


def merge_edit(live: Snapshot, edit_text: str, base_text: str | None, backup: Path, sender: int) -> EditOutcome:
    """A secondary's cluster-wide sections merged into the primary's backup, three-way when the base is known.

    Without the base (a generation older than the history) the merge is a
    union: nothing is lost, but a removal does not propagate; the caller says so.
    """
    try:
        primary_config = live.config or parse(live.text, str(backup))
        edited = parse(edit_text, f"edit from server {sender}")
        base = parse(base_text, "base") if base_text is not None else None
        result = merge([primary_config, edited], primary=0, base=base)
    except ConfError as error:
        raise SyncError(f"the edit from server {sender} cannot be merged: {error.diagnostics[0]}") from None
    text = render(result.outputs[0])
    return EditOutcome(text, text != live.text, result.conflicts, base is not None)


# ---------------------------------------------------------------------------
# A secondary (applying a generation is :mod:`clusterd.apply`)


def file_stamp(status: os.stat_result) -> tuple[int, int]:
    return (status.st_mtime_ns, status.st_size)
