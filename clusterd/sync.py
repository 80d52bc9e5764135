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
import shlex
import subprocess
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from confmerge import (Config, ConfError, Conflict, adopt, cluster_digest, cluster_part, merge, parse, read_text, render,
                       write_atomic)

HISTORY = 20
"""Generations kept as bases for three-way merges of late edits."""

APPLY_TIMEOUT = 120.0


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
    """Read and parse the live backup; :class:`ConfError` if it is not valid."""
    return snapshot_of(read_text(backup), backup)


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
# A secondary


@dataclass(frozen=True, slots=True)
class Applied:
    generation: Generation
    written: bool
    """False when the backup already held the configuration in normal form (nothing was touched)."""
    live: Snapshot
    """The live backup as it now is (saves the daemon parsing it again)."""
    stamp: tuple[int, int]
    """Its mtime and size as this apply left them: a later edit differs."""


def apply_generation(store: Store, backup: Path, text: str, generation: Generation,
                     apply_command: str | None, live: Snapshot | None = None) -> Applied:
    """Verify, adopt, check, write atomically (previous kept), run the apply command; undo on its failure.

    ``live`` is the backup as last read; its tree is used if the file still holds that text.
    """
    if sha256(text) != generation.sha256:
        raise SyncError(f"hash mismatch: generation {generation.number} has sha256 {generation.sha256[:12]}..., "
                        f"received {sha256(text)[:12]}...; not applied")
    current, _ = store.current()
    if generation.older_than(current):
        raise SyncError(f"generation {generation.number} (epoch {generation.epoch}) is older than "
                        f"generation {current.number} (epoch {current.epoch}) held here; not applied")
    try:
        stamp = file_stamp(os.stat(backup))
        old_text = read_text(backup)
    except (OSError, ConfError) as error:
        reason = error.diagnostics[0].message if isinstance(error, ConfError) else (error.strerror or str(error))
        raise SyncError(f"cannot read the live backup {backup}: {reason}") from None
    if live is None or live.config is None or live.text != old_text:
        try:
            live = snapshot_of(old_text, backup)
        except ConfError as error:
            raise SyncError(f"the live backup is not valid ({error.diagnostics[0]}); fix it, and the cluster's "
                            "configuration follows") from None
    if live.digest == generation.digest:
        store.save(generation, text, committed=True)
        return Applied(generation, False, live, stamp)
    assert live.config is not None
    try:
        result = adopt(live.config, parse(text, f"generation {generation.number}"))
    except ConfError as error:
        raise SyncError(f"the adopted backup would not be valid: {error.diagnostics[0]}") from None
    new_text = render(result)
    stamp = write_backup(store, backup, old_text, new_text, apply_command, generation)
    store.save(generation, text, committed=True)
    # adopt's contract: the result holds the generation's cluster-wide content in normal form
    return Applied(generation, True, Snapshot(new_text, cluster_part(result), generation.digest, result), stamp)


def run_apply_command(command: str | None, backup: Path, generation: Generation) -> None:
    """The operator's command that loads the new backup into the server; its failure is a :class:`SyncError`."""
    if not command:
        return
    environment = {**os.environ, "CLUSTERD_BACKUP": str(backup), "CLUSTERD_GENERATION": str(generation.number)}
    try:
        done = subprocess.run(command, shell=True, env=environment, capture_output=True, text=True,
                              timeout=APPLY_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SyncError(f"apply command timed out after {APPLY_TIMEOUT:.0f} s: {shlex.quote(command)}; "
                        "the previous backup is back") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        raise SyncError(f"apply command failed (exit {done.returncode}){': ' + detail[0] if detail[0] else ''}; "
                        "the previous backup is back")


def file_stamp(status: os.stat_result) -> tuple[int, int]:
    return (status.st_mtime_ns, status.st_size)


def write_backup(store: Store, backup: Path, old_text: str, new_text: str, apply_command: str | None,
                 generation: Generation) -> tuple[int, int]:
    """Replace the live backup and load it; if loading fails, the previous file is put back.

    The previous backup stays in the store either way, for the operator.
    """
    write_atomic(store.root / "previous.conf", old_text)
    try:
        stamp = file_stamp(write_atomic(backup, new_text))
    except OSError as error:
        raise SyncError(f"cannot write the live backup {backup}: {error.strerror or error}; it is unchanged") from None
    try:
        run_apply_command(apply_command, backup, generation)
    except SyncError:
        write_atomic(backup, old_text)
        raise
    return stamp
