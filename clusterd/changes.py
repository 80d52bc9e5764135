"""Safe changes to the whole cluster: its history, a load with confirm, a rollback (``docs/clusterd.md``).

Everything here is a generation in the history the daemon already keeps;
nothing in it is ever rewritten. A load, a confirm, a rollback and the
expiry of a provisional load are each a new generation made by the primary,
with what it is in its metadata (:attr:`~clusterd.history.Generation.how`,
``of``, ``ends``, ``deadline``). So the pending deadline is cluster state:
every server that holds the load holds its deadline, and whichever server is
primary when it passes returns the cluster to the configuration before the
load (:meth:`Changes.tick`), after a failover or a restart too. Asked on a
secondary, a change is a request to the primary over the control channel.

The functions the CLI and the web app call are the methods of :class:`Changes`;
they return typed values and raise :class:`ChangeError` with a plain message.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Coroutine

from confmerge import (
    Config, ConfError, Diff, Scope, adopt, cluster_digest, cluster_part, diff, diff_data, diff_text, parse, validate,
)

from . import describe
from .apply import UNKNOWN, apply_generation
from .history import KEEP, NONE, Generation, History
from .links import LinkDown, PeerLink
from .membership import Role
from .protocol import Compare, Confirm, Generations, Load, Reply, Rollback, Show, Text
from .sync import SyncError

if TYPE_CHECKING:
    from .core import Core
    from .primary import Primary

MAX_CONFIRM_MINUTES = 24 * 60.0
NUMBER_DIGITS = 6
"""A reference of at most this many digits is a generation number; anything longer, an id prefix."""


class ChangeError(Exception):
    """A change not made, or a generation not found, with the reason in one plain message."""


def when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


# ---------------------------------------------------------------------------
# Reading the history (pure: a History and a head in, values out)


@dataclass(frozen=True, slots=True)
class Pending:
    """A provisional load not yet confirmed, and what has been made on top of it."""

    load: Generation
    before: Generation | None
    """The generation the load was made on: what an expiry restores (None if pruned here)."""
    edits: tuple[Generation, ...]
    """Generations made on top of the load, newest first: they go with it if it expires."""

    @property
    def deadline(self) -> float:
        return self.load.deadline

    def as_data(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        return {"load": self.load.id, "number": self.load.number, "author": self.load.author,
                "on": self.load.on if self.load.on >= 0 else self.load.author, "deadline": self.deadline,
                "left": round(max(0.0, self.deadline - now), 1),
                "before": self.before.id if self.before else self.load.parents[0] if self.load.parents else None,
                "before_number": self.before.number if self.before else None,
                "edits": [{"id": g.id, "number": g.number, "author": g.author, "how": g.made} for g in self.edits]}


def pending(history: History, head: str) -> Pending | None:
    """The newest provisional load among ``head``'s ancestors that no later generation settles."""
    ancestors = history.ancestors(head)
    settled = {g.ends for g in ancestors if g.ends}
    loads = [g for g in ancestors if g.made == "load" and g.deadline and g.id not in settled]
    if not loads:
        return None
    load = max(loads, key=lambda g: (g.number, g.time))
    above = {load.id}
    for g in sorted(ancestors, key=lambda g: g.number):
        if any(p in above for p in g.parents):
            above.add(g.id)
    edits = tuple(sorted((g for g in ancestors if g.id in above and g.id != load.id),
                         key=lambda g: (g.number, g.time), reverse=True))
    before = history.get(load.parents[0]) if load.parents else None
    return Pending(load, before, edits)


def how(generation: Generation, history: History) -> str:
    """How it was made, for people: ``edit on server 2``, ``rollback to generation 5``, ..."""
    def number(generation_id: str) -> str:
        found = history.get(generation_id)
        return f"generation {found.number}" if found else f"generation {generation_id[:12]}"

    made = generation.made
    on = generation.on if generation.on >= 0 else generation.author
    if made == "edit":
        return f"edit on server {generation.author}"
    if made == "merge":
        theirs = history.get(generation.parents[1]) if len(generation.parents) > 1 else None
        return (f"merge on heal of server {theirs.author}'s generation {theirs.number}" if theirs
                else "merge on heal")
    if made == "load":
        return f"load on server {on}" + (f", to confirm by {when(generation.deadline)} UTC"
                                         if generation.deadline else "")
    if made == "confirm":
        return f"confirm on server {on} of the load, {number(generation.ends)}"
    if made == "rollback":
        return f"rollback on server {on} to {number(generation.of)}" + (
            f", returning the provisional load, {number(generation.ends)}" if generation.ends else "")
    if made == "expiry":
        return f"expiry of the unconfirmed load, {number(generation.ends)}: back to {number(generation.of)}"
    return made


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of ``clusterd history``."""

    generation: Generation
    how: str
    kept: bool
    """Its text is kept here (``show``, ``diff`` and ``rollback --to`` can use it)."""
    state: str
    """For a provisional load: ``pending``, ``confirmed`` or ``returned``; else empty."""

    def as_data(self) -> dict[str, Any]:
        g = self.generation
        return {"number": g.number, "id": g.id, "parents": list(g.parents), "time": g.time, "author": g.author,
                "epoch": g.epoch, "made": g.made, "how": self.how, "summary": g.summary, "of": g.of or None,
                "ends": g.ends or None, "deadline": g.deadline or None, "on": g.on if g.on >= 0 else None,
                "returned": list(g.returned), "kept": self.kept, "state": self.state or None}


def entries(history: History, head: str) -> list[Entry]:
    """The head and its kept ancestors, newest first."""
    ancestors = sorted(history.ancestors(head), key=lambda g: (g.number, g.time), reverse=True)
    settled = {g.ends: g for g in ancestors if g.ends}
    open_load = pending(history, head)
    out = []
    for g in ancestors:
        state = ""
        if g.made == "load" and g.deadline:
            settler = settled.get(g.id)
            state = ("pending" if open_load and open_load.load.id == g.id else
                     "confirmed" if settler and settler.made == "confirm" else "returned" if settler else "")
        out.append(Entry(g, how(g, history), history.text(g.id) is not None, state))
    return out


def resolve(history: History, head: str, ref: str) -> Generation:
    """A generation by number (among the head's ancestors) or id prefix (among all kept); :class:`ChangeError` if none or several."""
    ref = ref.strip()
    if ref.isdigit() and len(ref) <= NUMBER_DIGITS:
        number = int(ref)
        found = [g for g in history.ancestors(head) if g.number == number]
        newest = history.get(head)
        if not found:
            if newest is None or number > newest.number:
                raise ChangeError(f"no generation {number}: the newest is {newest.number if newest else 'none'}")
            raise ChangeError(f"generation {number} is no longer kept here (the last {KEEP} are)")
    else:
        if len(ref) < 4 or any(c not in "0123456789abcdef" for c in ref.lower()):
            raise ChangeError(f"{ref!r} is neither a generation number nor an id prefix (4 or more hex digits)")
        found = [g for g in history.known() if g.id.startswith(ref.lower())]
        if not found:
            raise ChangeError(f"no generation with an id starting {ref!r} is kept here")
    if len(found) > 1:
        raise ChangeError(f"{ref!r} is ambiguous: " + ", ".join(
            f"{g.short} ({how(g, history)})" for g in found[:5]) + "; name one by its id")
    return found[0]


def back(history: History, head: Generation, steps: int) -> Generation:
    """The generation ``steps`` back from the head along first parents (a merge's first parent is the primary's side)."""
    if steps < 1:
        raise ChangeError("rollback N needs N of 1 or more (N generations back)")
    current = head
    for taken in range(steps):
        parent = history.get(current.parents[0]) if current.parents else None
        if parent is None:
            raise ChangeError(f"the history kept here goes back {taken} generation(s) from generation {head.number}, "
                              f"not {steps}")
        current = parent
    return current


def _cluster_diff(old: Config, new: Config, old_name: str, new_name: str) -> Diff:
    return replace(diff(old, new, Scope.CLUSTER), old_file=old_name, new_file=new_name)


# ---------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a load did (or, on a dry run, would do)."""

    diff: dict[str, Any]
    """The cluster-scope diff from the cluster's configuration to the file's (``confmerge.diff/1``)."""
    text: str
    """The same diff for a person."""
    generation: Generation | None
    """The generation made; None on a dry run or when the cluster already has it."""
    primary: int

    def as_data(self) -> dict[str, Any]:
        return {"diff": self.diff, "text": self.text, "primary": self.primary,
                "generation": self.generation.as_data() if self.generation else None}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "Loaded":
        made = data.get("generation")
        return cls(data["diff"], data["text"], Generation.from_data(made) if made else None, int(data["primary"]))


@dataclass(frozen=True, slots=True)
class Made:
    """A confirm's or a rollback's generation, made by the primary."""

    generation: Generation
    primary: int
    message: str

    def as_data(self) -> dict[str, Any]:
        return {"generation": self.generation.as_data(), "primary": self.primary, "message": self.message}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "Made":
        return cls(Generation.from_data(data["generation"]), int(data["primary"]), str(data["message"]))


@dataclass(frozen=True, slots=True)
class Comparison:
    old: Generation
    new: Generation
    diff: Diff


# ---------------------------------------------------------------------------
# The daemon's side


class Changes:
    """History, show and diff from this server's history; load, confirm and rollback made by the primary."""

    def __init__(self, core: "Core", primary: "Primary", links: dict[int, PeerLink],
                 spawn: Callable[[Coroutine[Any, Any, Any]], None]) -> None:
        self.core = core
        self.primary = primary
        self.links = links
        self.spawn = spawn
        self._expiring = False
        self._expiry_retry = 0.0
        self._expiry_problem = ""
        self._pending: tuple[str, Pending | None] = ("", None)

    # -- reading --------------------------------------------------------

    def pending(self) -> Pending | None:
        head = self.core.head.id
        if self._pending[0] != head:
            self._pending = (head, pending(self.core.history, head) if head else None)
        return self._pending[1]

    def history(self) -> list[Entry]:
        return entries(self.core.history, self.core.head.id)

    def resolve(self, ref: str) -> Generation:
        if self.core.head is NONE:
            raise ChangeError("this server holds no generation yet")
        return resolve(self.core.history, self.core.head.id, ref)

    async def text(self, generation: Generation) -> str:
        """Its text, kept here or else asked of the primary (a secondary keeps only what it applied)."""
        text = self.core.history.text(generation.id)
        if text is not None:
            return text
        primary = self.core.membership.primary
        link = self.links.get(primary) if primary is not None else None
        if link is not None:
            try:
                reply = await link.request(Text(rid=0, id=generation.id), timeout=30)
            except LinkDown:
                reply = Reply(0, False)
            if reply.ok and isinstance(reply.body.get("text"), str):
                return reply.body["text"]
        raise ChangeError(f"generation {generation.number} ({generation.short}) is known here, but its text is no "
                          f"longer kept here or on the primary (the last {KEEP} are)")

    async def show(self, ref: str) -> tuple[Generation, str]:
        generation = self.resolve(ref)
        return generation, await self.text(generation)

    async def compare(self, old_ref: str, new_ref: str) -> Comparison:
        old, new = self.resolve(old_ref), self.resolve(new_ref)
        old_text, new_text = await self.text(old), await self.text(new)

        def work() -> Diff:
            return _cluster_diff(parse(old_text, "old"), parse(new_text, "new"),
                                 f"generation {old.number} ({old.short})", f"generation {new.number} ({new.short})")
        try:
            return Comparison(old, new, await asyncio.to_thread(work))
        except ConfError as error:
            raise ChangeError(f"a generation's text does not parse: {error.diagnostics[0]}") from None

    # -- changing: on the primary, or asked of it --------------------------

    async def load(self, text: str, name: str, confirm_minutes: float | None = None, dry_run: bool = False,
                   on: int | None = None) -> Loaded:
        """``clusterd load``: the file's cluster-wide sections become the cluster's (provisional with a confirm time)."""
        if confirm_minutes is not None and not 0 < confirm_minutes <= MAX_CONFIRM_MINUTES:
            raise ChangeError(f"--confirm takes minutes, more than 0 and at most {MAX_CONFIRM_MINUTES:.0f}")
        if not self._is_primary():
            body = await self._ask(Load(text=text, name=name, confirm=confirm_minutes, dry_run=dry_run,
                                        on=self.core.config.id))
            return Loaded.from_data(body)
        on = self.core.config.id if on is None else on
        try:
            config = await asyncio.to_thread(_checked, text, name)
        except ConfError as error:
            raise ChangeError("\n".join(map(str, error.diagnostics))) from None
        core = self.core
        async with core.backup_lock:
            live = await self._current()
            head_text = core.head_text()
            found = await asyncio.to_thread(_cluster_diff, describe.tree(head_text or "", "cluster"), config,
                                            f"cluster (generation {core.head.number}, {core.head.short})", name)
            result = Loaded(diff_data(found), diff_text(found), None, core.config.id)
            if dry_run:
                return result
            waiting = self.pending()
            if waiting is not None:
                raise ChangeError(f"the load of generation {waiting.load.number} is still provisional "
                                  f"(returned at {when(waiting.deadline)} UTC unless confirmed): run clusterd "
                                  "confirm, or clusterd rollback, first")
            if not found:
                return result
            if confirm_minutes is not None and core.head is NONE:
                raise ChangeError("the cluster has no configuration yet to return to: load without --confirm")
            problem = await asyncio.to_thread(_adoption_problem, live.config, config)
            if problem:
                raise ChangeError(f"adopted into server {core.config.id}'s backup, {name} would not be valid: "
                                  f"{problem}; nothing loaded")
            deadline = round(time.time() + confirm_minutes * 60, 3) if confirm_minutes is not None else 0.0
            generation = await self._make(cluster_part(config), cluster_digest(config), config, how="load",
                                          deadline=deadline, on=on)
        core.events.add(f"generation {generation.number} (epoch {generation.epoch}, {generation.short}): {name} "
                        f"loaded on server {on}"
                        + (f", provisional: returned at {when(deadline)} UTC unless confirmed" if deadline else ""))
        return replace(result, generation=generation)

    async def confirm(self, on: int | None = None) -> Made:
        """``clusterd confirm``: the provisional load stays (a generation that says so)."""
        if not self._is_primary():
            return Made.from_data(await self._ask(Confirm(on=self.core.config.id)))
        on = self.core.config.id if on is None else on
        core = self.core
        async with core.backup_lock:
            await self._current()
            waiting = self.pending()
            if waiting is None:
                raise ChangeError("no load is waiting to be confirmed")
            if time.time() >= waiting.deadline:
                raise ChangeError(f"too late: the load of generation {waiting.load.number} had to be confirmed by "
                                  f"{when(waiting.deadline)} UTC; it is being returned")
            text = core.head_text()
            if text is None:
                raise ChangeError("the head's text is missing here")
            generation = await self._make(text, core.head.digest, None, how="confirm", ends=waiting.load.id, on=on,
                                          summary=f"confirms the load of generation {waiting.load.number}"
                                          + (f" and {len(waiting.edits)} generation(s) made on top of it"
                                             if waiting.edits else ""))
        message = (f"the load of generation {waiting.load.number} is confirmed (generation {generation.number}); "
                   "it stays")
        core.events.add(f"generation {generation.number} (epoch {generation.epoch}, {generation.short}): {message}, "
                        f"confirmed on server {on}")
        return Made(generation, core.config.id, message)

    async def rollback(self, steps: int | None = None, to: str | None = None, on: int | None = None) -> Made:
        """``clusterd rollback N`` / ``--to G``: a new generation with an older one's text; nothing rewritten."""
        if (steps is None) == (to is None):
            raise ChangeError("name either N (generations back) or --to G")
        if not self._is_primary():
            if to is not None:
                to = self.resolve(to).id  # as this server's history names it
            return Made.from_data(await self._ask(Rollback(steps=steps, to=to, on=self.core.config.id)))
        on = self.core.config.id if on is None else on
        core = self.core
        async with core.backup_lock:
            await self._current()
            head = core.head
            if head is NONE:
                raise ChangeError("this cluster has no generation yet")
            target = back(core.history, head, steps) if steps is not None else self.resolve(to or "")
            text = core.history.text(target.id)
            if text is None:
                raise ChangeError(f"generation {target.number}'s text is no longer kept (the last {KEEP} are)")
            waiting = self.pending()
            returning = waiting is not None and not core.history.contains(waiting.load.id, target.id)
            kept = {g.id for g in core.history.ancestors(target.id)}
            undone = [g.id for g in core.history.ancestors(head.id) if g.id not in kept]
            notes: dict[str, Any] = {"how": "rollback", "of": target.id, "on": on, "returned": undone}
            if waiting is not None and returning:
                notes["ends"] = waiting.load.id
            generation = await self._make(text, target.digest, None, **notes)
        message = (f"rolled back to generation {target.number}'s configuration as generation {generation.number}"
                   + (f"; the provisional load of generation {waiting.load.number} is returned with it"
                      if waiting is not None and returning else ""))
        core.events.add(f"generation {generation.number} (epoch {generation.epoch}, {generation.short}): {message} "
                        f"(asked on server {on})")
        return Made(generation, core.config.id, message)

    # -- the deadline ------------------------------------------------------

    def tick(self) -> None:
        """On the primary, after it took in every head: a provisional load past its deadline is returned."""
        core = self.core
        if self._expiring or core.applying or self.primary.reconciling or time.monotonic() < self._expiry_retry:
            return
        waiting = self.pending()
        if waiting is None or time.time() < waiting.deadline:
            return
        failing = self.primary._failed_heads  # a head that cannot be taken in does not hold the deadline up
        if any(p.up and p.head and not core.history.covers(p.head) and p.head not in failing
               for p in core.membership.peers.values()):
            return  # an edit made on top somewhere: taken in first, so that it is returned and reported with the load
        self._expiring = True
        self.spawn(self._expire(waiting))

    async def _expire(self, waiting: Pending) -> None:
        core = self.core
        try:
            async with core.backup_lock:
                if core.role() is not Role.PRIMARY or self.pending() != waiting:
                    return
                await self._current()
                waiting = self.pending() or waiting
                before = waiting.before
                text = core.history.text(before.id) if before is not None else None
                if before is None or text is None:
                    raise ChangeError(f"the configuration before the load of generation {waiting.load.number} is "
                                      f"no longer kept (the last {KEEP} generations are); it stays")
                returned = [*waiting.edits, waiting.load]
                head_text = core.head_text()
                listed = ", ".join(f"{g.number} ({how(g, core.history)})" for g in returned)
                summary = await asyncio.to_thread(describe.summarize, head_text, text)
                summary += f"; returned: generation {listed}"
                generation = await self._make(text, before.digest, None, how="expiry", of=before.id,
                                              ends=waiting.load.id, returned=[g.id for g in returned],
                                              summary=summary)
            core.events.add(f"generation {generation.number} (epoch {generation.epoch}, {generation.short}): the "
                            f"load of generation {waiting.load.number} was not confirmed by {when(waiting.deadline)} "
                            f"UTC: back to generation {before.number}'s configuration; returned with it: generation "
                            f"{listed}")
            self._expiry_problem = ""
        except ChangeError as error:
            self._expiry_retry = time.monotonic() + core.config.timing.drift
            if str(error) != self._expiry_problem:
                core.events.add(f"the provisional load could not be returned: {error}")
            self._expiry_problem = str(error)
        finally:
            self._expiring = False

    # -- peers ---------------------------------------------------------------

    async def answer(self, message: Load | Confirm | Rollback, sender: int) -> Reply:
        """A peer's operator asked for a change: this server makes it if it is the primary."""
        on = message.on if message.on >= 0 else sender
        try:
            if not self._is_primary():
                raise ChangeError(f"server {self.core.config.id} is not the primary")
            if isinstance(message, Load):
                return Reply(message.rid, True, body=(await self.load(message.text, message.name, message.confirm,
                                                                      message.dry_run, on)).as_data())
            if isinstance(message, Confirm):
                return Reply(message.rid, True, body=(await self.confirm(on)).as_data())
            return Reply(message.rid, True, body=(await self.rollback(message.steps, message.to, on)).as_data())
        except ChangeError as error:
            return Reply(message.rid, False, str(error))

    async def local(self, request: Load | Confirm | Rollback | Generations | Show | Compare) -> dict[str, Any]:
        """The local socket's answer (``clusterd history``, ``show``, ``diff G1 G2``, ``load``, ``confirm``, ``rollback``)."""
        try:
            if isinstance(request, Generations):
                return {"ok": True, "server": self.core.config.id, "generations": [e.as_data() for e in self.history()]}
            if isinstance(request, Show):
                generation, text = await self.show(request.ref)
                return {"ok": True, "generation": generation.as_data(), "text": text}
            if isinstance(request, Compare):
                found = await self.compare(request.old, request.new)
                return {"ok": True, "diff": diff_data(found.diff), "text": diff_text(found.diff),
                        "differences": len(found.diff.changes)}
            if isinstance(request, Load):
                return {"ok": True, **(await self.load(request.text, request.name, request.confirm,
                                                       request.dry_run)).as_data()}
            if isinstance(request, Confirm):
                return {"ok": True, **(await self.confirm()).as_data()}
            return {"ok": True, **(await self.rollback(request.steps, request.to)).as_data()}
        except ChangeError as error:
            return {"ok": False, "error": str(error)}

    # -- helpers ---------------------------------------------------------------

    def _is_primary(self) -> bool:
        return self.core.role() is Role.PRIMARY

    async def _ask(self, message: Load | Confirm | Rollback) -> dict[str, Any]:
        """The same request of the primary, over the control channel."""
        primary = self.core.membership.primary
        link = self.links.get(primary) if primary is not None else None
        if primary is None or link is None or primary not in self.core.membership.up:
            raise ChangeError("no primary is up (clusterd status says state not ready); nothing changed")
        try:
            reply = await link.request(message)
        except LinkDown as error:
            raise ChangeError(f"the primary, server {primary}, did not answer: {error}; it may or may not have "
                              "made the change (clusterd history shows it)") from None
        if not reply.ok:
            raise ChangeError(f"server {primary} (primary): {reply.error}")
        return reply.body

    async def _current(self) -> Any:
        """Under the backup lock, as the primary: the live backup read now, an edit made in it recorded first."""
        core = self.core
        if not self._is_primary():
            raise ChangeError(f"server {core.config.id} is no longer the primary; nothing changed")
        await core.refresh_live(force=True)
        live = core.live
        if live is None or live.config is None:
            raise ChangeError(core.live_error or "the live backup cannot be read")
        core.record_edit()
        return live

    async def _make(self, text: str, digest: str, tree: Config | None, **notes: Any) -> Generation:
        """A generation on the head with ``text``, adopted into this server's backup and held; sent on at once."""
        core = self.core
        if "summary" not in notes:
            notes["summary"] = await asyncio.to_thread(describe.summarize, core.head_text(), tree or text)
        generation = core.make_generation([core.head], text, digest, tree=tree, **notes)
        core.applying = True
        try:
            applied = await asyncio.to_thread(apply_generation, core.history, core.config.backup, text, generation,
                                              core.config.apply_command, core.live)
        except SyncError as error:
            raise ChangeError(f"not made: {error}") from None
        finally:
            core.applying = False
        core.edited_meanwhile(applied.conflicts)
        if not core.hold(generation, text, written=applied.written):
            raise ChangeError(f"the backup holds generation {generation.short}, but the state directory cannot "
                              "record it (clusterd status says why)")
        await core.refresh_live(known=(applied.live, applied.stamp) if applied.stamp != UNKNOWN else None,
                                force=applied.stamp == UNKNOWN)
        self.primary.retry_all()
        return generation


def _checked(text: str, name: str) -> Config:
    """The file parsed and validated: :class:`ConfError` with every problem, as ``FILE:LINE:COLUMN: error: ...``."""
    config = parse(text, name)
    problems = validate(config)
    if problems:
        raise ConfError(problems)
    return config


def _adoption_problem(live: Config, loaded: Config) -> str:
    """Why this server's backup with the loaded cluster-wide sections would not be valid; empty if it would be."""
    try:
        problems = validate(adopt(live, loaded))
    except ConfError as error:
        problems = list(error.diagnostics)
    return str(problems[0].message) if problems else ""
