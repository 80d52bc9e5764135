"""The checker, in Jepsen's spirit: watch a lab while faults happen, then judge what the cluster did with the edits.

A :class:`Sampler` asks every running server for ``clusterd status --json``
several times a second and reads every live backup, keeping what it needs
to judge afterwards: which configuration (by cluster digest) held which
tracked values, which generations a primary had on a second server, who said
it was primary in which epoch, and every conflict any server listed.

**Acknowledged**, as ``docs/clusterd.md`` defines it: an edit is
acknowledged once a generation containing it is held by two servers, one of
them the primary. The checker counts it so when a server that says it is
primary holds a generation with the edit's value and another server's status
says it holds that same generation (same digest), or when a server's status
says its own generation is ``acknowledged`` (a daemon that reports it) and
its live backup has that generation's content. :func:`judge` then asserts,
at the end:

* every server converged to one digest;
* every acknowledged edit is present, superseded by a later edit of the same
  key, listed as a conflict, or taken back by the operator's own rollback (or
  an unconfirmed load's expiry) as the history reports it (:func:`returned`);
* never two servers acting as primary in one epoch at the same moment (in two
  samples more than a detection time apart, or both making generations in
  that epoch in their logs);
* server-specific sections exactly as the operators left them.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Collection

from confmerge import cluster_digest, parse

from .operators import Edit, Record, policies, server_sections
from .world import Lab


@dataclass
class Observations:
    """What the sampler saw."""

    contents: dict[str, dict[str, int | None]] = field(default_factory=dict)
    """Cluster digest -> tracked values of a live backup that had it."""
    acknowledged: dict[str, float] = field(default_factory=dict)
    """Digest of an acknowledged generation -> the first time it was seen so."""
    primaries: list[tuple[float, int, int]] = field(default_factory=list)
    """(time, server, epoch) for every sample in which a server said it was the primary."""
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    samples: int = 0


class Sampler:
    """A thread sampling every running server's status and live backup every ``every`` seconds."""

    def __init__(self, lab: Lab, every: float = 0.15) -> None:
        self.lab = lab
        self.every = every
        self.seen = Observations()
        self._files: dict[int, tuple[tuple[int, int, int], str]] = {}
        self._conflicts: set[str] = set()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.sample()
            self.stopping.wait(self.every)

    def _digest(self, i: int) -> str | None:
        """The cluster digest of server i's live backup, parsed only when the file changed."""
        path = self.lab.backup(i)
        try:
            stat = path.stat()
            key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if i in self._files and self._files[i][0] == key:
                return self._files[i][1]
            text = path.read_text()
            digest = cluster_digest(parse(text, str(path)))
        except Exception:  # a file mid-replace or invalid: the next sample sees it
            return None
        self._files[i] = (key, digest)
        self.seen.contents.setdefault(digest, policies(text))
        return digest

    def sample(self) -> None:
        now = time.monotonic()
        views = {i: self.lab.status(i, timeout=1.0) for i in self.lab.running()}
        for i in self.lab.ids:
            self._digest(i)
        seen = self.seen
        seen.samples += 1
        for i, view in views.items():
            if view is None:
                continue
            own = view.get("generation") or {}
            if own.get("acknowledged") and own.get("digest") and own["digest"] == self._digest(i):
                seen.acknowledged.setdefault(own["digest"], now)
            for conflict in view.get("conflicts", []):
                text = repr(sorted(conflict.items()))
                if text not in self._conflicts:
                    self._conflicts.add(text)
                    seen.conflicts.append(conflict)
            if view.get("primary") == i:
                seen.primaries.append((now, i, view["epoch"]))
                digest = (view.get("generation") or {}).get("digest")
                if digest and digest not in seen.acknowledged and any(
                        j != i and other is not None and (other.get("generation") or {}).get("digest") == digest
                        for j, other in views.items()):
                    seen.acknowledged[digest] = now


@dataclass(frozen=True)
class Verdict:
    edits: int
    acknowledged: int
    lost: list[str]
    diverged: list[str]
    two_primaries: list[str]
    own_sections: list[str]
    samples: int
    reference: int = 0
    """The server whose backup is the end state (any, once converged; else the primary most servers name)."""

    @property
    def ok(self) -> bool:
        return not (self.lost or self.diverged or self.two_primaries or self.own_sections)

    def summary(self) -> str:
        lines = [f"{self.edits} edits made, {self.acknowledged} acknowledged, {len(self.lost)} lost "
                 f"({self.samples} status samples)"
                 + (f"; not converged: lost means not in server {self.reference}'s backup" if self.diverged else "")]
        for title, items in (("lost", self.lost), ("not converged", self.diverged),
                             ("two primaries in one epoch", self.two_primaries),
                             ("server-specific sections", self.own_sections)):
            lines += [f"  {title}: {item}" for item in items[:20]]
            if len(items) > 20:
                lines.append(f"  {title}: ... and {len(items) - 20} more")
        return "\n".join(lines)


def acknowledged(record: Record, seen: Observations) -> dict[int, float]:
    """Edit number -> the first time a generation holding its value was held by a primary and a second server."""
    by_value: dict[tuple[str, int | None], Edit] = {(e.key, e.value): e for e in record.edits
                                                    if e.value is not None}
    acked: dict[int, float] = {}
    for digest, at in seen.acknowledged.items():
        for key, value in seen.contents.get(digest, {}).items():
            edit = by_value.get((key, value))
            if edit is not None and edit.at <= at and acked.get(edit.number, float("inf")) > at:
                acked[edit.number] = at
    return acked


def lost(record: Record, acked: dict[int, float], final: dict[str, int | None],
         conflicts: list[dict[str, Any]], returned: Collection[tuple[str, int | None]] = ()) -> list[str]:
    """Acknowledged edits whose value is not in the end state, not superseded by a later edit and not a conflict.

    ``returned``: values an operator's own rollback (or an unconfirmed load's expiry) took back and the history
    reports (:func:`returned`); those are not lost.
    """
    by_key: dict[str, list[Edit]] = defaultdict(list)
    for edit in record.edits:
        by_key[edit.key].append(edit)
    conflicted = {key for key in by_key for c in conflicts if key in f"{c.get('section')} {c.get('statement')}"}
    out = []
    for number in sorted(acked):
        edit = record.edits[number]
        allowed = {e.value for e in by_key[edit.key] if e.at >= edit.at}
        if final.get(edit.key) not in allowed and edit.key not in conflicted and (edit.key, edit.value) not in returned:
            out.append(f"edit {edit.number} on server {edit.server}: {edit.key} = {edit.value} (counted from "
                       f"{acked[number] - edit.at:.2f} s after it was made); the cluster ended with "
                       f"{final.get(edit.key)}; the key's edits: {_story(by_key[edit.key])}")
    return out


def _story(edits: list[Edit]) -> str:
    """Every edit of one key, in order, with its wall-clock time: a lost value can be traced in the logs from this."""
    return "; ".join(f"#{e.number} server {e.server} {e.replaced} -> {e.value}"
                     f"{'' if e.intended else ' (carried back)'} at "
                     f"{datetime.fromtimestamp(e.wall).strftime('%H:%M:%S.%f')[:-3] if e.wall else '?'}" for e in edits)


def returned(history: list[dict[str, Any]], text: Callable[[str], str | None]) -> set[tuple[str, int | None]]:
    """Tracked values the history says a rollback or an expiry took back: held by a generation it lists as
    returned, and not by the generation it restored.

    ``history``: ``clusterd history --json`` of a server; ``text``: a generation's text by id (``clusterd show``).
    """
    out: set[tuple[str, int | None]] = set()
    for entry in history:
        restored_text = text(entry["of"]) if entry.get("of") and entry.get("returned") else None
        if restored_text is None:
            continue
        restored = policies(restored_text)
        for generation in entry["returned"]:
            held = text(generation)
            out |= {(key, value) for key, value in policies(held or "").items() if restored.get(key) != value}
    return out


def double_primaries(seen: Observations, detection: float, logs: dict[int, str]) -> list[str]:
    """Two servers that said they were primary in one epoch over more than ``detection``, or made generations in it."""
    spans: dict[tuple[int, int], tuple[float, float]] = {}
    for at, server, epoch in seen.primaries:
        first, _ = spans.get((epoch, server), (at, at))
        spans[(epoch, server)] = (first, at)
    out = []
    for (epoch, a), (a0, a1) in spans.items():
        for (other, b), (b0, b1) in spans.items():
            if other == epoch and a < b and min(a1, b1) - max(a0, b0) > detection:
                out.append(f"servers {a} and {b} both primary in epoch {epoch} for "
                           f"{min(a1, b1) - max(a0, b0):.2f} s (status samples)")
    makers: dict[int, dict[int, str]] = defaultdict(dict)
    made = re.compile(r"\] \w+: generation \S+ \(epoch (\d+)")
    for server, text in logs.items():
        for line in text.splitlines():
            match = made.search(line)
            if match:
                makers[int(match.group(1))].setdefault(server, line.strip())
    out += [f"servers {sorted(servers)} all made generations in epoch {epoch} (logs: "
            + " | ".join(servers[s] for s in sorted(servers)) + ")"
            for epoch, servers in sorted(makers.items()) if len(servers) > 1]
    return out


def converge(lab: Lab, timeout: float) -> list[str]:
    """Wait (at most ``timeout`` s) for every server to answer complete with one digest; what differs if not."""
    deadline = time.monotonic() + timeout
    while True:
        views = {i: lab.status(i) for i in lab.ids}
        digests = {i: lab.digest(i) for i in lab.ids}
        complete = all(v is not None and v["status"] == "complete" for v in views.values())
        if complete and len(set(digests.values())) == 1:
            return []
        if time.monotonic() > deadline:
            return [f"server {i}: digest {digests[i][:12]}, "
                    + (f"{v['state']} / {v['status']}, primary {v['primary']}, epoch {v['epoch']}" if v else "no answer")
                    for i, v in views.items()]
        time.sleep(0.2)


def judge(lab: Lab, record: Record, seen: Observations, settle: float = 60.0) -> Verdict:
    """After the faults: heal, wait for convergence, and check the contract (see the module's docstring)."""
    diverged = converge(lab, settle)
    reference = lab.ids[0]
    if diverged:
        said = [v["primary"] for v in (lab.status(i) for i in lab.ids) if v and v["primary"] in lab.ids]
        reference = max(set(said), key=said.count) if said else reference
    final = policies(lab.backup(reference).read_text())
    acked = acknowledged(record, seen)
    conflicts = list(seen.conflicts)
    for i in lab.ids:
        view = lab.status(i)
        conflicts += view.get("conflicts", []) if view else []
    own = list(record.violations)
    for i, left in sorted(record.sections.items()):
        ended = server_sections(lab.backup(i).read_text())
        own += [f"server {i}'s {keyword} ended as {ended[keyword]!r}, its operator left {left[keyword]!r}"
                for keyword in left if ended[keyword] != left[keyword]]
    return Verdict(len(record.edits), len(acked), lost(record, acked, final, conflicts), diverged,
                   double_primaries(seen, lab.detection, {i: lab.log(i) for i in lab.ids}), own, seen.samples,
                   reference)
