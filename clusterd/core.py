"""The state core: the one place that knows what this server holds, who is up, and what happened.

Everything the roles (:mod:`clusterd.primary`, :mod:`clusterd.secondary`),
the status and the admin socket read or change goes through a :class:`Core`:

* the history (:class:`~clusterd.history.History`) and its head, the
  generation this server holds (there is no other copy of it);
* the live backup as last read (a :class:`~clusterd.sync.Snapshot`), and
  the rule that a change to it becomes a generation whose parent is the head;
* the membership (who is up, the epoch, the primary) and the election;
* the events and conflicts shown in status;
* whether this process was paused, found by the monotonic clock jumping:
  then nothing heard while away is acted on until the peers have answered
  a fresh probe (:meth:`Core.awake`, :meth:`Core.revalidate`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from confmerge import Config, ConfError, Conflict, write_atomic

from . import apply, describe
from .config import ClusterConfig
from .faults import StateFaults
from .history import KEEP, NONE, Generation, History
from .memory import Trimmer
from .membership import Membership, Role
from .pause import Gaps
from .protocol import Heartbeat
from .sync import Snapshot, SyncState, file_stamp, snapshot

log = logging.getLogger("clusterd")

STARVED_GRACE = 0.1
"""Seconds after a wait for the CPU in which no peer is judged silent: what queued for this server is read first."""


@dataclass(slots=True)
class Events:
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=50))

    def add(self, text: str) -> None:
        log.info("%s", text)
        self.lines.append(f"{time.strftime('%H:%M:%S')} {text}")


@dataclass(frozen=True, slots=True)
class ConflictRecord:
    """A value two heads disagreed on, resolved to the primary's."""

    origin: int
    """The server whose head lost the value."""
    section: str
    statement: str | None
    primary: str | None
    edit: str | None
    chosen: str | None

    def as_data(self) -> dict[str, Any]:
        return {"from": self.origin, "section": self.section, "statement": self.statement, "primary": self.primary,
                "edit": self.edit, "chosen": self.chosen}


class Core:
    def __init__(self, config: ClusterConfig, nudge: Callable[[], None]) -> None:
        self.config = config
        self.nudge = nudge
        """Tell every peer at once (a heartbeat now): the daemon wires it to the links."""
        self.history = History(config.state_dir)
        self.history.clear_inbox()
        now = time.monotonic()
        self.started = now
        self.membership = Membership.start(
            config.id, [p.id for p in config.peers], config.timing.detection, config.timing.hold, now,
            epoch=self._saved_epoch(), interval=config.timing.heartbeat,
        )
        self.membership.covers = self.history.covers
        self.membership.head = self.head.id
        self._epoch_saved = self.membership.epoch
        self.events = Events()
        self.faults = StateFaults(self.events.add)
        self.conflicts: deque[ConflictRecord] = deque(maxlen=20)
        self.live: Snapshot | None = None
        self._trimmer = Trimmer()
        self.live_error: str | None = None
        self._live_stat: tuple[int, int] | None = None
        self._last_full_check = now
        self.gaps = Gaps(max(config.timing.detection, 0.5))
        self.unheld: tuple[Generation, str] | None = None
        """A generation the daemon wrote to the live backup that the state directory refused to record (:meth:`hold`)."""
        self._fresh_after = 0.0
        self._starved_said = -math.inf
        self._live_lock = asyncio.Lock()
        self.backup_lock = asyncio.Lock()
        """Held by whoever reads the backup to replace it (apply, merge, recording an edit)."""
        self.applying = apply.pending(self.history) is not None
        """True while a generation is being applied, from the start if an apply was interrupted (:meth:`recover`)."""
        self.apply_error: str | None = None
        self._edit_summary: tuple[str, str, str] = ("", "", "")
        """(head id, digest of the backup, what its edit changed from the head): made in a thread, used when recorded."""
        self.revalidating = False
        self.version = ""
        """The software version this server runs, as :mod:`clusterd.updates` found it ("" unknown)."""
        self.closed = False
        """Set when the daemon stops (or restarts with a new id): what is still in flight changes nothing."""

    # -- what this server holds -------------------------------------------

    @property
    def head(self) -> Generation:
        return self.history.head

    def head_text(self) -> str | None:
        return self.history.text(self.head.id)

    def hold(self, generation: Generation, text: str, written: bool = False) -> bool:
        """Make ``generation`` (with its text) the one this server holds; False if the state directory refused it.

        A failed write is reported (:class:`~clusterd.faults.StateFaults`), never raised: the head stays
        what it was. ``written``: the daemon has already put the generation in the live backup. Then it
        is kept as :attr:`unheld` and held before any edit is recorded (:meth:`record_edit`): an edit
        the operator makes meanwhile is an edit of that generation, not of the older head (recorded
        against the older head, a value the operator carried back from a stale read would look unchanged,
        and the generation would be applied over it again).
        """
        try:
            self.history.add(generation, text)
            self.history.set_head(generation)
        except OSError as error:
            self.faults.failed("saving a generation", error)
            if written:
                self.unheld = (generation, text)
            return False
        self.faults.succeeded("saving a generation")
        self.unheld = None
        self.membership.head = generation.id
        self.nudge()
        return True

    def make_generation(self, parents: list[Generation], text: str, digest: str, epoch: int | None = None,
                        tree: Config | None = None, **notes: Any) -> Generation:
        """A generation made here; its summary is what changed from the first parent (``tree``: ``text`` parsed, or more)."""
        parents = [p for p in parents if p is not NONE and p.id]
        if tree is not None:
            describe.remember(text, tree)
        if "summary" not in notes:
            before = self.history.text(parents[0].id) if parents else None
            notes["summary"] = describe.summarize(before, tree or text) if before is not None or not parents else ""
        return Generation.make(parents, self.config.id, self.membership.epoch if epoch is None else epoch,
                               round(time.time(), 3), text, digest, **notes)

    def find_written(self) -> None:
        """At start: the live backup holds a kept child of the head (written before a restart, its head never
        recorded: the disk was full). It becomes :attr:`unheld`, held before any edit is recorded."""
        live, head = self.live, self.head
        if live is None or head is NONE or live.digest == head.digest or self.unheld is not None:
            return
        for generation in self.history.known()[:KEEP]:
            text = self.history.text(generation.id) if generation.digest == live.digest else None
            if text is not None and head.id in generation.parents:
                self.unheld = (generation, text)
                return

    def record_edit(self, force: bool = False) -> Generation | None:
        """A change to the live backup's cluster-wide content becomes a generation on the head; None if none.

        A server that was never synced records nothing unless it is primary:
        it takes the cluster's configuration (the guide's join).
        """
        live = self.live
        if live is None or self.applying:
            return None
        if self.unheld is not None:
            generation, text = self.unheld
            if not self.hold(generation, text, written=True):
                return None
            self.events.add(f"generation {generation.number} ({generation.short}), which the live backup held, "
                            "is recorded now")
        if not force and live.digest == self.head.digest:
            return None
        if self.head is NONE and self.role() is not Role.PRIMARY:
            return None
        known = self._edit_summary
        summary: dict[str, Any] = {"summary": known[2]} if known[:2] == (self.head.id, live.digest) else {}
        generation = self.make_generation([self.head], live.cluster, live.digest, tree=live.config, how="edit",
                                          **summary)
        if not self.hold(generation, live.cluster):
            return None
        if self.membership.primary == self.config.id:
            self.events.add(f"generation {generation.number} (epoch {generation.epoch}, {generation.short}) "
                            "from this server's backup")
        else:
            self.events.add(f"an edit made here recorded as generation {generation.number} ({generation.short}); "
                            "the primary takes it in")
        return generation

    def edit_pending(self) -> bool:
        """The live backup holds cluster-wide content not yet in the head (recorded on the next tick)."""
        return self.live is not None and self.head is not NONE and self.live.digest != self.head.digest

    # -- the live backup -------------------------------------------------

    async def refresh_live(self, force: bool = False, known: tuple[Snapshot, tuple[int, int]] | None = None) -> None:
        """Re-read the live backup when it changed (size and mtime), and fully every drift interval.

        Parsing runs in a thread (a 100,000-line backup takes about a second,
        which must not hold up heartbeats), one read at a time, so a slow
        read of an older file never overwrites a newer one. ``known`` is the
        backup as the daemon itself just wrote it, with the stamp of that write.
        """
        async with self._live_lock:
            now = time.monotonic()
            if now - self._last_full_check >= self.config.timing.drift:
                force, self._last_full_check = True, now
            if known is not None:
                self._replace_live(known[0])
                self._live_stat = known[1]
                self.live_error = None
                self.nudge()
                return
            try:
                key = file_stamp(self.config.backup.stat())
            except OSError as error:
                self._live_problem(f"cannot read the live backup {self.config.backup}: {error.strerror}")
                return
            if not force and key == self._live_stat:
                return
            self._live_stat = key
            try:
                live = await asyncio.to_thread(snapshot, self.config.backup, True, self.live)
            except ConfError as error:
                more = len(error.diagnostics) - 1
                self._live_problem(f"the live backup is not valid: {error.diagnostics[0]}"
                                   + (f" (and {more} more)" if more else "")
                                   + "; it is not recorded or distributed until it is fixed")
                return
            if self.live is None or live.digest != self.live.digest:
                self.nudge()
            self._replace_live(live)
            self.live_error = None
            await self._summarize_edit(live)

    def _replace_live(self, live: Snapshot) -> None:
        """The backup as now read or written; the tree it replaces is freed, and its memory given back soon after."""
        if live is not self.live:
            self._trimmer.soon()
        self.live = live

    async def _summarize_edit(self, live: Snapshot) -> None:
        """What an edit in the backup changed from the head, worked out in a thread (parsing can take seconds)."""
        head, text = self.head, self.head_text()
        if live.digest != head.digest and text is not None and live.config is not None:
            summary = await asyncio.to_thread(describe.summarize, text, live.config)
            self._edit_summary = (head.id, live.digest, summary)

    def _live_problem(self, text: str) -> None:
        if text != self.live_error:
            self.events.add(text)
        self.live_error = text

    async def recover(self) -> None:
        """Finish an apply a crash interrupted (:func:`clusterd.apply.recover`); the server is *syncing* until then."""
        async with self.backup_lock:
            try:
                done = await asyncio.to_thread(apply.recover, self.history, self.config.backup,
                                               self.config.apply_command)
            finally:
                self.applying = False
        if done is not None:
            self.events.add(done.event)
            self.apply_error = done.error
        await self.refresh_live(force=True)

    # -- membership ------------------------------------------------------

    def role(self) -> Role:
        if self.revalidating and self.membership.primary != self.config.id:
            return Role.JOINING
        return self.membership.role(time.monotonic())

    def heartbeat(self) -> Heartbeat:
        m = self.membership
        return Heartbeat(
            id=self.config.id, epoch=m.epoch, primary=m.primary, uptime=round(time.monotonic() - self.started, 3),
            sees=sorted(m.up), head=self.head.id, generation=self.head.number,
            digest=self.live.digest if self.live else "", state=self.own_state().value, inbox=str(self.history.inbox),
            behind=self.behind() if m.primary == self.config.id and m.sparse else [],
            version=self.version, both_ways=True,
        )

    def behind(self) -> list[int]:
        """The peers up whose head or backup is not this server's head (announced by a primary of a sparse cluster)."""
        head = self.head
        return [p.id for p in self.membership.peers.values() if p.up and (p.head != head.id or p.digest != head.digest)]

    def settle(self, changed: bool) -> None:
        """After any observation: run the election, log what happened, tell peers at once if the view changed."""
        if self.closed:
            return
        before = (self.membership.epoch, self.membership.primary)
        if not self.revalidating:
            self.membership.evaluate(time.monotonic())
        for line in self.membership.drain_log():
            self.events.add(line)
        if changed or (self.membership.epoch, self.membership.primary) != before:
            self.nudge()
        self._save_epoch()

    def observe(self, message: Heartbeat) -> None:
        """A peer's heartbeat; ignored while revalidating (it may have waited in a socket buffer while this server was away)."""
        if self.revalidating:
            return
        self.settle(self.membership.heartbeat(message, time.monotonic()))

    def lost(self, peer_id: int) -> None:
        """The peer's connection closed."""
        self.settle(self.membership.closed(peer_id, time.monotonic()))

    def running(self) -> None:
        """The tick starts: the clock for pause detection counts from now (a long first read of the backup is no pause)."""
        self.gaps.restart()

    def awake(self, tick: bool = False) -> bool:
        """Note that the process is running; False the first time after it was paused past the detection time.

        The event loop runs something at least every detection time / 3, so
        a longer gap means the process did not run: a SIGSTOP, a VM pause, a
        machine suspended, and what was heard before is stale; or it waited
        for a CPU all along (:mod:`clusterd.pause`), and what queued for it is
        fresh: it reads that before judging any peer silent.
        """
        self.gaps.limit = max(self.config.timing.detection, 0.5)  # a reload may change the timing
        away = self.gaps.turn(tick)
        now = time.monotonic()
        if away is None:
            if self.gaps.starved:
                self._fresh_after = now + STARVED_GRACE
                self.membership.forgive()
                if now - self._starved_said > 60:
                    self._starved_said = now
                    self.events.add(f"this server waited {self.gaps.starved:.1f} s for a CPU (the machine is "
                                    "overloaded; not a pause)")
                self.gaps.starved = 0.0
            return True
        self.membership.returned(now, away)
        self.membership.forgive()
        self.revalidating = True
        self.settle(False)
        return False

    async def revalidate(self, probe: Callable[[int], Awaitable[Heartbeat | None]]) -> None:
        """Ask every peer for its view now; only their answers count, then heartbeats count again."""
        peers = list(self.membership.peers)
        answers = await asyncio.gather(*(probe(p) for p in peers))
        now = time.monotonic()
        self.revalidating = False
        changed = False
        for peer_id, answer in zip(peers, answers):
            if answer is None:
                changed |= self.membership.lost(peer_id, now, "no answer after this server's pause")
            else:
                changed |= self.membership.heartbeat(answer, now)
        self.events.add(f"revalidated after the pause: {sum(a is not None for a in answers)} of {len(peers)} "
                        f"peer(s) answered; epoch {self.membership.epoch}, primary {self.membership.primary}")
        self.settle(changed)

    def expire(self) -> None:
        """Mark silent peers down; not right after this server waited for a CPU, until it has read what queued."""
        now = time.monotonic()
        if not self.revalidating and now >= self._fresh_after:
            self.settle(self.membership.expire(now))

    def _saved_epoch(self) -> int:
        try:
            return int(json.loads((self.config.state_dir / "epoch.json").read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def _save_epoch(self) -> None:
        """Save the epoch if it changed; a failed save is reported and retried on the next settle, never raised."""
        if self.membership.epoch != self._epoch_saved:
            try:
                write_atomic(self.config.state_dir / "epoch.json", json.dumps({"epoch": self.membership.epoch}) + "\n")
            except OSError as error:
                self.faults.failed("saving the epoch", error)
                return
            self.faults.succeeded("saving the epoch")
            self._epoch_saved = self.membership.epoch

    # -- sync state --------------------------------------------------------

    def own_state(self) -> SyncState:
        """This server's sync state; a failed apply counts only while this server still differs from the primary."""
        if self.applying:
            return SyncState.SYNCING
        if self.membership.primary == self.config.id:
            return SyncState.CHANGES_PENDING if self.edit_pending() else SyncState.IN_SYNC
        m = self.membership
        primary = m.peers.get(m.primary) if m.primary is not None else None
        differs = primary is None or not primary.up or primary.head != self.head.id or (
            primary.digest != (self.live.digest if self.live else ""))
        if self.apply_error and differs:
            return SyncState.SYNC_FAILED
        if self.head is NONE:
            return SyncState.AWAITING_INITIAL_SYNC
        if self.edit_pending():
            return SyncState.CHANGES_PENDING
        if primary is not None and primary.up and differs:
            return SyncState.CHANGES_PENDING
        return SyncState.IN_SYNC

    def acknowledged(self) -> bool:
        """The live backup's cluster-wide content is in the head, and another server holds that head too."""
        if self.edit_pending() or self.head is NONE:
            return False
        return not self.config.peers or any(p.up and p.head == self.head.id for p in self.membership.peers.values())

    def edited_meanwhile(self, conflicts: tuple[Conflict, ...]) -> None:
        """Entries the operator of this server changed while the daemon wrote them: the operator's value stayed."""
        for c in conflicts:
            self.conflicts.append(ConflictRecord(self.config.id, c.section, c.statement, c.values[0], c.values[1],
                                                 c.chosen))
            self.events.add(f"conflict with an edit made on this server while the daemon wrote its backup, in "
                            f"{c.section}{' / ' + c.statement if c.statement else ''}: kept the operator's "
                            f"{c.chosen!r}, not {c.values[1]!r}")

    def conflict(self, record: ConflictRecord) -> None:
        self.conflicts.append(record)
        self.events.add(f"conflict with server {record.origin}'s head in {record.section}"
                        f"{' / ' + record.statement if record.statement else ''}: "
                        f"kept the primary's {record.chosen!r}, not {record.edit!r}")
