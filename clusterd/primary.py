"""The primary's job: take in every head it does not descend from, then send its own to whoever lacks it.

Each tick, in this order:

1. **Reconcile.** A peer whose head is not in this server's history has
   something this server lacks (an edit made there, or a whole term as
   primary while this server was away). Its head is fetched with its text
   and lineage. If this server's head is an ancestor, the peer's generation is
   adopted as it is (a fast-forward); otherwise it is merged three-way
   against the merge base into this server's backup, and the result is a
   generation with both heads as parents. Conflicts resolve to this server's
   value and are listed in status and the log. Without a merge base (pruned
   everywhere) the merge is a union, and the log says so.
2. **Distribute.** Only when nothing is left to reconcile: every up peer
   whose head is an ancestor of this server's (never one that is not: that
   would overwrite what it holds) gets the head copied to its inbox and an
   ``apply`` request.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable, Coroutine

from confmerge import ConfError

from . import describe, transfer
from .config import Peer
from .core import ConflictRecord, Core
from .history import NONE, Generation
from .links import LinkDown, PeerLink
from .protocol import Apply, Head, Text
from .apply import UNKNOWN, apply_generation, write_backup
from .sync import SyncError, check, merge_edit, snapshot_of


@dataclass(slots=True)
class PushState:
    """The primary's record of copying generations to one secondary."""

    running: bool = False
    failures: int = 0
    retry_at: float = 0.0
    error: str | None = None
    sent_bytes: int = 0
    whole: bool = False
    """Send the whole text next time (a delta failed)."""


PUSHES = 32
"""Generations sent at once: the rest wait for a free place (a 256-server cluster is not 255 SSH sessions at a time)."""


class Primary:
    def __init__(self, core: Core, links: dict[int, PeerLink],
                 spawn: Callable[[Coroutine[Any, Any, Any]], None]) -> None:
        self.core = core
        self.links = links
        self.spawn = spawn
        self.pushes: dict[int, PushState] = {}
        self.reconciling = False
        self._deltas: dict[tuple[str, str], list[Any] | None] = {}
        self._failed_heads: dict[str, tuple[float, int, str]] = {}
        """A head that could not be taken in: when to try again, how often it failed, and why (logged once)."""

    def tick(self) -> None:
        core = self.core
        if core.live is None or core.applying or self.reconciling:
            return
        if core.head is NONE:
            core.record_edit()
            return
        now = time.monotonic()
        foreign = [p for p in core.membership.peers.values()
                   if p.up and p.head and not core.history.covers(p.head) and p.id in self.links
                   and self._failed_heads.get(p.head, (0.0, 0, ""))[0] <= now]
        if foreign:
            self.reconciling = True
            self.spawn(self._reconcile(foreign[0].id, foreign[0].head))
            return
        self._distribute(now)

    # -- reconcile ---------------------------------------------------------

    def _still_primary(self, term: int) -> bool:
        """This server is still the primary of the term it started in (a merge made after stepping down is not one)."""
        m = self.core.membership
        return m.primary == self.core.config.id and m.epoch == term

    async def _reconcile(self, peer_id: int, head_id: str) -> None:
        core = self.core
        term = core.membership.epoch
        try:
            link = self.links[peer_id]
            reply = await link.request(Head(rid=0))
            if not reply.ok:
                raise SyncError(reply.error or "refused")
            theirs = Generation.from_data(reply.body.get("generation"))
            text = reply.body.get("text")
            if not isinstance(text, str):
                raise SyncError("no text in the reply")
            lineage = reply.body.get("lineage")
            async with core.backup_lock:
                await core.refresh_live(force=True)
                core.record_edit()
                # after recording, whose pruning would drop a peer's head numbered far below this server's
                core.history.learn(lineage if isinstance(lineage, list) else [])
                core.history.add(theirs, text)
                if core.history.covers(theirs.id) or not self._still_primary(term):
                    return
                if core.history.contains(core.head.id, theirs.id):
                    await self._fast_forward(peer_id, theirs, text)
                else:
                    await self._merge(link, theirs, text, term)
            self._failed_heads.pop(head_id, None)
        except (LinkDown, SyncError, ValueError, OSError) as error:
            if isinstance(error, OSError):
                core.faults.failed("recording a peer's generation", error)
            _, failures, reason = self._failed_heads.get(head_id, (0.0, 0, ""))
            retry = min(0.5 * 2 ** (failures + 1), core.config.timing.drift)
            self._failed_heads[head_id] = (time.monotonic() + retry, failures + 1, str(error))
            if str(error) != reason:
                core.events.add(f"could not take in server {peer_id}'s generation {head_id[:12]}: {error}; "
                                "will retry")
        finally:
            self.reconciling = False
            core.nudge()

    async def _fast_forward(self, peer_id: int, theirs: Generation, text: str) -> None:
        core = self.core
        core.applying = True
        try:
            applied = await asyncio.to_thread(apply_generation, core.history, core.config.backup, text, theirs,
                                              core.config.apply_command, core.live)
        finally:
            core.applying = False
        core.edited_meanwhile(applied.conflicts)
        core.hold(theirs, text, written=applied.written)
        await core.refresh_live(known=(applied.live, applied.stamp) if applied.stamp != UNKNOWN else None,
                                force=applied.stamp == UNKNOWN)
        core.events.add(f"took in generation {theirs.number} ({theirs.short}) of server {theirs.author} "
                        f"from server {peer_id}" + ("" if applied.written else " (the backup already held it)"))

    async def _merge(self, link: PeerLink, theirs: Generation, text: str, term: int) -> None:
        core = self.core
        ours = core.head
        nearest = core.history.common_ancestor(ours.id, theirs.id)
        base_text = core.history.text(nearest.id) if nearest is not None else None
        how = "three-way"
        if nearest is not None and base_text is None:
            reply = await link.request(Text(rid=0, id=nearest.id))
            if reply.ok and isinstance(reply.body.get("text"), str):
                base_text = reply.body["text"]
                core.history.add(nearest, base_text)
        if nearest is not None and base_text is None:
            older = core.history.merge_base(ours.id, theirs.id)
            if older is not None:
                base_text = core.history.text(older.id)
                how = (f"three-way against generation {older.number} ({older.short}), an older common ancestor: "
                       f"the nearest, {nearest.number} ({nearest.short}), is kept nowhere reached")
        if base_text is None:
            how = "as a union (no merge base is kept anywhere reached)"
        live = core.live
        if live is None:
            raise SyncError(core.live_error or "the live backup is unreadable")
        outcome = await asyncio.to_thread(merge_edit, live, text, base_text, core.config.backup, theirs.author)
        if not self._still_primary(term):
            core.events.add(f"stepped down before merging server {theirs.author}'s generation {theirs.short}; "
                            "the new primary takes it in")
            return
        for conflict in outcome.conflicts:
            core.conflict(ConflictRecord(theirs.author, conflict.section, conflict.statement, conflict.values[0],
                                         conflict.values[1], conflict.chosen))
        merged_live = await asyncio.to_thread(snapshot_of, outcome.text, core.config.backup)
        summary = await asyncio.to_thread(describe.summarize, core.history.text(ours.id), merged_live.cluster)
        try:
            check(merged_live)
        except ConfError as error:
            raise SyncError(f"merged with this server's backup it would not be valid: {error.diagnostics[0]}") from None
        merged = core.make_generation([ours, theirs], merged_live.cluster, merged_live.digest, term,
                                      tree=merged_live.config, how="merge", summary=summary)
        written = None
        if outcome.changed:
            core.applying = True
            try:
                written = await asyncio.to_thread(write_backup, core.history, core.config.backup, live.text,
                                                  outcome.text, core.config.apply_command, merged)
            finally:
                core.applying = False
            core.edited_meanwhile(written.conflicts)
        core.hold(merged, merged_live.cluster, written=written is not None)
        if written is not None and written.merged:
            await core.refresh_live(force=True)  # an operator's edit made meanwhile: recorded on the next tick
        elif written is not None:
            await core.refresh_live(known=(merged_live, written.stamp))
        if not self._still_primary(term):  # held all the same: it is what the backup holds, with both parents
            core.events.add(f"stepped down while merging server {theirs.author}'s generation {theirs.short}; "
                            f"this server holds the merge, generation {merged.number} ({merged.short}), "
                            "which the new primary takes in")
            return
        core.events.add(f"merged generation {theirs.number} ({theirs.short}) of server {theirs.author} {how}: "
                        f"generation {merged.number} (epoch {merged.epoch}, {merged.short})"
                        + (f", {len(outcome.conflicts)} conflict(s)" if outcome.conflicts else ""))

    # -- distribute --------------------------------------------------------

    def _distribute(self, now: float) -> None:
        core = self.core
        head, text = core.head, None
        running = sum(push.running for push in self.pushes.values())
        for peer in core.config.peers:
            if running >= PUSHES:
                return
            view = core.membership.peers.get(peer.id)
            if view is None or not view.up or not view.inbox or peer.id not in self.links:
                continue
            push = self.pushes.setdefault(peer.id, PushState())
            if push.running or now < push.retry_at:
                continue
            if view.head == head.id and view.digest == head.digest:
                continue
            if view.head and not core.history.covers(view.head):
                continue
            text = text if text is not None else core.head_text()
            if text is None:
                return
            push.running = True
            running += 1
            self.spawn(self._push(peer, head, text, view.inbox, view.head, same=view.digest == head.digest))

    async def _push(self, peer: Peer, generation: Generation, text: str, inbox: str, held: str = "",
                    same: bool = False) -> None:
        """Send the generation: as a delta from the one the peer holds when this server keeps its text, else the file.

        ``same``: the peer's live backup has the generation's digest (it joined holding the unified configuration);
        it is asked to take the text from there, which it does only if the bytes are the generation's, and
        the next try copies the file if not. A join then costs no SSH connection for a copy.
        """
        core = self.core
        push = self.pushes[peer.id]
        config = core.config
        target = transfer.Target(peer.address, peer.ssh_port, config.ssh.user, config.identity, config.known_hosts,
                                 config.address)
        name = transfer.file_name(generation.id)
        started = time.monotonic()
        live = same and not push.whole
        script = None if live or push.whole or not held else await self._delta(held, generation.id, text)
        try:
            if live:
                push.sent_bytes = 0
            elif script is None:
                push.sent_bytes = await transfer.push(target, inbox, name, text.encode("utf-8"))
            else:
                push.sent_bytes = sum(len(line) for _, _, lines in script for line in lines)
            copied = time.monotonic()
            link = self.links.get(peer.id)
            if link is None:
                raise LinkDown(f"server {peer.id} is no longer a peer")
            reply = await link.request(Apply(rid=0, epoch=core.membership.epoch, generation=generation.as_data(),
                                             lineage=core.history.lineage(generation.id), name=name,
                                             base=held if script is not None else "", delta=script or [],
                                             live=live))
            if not reply.ok:
                push.whole = script is not None or live
                raise SyncError(reply.error or "refused")
            push.whole = False
            if (reply.body.get("head"), reply.body.get("digest")) != (generation.id, generation.digest):
                raise SyncError(f"server {peer.id} confirmed generation {str(reply.body.get('head'))[:12]} and digest "
                                f"{str(reply.body.get('digest'))[:12]}, not {generation.short}")
            view = core.membership.peers.get(peer.id)
            if view is not None:
                view.head, view.generation, view.digest = generation.id, generation.number, generation.digest
            push.failures, push.error = 0, None
            done = time.monotonic()
            core.events.add(f"server {peer.id} applied generation {generation.number} ({generation.short})"
                            + ("" if reply.body.get("written") else " (its backup already held it)")
                            + f" in {done - started:.2f} s ({'delta' if script is not None else 'live' if live else 'copy'} "
                            f"{copied - started:.2f} s, {push.sent_bytes} bytes)")
        except (transfer.TransferError, SyncError, LinkDown) as error:
            push.failures += 1
            push.retry_at = time.monotonic() + min(0.5 * 2 ** push.failures, config.timing.drift)
            reason = str(error)
            if reason != push.error:
                core.events.add(f"sync to server {peer.id} failed: {reason}")
            push.error = reason
        finally:
            push.running = False

    async def _delta(self, held: str, wanted: str, text: str) -> list[Any] | None:
        """The delta from a kept generation to the head, made once for every secondary that holds the same one."""
        key = (held, wanted)
        if key not in self._deltas:
            base = self.core.history.text(held)
            script = await asyncio.to_thread(transfer.delta, base, text) if base is not None else None
            if len(self._deltas) >= 8:
                self._deltas.clear()
            self._deltas[key] = script
        return self._deltas[key]

    def retry_all(self) -> None:
        for push in self.pushes.values():
            push.retry_at, push.failures, push.error = 0.0, 0, None
