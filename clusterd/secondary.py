"""What a server answers its peers: the primary's ``apply``, ``head`` and ``text``, a probe, a fetch.

A generation is applied only if it descends from the head this server
holds: a primary never overwrites what it has not taken in. A local edit not
yet recorded is recorded first and the apply refused; the primary then
takes the new head in and sends the merge.
"""

from __future__ import annotations

import asyncio

from . import transfer
from .core import Core
from .history import NONE, Generation
from .protocol import Apply, Fetch, Head, Probe, Reply, Request, Text, as_data
from .apply import UNKNOWN, apply_generation
from .sync import SyncError

class Secondary:
    def __init__(self, core: Core) -> None:
        self.core = core

    async def answer(self, message: Request, sender: int) -> Reply:
        if isinstance(message, Apply):
            return await self.on_apply(message, sender)
        core = self.core
        if isinstance(message, Probe):
            return Reply(message.rid, True, body=as_data(core.heartbeat()))
        if isinstance(message, Head):
            async with core.backup_lock:
                await core.refresh_live(force=True)
                core.record_edit()
            text = core.head_text()
            if core.head is NONE or text is None:
                return Reply(message.rid, False, "this server holds no generation")
            return Reply(message.rid, True, body={"generation": core.head.as_data(), "text": text,
                                                  "lineage": core.history.lineage(core.head.id)})
        if isinstance(message, Text):
            text = core.history.text(message.id)
            return Reply(message.rid, text is not None, "" if text is not None else "not kept here",
                         body={"text": text} if text is not None else {})
        if isinstance(message, Fetch):
            await core.refresh_live(force=True)
            if core.live is None:
                return Reply(message.rid, False, core.live_error or "no live backup")
            return Reply(message.rid, True, body={"text": core.live.text, "digest": core.live.digest})
        return Reply(message.rid, False, f"{message.type} is not a request")

    async def on_apply(self, message: Apply, sender: int) -> Reply:
        core = self.core
        m = core.membership
        rid = message.rid
        if core.revalidating:
            return Reply(rid, False, "this server is revalidating after a pause")
        if core.applying:
            return Reply(rid, False, "this server is applying a generation (or finishing one a restart interrupted)")
        if not m.accepts(message.epoch):
            m.log.append(f"refused: server {sender} sent a generation as primary of epoch {message.epoch}, "
                         f"the cluster is in epoch {m.epoch}")
            core.settle(False)
            return Reply(rid, False, f"stale epoch {message.epoch} (this server knows {m.epoch})")
        if message.epoch > m.epoch or (message.epoch == m.epoch and m.primary is None):
            m.epoch, m.primary = message.epoch, sender
            core.settle(True)
        elif m.primary != sender:
            return Reply(rid, False, f"server {m.primary} is the primary of epoch {m.epoch}, not server {sender}")
        if not transfer.is_transfer_name(message.name) or message.name.endswith(".part"):
            return Reply(rid, False, f"bad file name {message.name!r}")
        path = core.history.inbox / message.name
        try:
            generation = Generation.from_data(message.generation)
        except ValueError as error:
            path.unlink(missing_ok=True)
            return Reply(rid, False, str(error))
        async with core.backup_lock:
            try:
                await core.refresh_live()  # by size and mtime; an edit racing the write is the compare and swap's
                if core.record_edit() is not None or core.edit_pending():
                    return Reply(rid, False, "an edit made here is not in that generation; take it in first")
                core.history.learn(message.lineage)
                if core.head is not NONE and not core.history.contains(core.head.id, generation.id):
                    return Reply(rid, False, f"generation {generation.short} does not descend from generation "
                                             f"{core.head.short} held here; take it in first")
                core.applying = True
                try:
                    text = transfer.received(core.history, message, path,
                                             core.live.cluster if core.live is not None else None)
                    applied = await asyncio.to_thread(apply_generation, core.history, core.config.backup, text,
                                                      generation, core.config.apply_command, core.live)
                except (SyncError, OSError, UnicodeDecodeError, ValueError) as error:
                    reason = str(error) if isinstance(error, SyncError) else f"cannot read the transferred file: {error}"
                    core.apply_error = reason
                    core.events.add(f"generation {generation.number} not applied: {reason}")
                    return Reply(rid, False, reason)
                finally:
                    core.applying = False
                core.edited_meanwhile(applied.conflicts)
                if not core.hold(generation, text, written=applied.written):
                    reason = f"the backup holds generation {generation.short}, but the state directory cannot record it"
                    core.apply_error = reason
                    return Reply(rid, False, reason)
                core.apply_error = None
                await core.refresh_live(known=(applied.live, applied.stamp) if applied.stamp != UNKNOWN else None,
                                        force=applied.stamp == UNKNOWN)
            finally:
                path.unlink(missing_ok=True)
        core.events.add(f"applied generation {generation.number} ({generation.short}) from server {sender}"
                        + ("" if applied.written else " (the backup already held it)"))
        return Reply(rid, True, body={"written": applied.written, "head": generation.id, "digest": applied.live.digest})
