"""The history of the cluster configuration: content-addressed generations that name their parents.

A :class:`Generation` is one version of the cluster-wide text. Its id is the
sha256 of what it is (its parents, author, epoch, time and the text's hash),
so two servers that hold the same id hold the same history up to it. A
change made on any server becomes a generation whose parent is the one that
server held; a primary that finds a head it does not descend from merges it
three-way against the merge base into a generation with two parents. Who
holds what is then a question of ancestry, never of comparing numbers.

The store is a directory of small files under ``<state-dir>/sync/history``:
``<id>.json`` (the metadata, which may arrive without its text as part of a
lineage) and ``<id>.conf`` (the text). A hand-written store rather than git
through dulwich: the history is linear but for merges, one text per
generation, pruned to the last :data:`KEEP`; the whole store is this module,
it needs no new dependency, and the files read as they are (``cat``, ``jq``).
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable

from confmerge import write_atomic

KEEP = 64
"""Generations whose text is kept (the head's nearest ancestors and the newest)."""
KEEP_METADATA = 1024
"""Generations whose metadata is kept (a few hundred bytes each): the ancestry that finds a merge base.

Counted breadth first from the head, 64 were a few seconds of a busy cluster (every merge has two parents and
every secondary's edit is a generation): a server back from a partition of a few seconds found no common
ancestor, and was merged as a union that brought back what had been removed meanwhile. With the ancestry kept,
the nearest common ancestor is found, and its text is asked of the returning server when it is pruned here."""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


MADE = ("edit", "merge", "load", "confirm", "rollback", "expiry")
"""How a generation was made (:attr:`Generation.how`); older generations say nothing, and are told apart by their parents."""

_NOTES: dict[str, Any] = {"how": "", "of": "", "ends": "", "deadline": 0.0, "on": -1, "returned": (), "summary": ""}
"""The fields added after the first release, with the values that leave them out of the id (older ids stay valid)."""


@dataclass(frozen=True, slots=True)
class Generation:
    """One version of the cluster configuration, identified by its content and its place in the history."""

    id: str
    parents: tuple[str, ...]
    author: int
    """The server that made it (its edit, or its merge)."""
    epoch: int
    time: float
    """Wall-clock seconds when it was made, for people; ordering comes from the parents."""
    number: int
    """1 + the highest parent's number: a height for display, not an order."""
    sha256: str
    """Of the text: checks a transfer."""
    digest: str
    """Of the cluster-wide content in normal form: tells whether a backup holds it."""
    how: str = ""
    """One of :data:`MADE` ("" in generations made before it was recorded)."""
    of: str = ""
    """A rollback's or an expiry's generation whose text it restores."""
    ends: str = ""
    """The provisional load this generation settles: a confirm keeps it, an expiry or a rollback returns it."""
    deadline: float = 0.0
    """A provisional load's: wall-clock seconds by which it must be confirmed (0: not provisional)."""
    on: int = -1
    """The server the operator's command ran on (a load, confirm or rollback asked of the primary)."""
    returned: tuple[str, ...] = ()
    """What an expiry or a rollback took back: the load and what was made on top of it; the generations after the one restored."""
    summary: str = ""
    """What changed from the first parent, in one line (sections added, removed, changed)."""

    @classmethod
    def make(cls, parents: Iterable["Generation"], author: int, epoch: int, time: float, text: str,
             digest: str, **notes: Any) -> "Generation":
        parents = tuple(parents)
        ids = tuple(p.id for p in parents)
        number = 1 + max((p.number for p in parents), default=0)
        unknown = set(notes) - set(_NOTES)
        if unknown:
            raise TypeError(f"not a generation's field: {', '.join(sorted(unknown))}")
        notes = {**notes, "returned": tuple(notes.get("returned", ()))}
        generation = cls("", ids, author, epoch, time, number, sha256(text), digest, **notes)
        return replace(generation, id=generation._content_id())

    def _content_id(self) -> str:
        """The sha256 of what it is; the later fields count only when set, so that older ids still match."""
        header: dict[str, Any] = {"parents": self.parents, "author": self.author, "epoch": self.epoch,
                                  "time": self.time, "sha256": self.sha256, "digest": self.digest}
        for name, empty in _NOTES.items():
            value = getattr(self, name)
            if value != empty:
                header[name] = value
        return sha256(json.dumps(header, sort_keys=True))

    def as_data(self) -> dict[str, Any]:
        data = asdict(self)
        return {**{k: v for k, v in data.items() if k not in _NOTES or v != _NOTES[k]},
                "parents": list(self.parents), **({"returned": list(self.returned)} if self.returned else {})}

    @classmethod
    def from_data(cls, data: Any) -> "Generation":
        """A generation described by a peer; :class:`ValueError` if it is malformed or its id does not match."""
        try:
            notes: dict[str, Any] = {
                name: tuple(str(g) for g in data[name]) if isinstance(empty, tuple) else type(empty)(data[name])
                for name, empty in _NOTES.items() if data.get(name) is not None}
            generation = cls(str(data["id"]), tuple(str(p) for p in data["parents"]), int(data["author"]),
                             int(data["epoch"]), float(data["time"]), int(data["number"]), str(data["sha256"]),
                             str(data["digest"]), **notes)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"not a generation: {error}") from None
        if generation._content_id() != generation.id:
            raise ValueError(f"generation {generation.id[:12]} does not match its content")
        return generation

    @property
    def short(self) -> str:
        return self.id[:12]

    @property
    def made(self) -> str:
        """How it was made, also for an older generation: more than one parent is a merge, else an edit."""
        return self.how or ("merge" if len(self.parents) > 1 else "edit")


NONE = Generation("", (), -1, 0, 0.0, 0, "", "")
"""Held by a server that was never synced: it takes the cluster's configuration, whatever its own."""


class History:
    """Generations on disk, the head this server holds, and ancestry over them."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "sync"
        self.inbox = self.root / "inbox"
        self.directory = self.root / "history"
        for directory in (self.root, self.inbox, self.directory):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._head_file = self.root / "head.json"
        self._cache: dict[str, Generation] = {}
        self.head = self._load_head()

    def _load_head(self) -> Generation:
        try:
            head = self.get(str(json.loads(self._head_file.read_text())["head"]))
        except (OSError, ValueError, KeyError, TypeError):
            return NONE
        return head if head is not None and self.text(head.id) is not None else NONE

    # -- reading ---------------------------------------------------------

    def get(self, generation_id: str) -> Generation | None:
        if not generation_id:
            return None
        cached = self._cache.get(generation_id)
        if cached is not None:
            return cached
        try:
            generation = Generation.from_data(json.loads((self.directory / f"{generation_id}.json").read_text()))
        except (OSError, ValueError):
            return None
        self._cache[generation_id] = generation
        return generation

    def text(self, generation_id: str) -> str | None:
        if not generation_id:
            return None
        try:
            return (self.directory / f"{generation_id}.conf").read_text(encoding="utf-8")
        except OSError:
            return None

    def ancestors(self, generation_id: str, limit: int = 4 * KEEP) -> list[Generation]:
        """The generation and its known ancestors, nearest first (breadth first), at most ``limit``."""
        out: list[Generation] = []
        seen: set[str] = set()
        queue = deque([generation_id])
        while queue and len(out) < limit:
            current = self.get(queue.popleft())
            if current is None or current.id in seen:
                continue
            seen.add(current.id)
            out.append(current)
            queue.extend(current.parents)
        return out

    def contains(self, ancestor: str, descendant: str) -> bool:
        """``ancestor`` is ``descendant`` or one of its ancestors (as far as the kept history tells)."""
        if not ancestor:
            return True
        return ancestor == descendant or any(g.id == ancestor for g in self.ancestors(descendant))

    def covers(self, generation_id: str) -> bool:
        """The head this server holds descends from ``generation_id`` (or it is none at all)."""
        return self.contains(generation_id, self.head.id)

    def common_ancestor(self, ours: str, theirs: str) -> Generation | None:
        """The nearest common ancestor known here, by metadata (its text may be pruned here but kept by a peer)."""
        return max(self._common(ours, theirs), key=lambda g: g.number, default=None)

    def merge_base(self, ours: str, theirs: str) -> Generation | None:
        """The nearest common ancestor whose text is kept; None when pruning left none."""
        kept = [g for g in self._common(ours, theirs) if self.text(g.id) is not None]
        return max(kept, key=lambda g: g.number, default=None)

    def _common(self, ours: str, theirs: str) -> list[Generation]:
        mine = {g.id for g in self.ancestors(ours, KEEP_METADATA)}
        return [g for g in self.ancestors(theirs, KEEP_METADATA) if g.id in mine]

    def known(self) -> list[Generation]:
        """Every generation kept here (metadata; the text may be pruned), newest first."""
        found = [g for g in (self.get(path.stem) for path in self.directory.glob("*.json")) if g is not None]
        return sorted(found, key=lambda g: (g.number, g.time), reverse=True)

    def lineage(self, generation_id: str) -> list[dict[str, Any]]:
        """The metadata a receiver needs to place a generation in its own history."""
        return [g.as_data() for g in self.ancestors(generation_id, KEEP)]

    # -- writing ---------------------------------------------------------

    def add(self, generation: Generation, text: str | None) -> None:
        """Keep a generation (its text first, then its metadata, each atomically); the old ones are pruned."""
        if text is not None and self.text(generation.id) is None:
            write_atomic(self.directory / f"{generation.id}.conf", text)
        if generation.id not in self._cache and not (self.directory / f"{generation.id}.json").exists():
            write_atomic(self.directory / f"{generation.id}.json", json.dumps(generation.as_data()) + "\n")
        self._cache[generation.id] = generation

    def learn(self, lineage: Iterable[dict[str, Any]]) -> None:
        """Record a peer's lineage (metadata only) so that ancestry can be judged here; bad entries are skipped."""
        for data in lineage:
            try:
                generation = Generation.from_data(data)
            except ValueError:
                continue
            if self.get(generation.id) is None:
                self.add(generation, None)

    def set_head(self, generation: Generation) -> None:
        write_atomic(self._head_file, json.dumps({"head": generation.id}) + "\n")
        self.head = generation
        self.prune()

    def prune(self) -> None:
        """Texts: the head's last :data:`KEEP` ancestors and the :data:`KEEP` newest; metadata likewise by
        :data:`KEEP_METADATA`; the rest is dropped."""
        known = self.known()
        lineage = self.ancestors(self.head.id, KEEP_METADATA)  # nearest first: its first KEEP are the texts' share
        texts = {g.id for g in lineage[:KEEP]} | {g.id for g in known[:KEEP]}
        metadata = {g.id for g in lineage} | {g.id for g in known[:KEEP_METADATA]}
        for path in self.directory.glob("*.conf"):
            if path.stem not in texts:
                path.unlink(missing_ok=True)
        for generation in known:
            if generation.id not in metadata:  # its text went above: metadata keeps more than texts
                (self.directory / f"{generation.id}.json").unlink(missing_ok=True)
                self._cache.pop(generation.id, None)

    def clear_inbox(self) -> None:
        for path in self.inbox.iterdir():
            path.unlink(missing_ok=True)
