"""Putting a new live backup in place and loading it, so that a crash at any point is repaired at the next start.

Before the live backup is replaced, an *intent* record (``state-dir/sync/intent.json``,
written atomically and fsynced) names the backup as it was and as it will be
written, by sha256; the previous text is kept in ``previous.conf``. The
record is removed once the apply command has loaded the new file, or the
previous file is back. If the daemon dies in between (kill -9, power), the
record is still there at the next start and :func:`recover` finishes the job:
a backup that still is (or is again) the previous one needs nothing; any
other is loaded again with the apply command, and if that fails the previous
file is put back (only over the file the daemon wrote, never over an
operator's later edit). Until then the server reports *syncing*, never *in sync*.

The backup itself is replaced by :func:`clusterd.livefile.replace`: an
operator's concurrent edit is merged, never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from confmerge import (Config, ConfError, Conflict, adopt, cluster_part, cluster_tree, parse, render, sync_directory,
                       write_atomic)

from . import livefile
from .history import Generation, History, sha256
from .sync import Snapshot, SyncError, snapshot_of

APPLY_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class Applied:
    generation: Generation
    written: bool
    """False when the backup already held the configuration in normal form (nothing was touched)."""
    live: Snapshot
    """The live backup as it now is (saves the daemon parsing it again)."""
    stamp: tuple[int, int]
    """Its mtime and size as this apply left them (:data:`UNKNOWN` when not read here): a later edit differs."""
    conflicts: tuple[Conflict, ...] = ()
    """Entries an operator changed on this server while the daemon wrote, differently: the operator's value stayed."""


UNKNOWN = (0, 0)
"""A stamp no file has: the daemon reads the backup again."""


@dataclass(frozen=True, slots=True)
class Intent:
    """A backup about to be replaced and loaded: which generation, and the sha256 of the text before and after."""

    generation: int
    previous: str
    new: str


@dataclass(frozen=True, slots=True)
class Recovery:
    """What :func:`recover` did at start: an event for the log, and the failure to report, if any."""

    event: str
    error: str | None = None


def _intent_path(store: History) -> Path:
    return store.root / "intent.json"


def pending(store: History) -> Intent | None:
    """The intent of an apply that did not finish (the daemon died during it), if any."""
    try:
        return Intent(**json.loads(_intent_path(store).read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        return Intent(0, "", "")  # unreadable: treated as an apply of unknown files, which recover() re-runs


def _record(store: History, intent: Intent) -> None:
    write_atomic(_intent_path(store), json.dumps(asdict(intent)) + "\n")


def _done(store: History) -> None:
    _intent_path(store).unlink(missing_ok=True)
    sync_directory(store.root)


def apply_generation(store: History, backup: Path, text: str, generation: Generation,
                     apply_command: str | None, live: Snapshot | None = None) -> Applied:
    """Verify, adopt, check, replace (compare and swap, previous kept), run the apply command; undo on its failure.

    ``live`` is the backup as the daemon last read it (read here if None): the
    generation is adopted into that text, and an edit made to the file since
    is merged by the compare and swap, never adopted away. Whether the
    generation may replace the one held is the caller's question (ancestry);
    it is kept in the history here, and the caller makes it the head.
    """
    if sha256(text) != generation.sha256:
        raise SyncError(f"hash mismatch: generation {generation.number} has sha256 {generation.sha256[:12]}..., "
                        f"received {sha256(text)[:12]}...; not applied")
    stamp = UNKNOWN
    if live is None or live.config is None:
        try:
            seen = livefile.read(backup)
        except (OSError, ConfError, livefile.Contended) as error:
            raise SyncError(f"cannot read the live backup {backup}: {_reason(error)}") from None
        try:
            live, stamp = snapshot_of(seen.text, backup), seen.stamp
        except ConfError as error:
            raise SyncError(f"the live backup is not valid ({error.diagnostics[0]}); fix it, and the cluster's "
                            "configuration follows") from None
    if live.digest == generation.digest:
        _save(store, generation, text)
        return Applied(generation, False, live, stamp)
    assert live.config is not None
    result = _adopted(live.config, text, f"generation {generation.number}")
    new_text = render(result)
    written = write_backup(store, backup, live.text, new_text, apply_command, generation)
    _save(store, generation, text)
    if written.merged:  # an operator's edit made meanwhile is in the file too: it goes to the primary as an edit
        return Applied(generation, True, snapshot_of(written.text, backup), written.stamp, written.conflicts)
    # adopt's contract: the result holds the generation's cluster-wide content in normal form
    return Applied(generation, True, Snapshot(new_text, cluster_part(result), generation.digest, result), written.stamp)


def _adopted(server: Config, text: str, name: str) -> Config:
    """``server`` adopting generation ``text``, of which only what differs from its own cluster part is parsed.

    A problem is told as a whole parse of ``text`` tells it, with its lines.
    """
    quick = cluster_tree(server, text, name)
    try:
        if quick is not None:
            try:
                return adopt(server, quick)
            except ConfError:
                pass
        return adopt(server, parse(text, name))
    except ConfError as error:
        raise SyncError(f"the adopted backup would not be valid: {error.diagnostics[0]}") from None


def _save(store: History, generation: Generation, text: str) -> None:
    try:
        store.add(generation, text)
    except OSError as error:
        raise SyncError(f"the backup holds generation {generation.number}, but the state directory cannot record "
                        f"it: {_reason(error)}") from None


def _reason(error: Exception) -> str:
    if isinstance(error, ConfError):
        return error.diagnostics[0].message
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return str(error)


def run_apply_command(command: str | None, backup: Path, number: int) -> None:
    """The operator's command that loads the backup into the server; its failure is a :class:`SyncError`."""
    if not command:
        return
    environment = {**os.environ, "CLUSTERD_BACKUP": str(backup), "CLUSTERD_GENERATION": str(number)}
    try:
        done = subprocess.run(command, shell=True, env=environment, capture_output=True, text=True,
                              timeout=APPLY_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SyncError(f"apply command timed out after {APPLY_TIMEOUT:.0f} s: {shlex.quote(command)}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        raise SyncError(f"apply command failed (exit {done.returncode}){': ' + detail[0] if detail[0] else ''}")


def write_backup(store: History, backup: Path, old_text: str, new_text: str, apply_command: str | None,
                 generation: Generation) -> livefile.Written:
    """Replace the live backup (``new_text`` was made from ``old_text``) and load it; if loading fails, put the previous back.

    The previous backup stays in the store either way, for the operator.
    """
    try:
        write_atomic(store.root / "previous.conf", old_text)
        _record(store, Intent(generation.number, sha256(old_text), sha256(new_text)))
    except OSError as error:
        raise SyncError(f"cannot write the state directory ({_reason(error)}); the backup is not replaced") from None
    try:
        written = livefile.replace(backup, old_text, new_text)
    except OSError as error:
        _done(store)
        raise SyncError(f"cannot write the live backup {backup}: {_reason(error)}; it is unchanged") from None
    except (ConfError, livefile.Contended) as error:
        _done(store)
        raise SyncError(f"cannot write the live backup {backup}: {_reason(error)}; it is unchanged") from None
    try:
        if written.text != new_text:
            _record(store, Intent(generation.number, sha256(old_text), sha256(written.text)))
        run_apply_command(apply_command, backup, generation.number)
    except (SyncError, OSError) as error:
        back = _put_back(backup, written.text, old_text)
        _done(store)
        raise SyncError(f"{_reason(error)}; {back}") from None
    _done(store)
    return written


def _put_back(backup: Path, written: str, previous: str) -> str:
    """The previous backup back in place of the one the daemon wrote (an operator's edit made since is kept)."""
    try:
        livefile.replace(backup, written, previous)
    except (OSError, ConfError, livefile.Contended) as error:
        return f"the previous backup could not be put back: {_reason(error)}"
    return "the previous backup is back"


def recover(store: History, backup: Path, apply_command: str | None) -> Recovery | None:
    """At start: finish an apply the daemon died in (see the module's docstring); None if there was none."""
    intent = pending(store)
    if intent is None:
        return None
    try:
        on_disk = livefile.read(backup).text
    except (OSError, ConfError, livefile.Contended) as error:
        return Recovery("an apply was interrupted by a restart", f"cannot read the live backup {backup} to finish "
                        f"the apply interrupted by a restart: {_reason(error)}")
    kept = _leftovers(backup, {intent.previous, intent.new})
    note = (f"; a file the crash left beside the backup holds other text (an operator's edit being swapped?), "
            f"kept for the operator: {', '.join(map(str, kept))}") if kept else ""
    if sha256(on_disk) == intent.previous:
        _done(store)
        event = (f"an apply of generation {intent.generation} was interrupted before the backup was replaced; "
                 "the backup is the previous one")
        return Recovery(event + note, note[2:] or None)
    try:
        run_apply_command(apply_command, backup, intent.generation)
    except SyncError as error:
        back = "the backup on disk was changed since; it stays"
        try:
            previous = (store.root / "previous.conf").read_text(encoding="utf-8")
        except OSError:
            previous = None
        if sha256(on_disk) == intent.new and previous is not None and sha256(previous) == intent.previous:
            back = _put_back(backup, on_disk, previous)
        _done(store)
        reason = f"after a restart, the interrupted apply of generation {intent.generation}: {error}; {back}{note}"
        return Recovery(reason, reason)
    _done(store)
    event = (f"the apply of generation {intent.generation} was interrupted by a restart; the apply command "
             "ran again for the backup on disk")
    return Recovery(event + note, note[2:] or None)


def _leftovers(backup: Path, known: set[str]) -> list[Path]:
    """Temporary files an interrupted replace left beside the backup: copies of known texts go, any other stays.

    A crash between a swap and its swap back leaves an operator's file under
    the temporary name: it is never removed, and the caller names it.
    """
    kept = []
    for temp in sorted(backup.parent.glob(f".{backup.name}.*.tmp")):
        try:
            digest = hashlib.sha256(temp.read_bytes()).hexdigest()
        except OSError:
            continue
        if digest in known:
            temp.unlink(missing_ok=True)
        else:
            kept.append(temp)
    return kept
