"""Who is up and who is primary: the guide's election as a pure state machine.

The rules (``docs/clusterd.md`` has the reasoning):

* A peer is up while its heartbeats arrive; it is down after
  ``timing.missed`` silent intervals, or at once when its connection closes.
* Every primary term has an epoch. A server claims the role by announcing
  the next epoch that is its own (:func:`claim_epoch`: the id modulo 256), so
  two servers cut off from each other never act as primary in one epoch; a
  higher epoch always wins, a claim from a lower epoch is refused, and two
  claims of one epoch (not made by this version) go to the lower id.
* When the primary is down (no server sees it), the lowest id among the up
  servers that hold a generation claims the role (a server never synced
  claims only when nobody up holds one). It merges every head it does not
  descend from before it sends anything (:mod:`clusterd.primary`).
* A lower id that returns takes the role back only once it is caught up (its
  head descends from every up peer's) and has been back for ``timing.hold``
  seconds, so that a flapping server does not flap the role. "Back" counts
  from its start, or from the moment it found it had been paused
  (:meth:`Membership.returned`).

Past :data:`NEIGHBOURS` × 2 + 1 servers the links are sparse (:func:`topology`):
a secondary keeps heartbeats with the primary (every interval) and with its
neighbours in id order (every :data:`SLOW` intervals, and at once when its
view changes), and knows everyone else from the primary, whose heartbeat
lists who is up (its ``sees``: the *announcement*). The rules above hold over
that view: the witnesses that a primary is alive are the neighbours, and
the lowest id up is the lowest of the announcement (less the servers this
one saw go down) and its own links.

Time is passed in (``now``, monotonic seconds), so tests drive it directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Callable

from .protocol import Heartbeat


IDS = 256
"""BQN ids are 0-255."""

NEIGHBOURS = 2
"""Neighbours on each side in id order that a server keeps heartbeats with; up to 2 × this + 1 servers, all are."""

SLOW = 8
"""A neighbour's heartbeats come every SLOW intervals (and at once on a change of view); it is down after missed × SLOW.

Eight, not four: a secondary's idle work is mostly these heartbeats (a 24-server cluster's secondaries went from
4.5-6.5 to 3.0-5.0 ms of CPU a second, its primary from 21-30 to 14.5-21), for a hung secondary seen in 12 s, not 6."""

LATE_WEIGHT = 2.0
"""A peer's fuse grows by this many times its recent lateness, as TCP's retransmission timeout grows with its
round trip's variance: a peer whose heartbeats came late (a starved or busy server) is given the time it has
been taking, and a cluster under load does not fail over, and over again, for nothing."""
LATE_MAX = 3.0
"""Detection times a fuse grows by at most (a gap longer than the base and these is an outage, not lateness)."""
LATE_MEMORY = 10.0
"""Lateness fades by a factor e every this many detection times of heartbeats on time."""


def neighbours(me: int, ids: list[int]) -> set[int]:
    """The :data:`NEIGHBOURS` ids before and after ``me`` in the ring of the cluster's ids (all of them in a small cluster)."""
    ring = sorted(set(ids) | {me})
    if len(ring) <= 2 * NEIGHBOURS + 1:
        return set(ring) - {me}
    at = ring.index(me)
    return {ring[(at + k) % len(ring)] for k in range(-NEIGHBOURS, NEIGHBOURS + 1)} - {me}


@dataclass(frozen=True, slots=True)
class Topology:
    """Whom this server keeps links with, and the heartbeat rate each way (:func:`topology`)."""

    linked: frozenset[int]
    send_slow: frozenset[int]
    """Peers this server sends heartbeats to every :data:`SLOW` intervals (the rest: every interval)."""
    expect_slow: frozenset[int]
    """Peers whose heartbeats come every :data:`SLOW` intervals: down after missed × SLOW of silence."""


def topology(me: int, ids: list[int], primary: int | None) -> Topology:
    """Symmetric when the servers agree on the primary: the primary with every server, each server with its neighbours.

    In a small cluster, everyone with everyone at the full rate (the mesh).
    In a large one only the primary's heartbeats come every interval (a
    hung primary is found within the detection time); a secondary's come
    every :data:`SLOW` intervals, and at once when its view changes.
    """
    peers = set(ids) - {me}
    near = neighbours(me, list(peers))
    if near == peers:
        return Topology(frozenset(peers), frozenset(), frozenset())
    if primary == me:
        return Topology(frozenset(peers), frozenset(), frozenset(peers))
    linked = near | ({primary} & peers if primary is not None else set())
    return Topology(frozenset(linked), frozenset(linked), frozenset(linked) - {primary})


def claim_epoch(current: int, me: int) -> int:
    """The smallest epoch above ``current`` that belongs to server ``me`` (equal to it modulo 256)."""
    return current + 1 + (me - current - 1) % IDS


class Role(StrEnum):
    JOINING = "joining"
    """Just started: listening for peers before taking any role."""
    PRIMARY = "primary"
    SECONDARY = "secondary"


@dataclass(slots=True)
class PeerView:
    """What this server knows of one peer, from its heartbeats."""

    id: int
    up: bool = False
    since: float = 0.0
    last: float = -math.inf
    epoch: int = 0
    primary: int | None = None
    sees: frozenset[int] = frozenset()
    uptime: float = 0.0
    head: str = ""
    """The id of the generation it holds."""
    generation: int = 0
    """That generation's number, for status."""
    digest: str = ""
    state: str = ""
    inbox: str = ""
    behind: frozenset[int] = frozenset()
    """From a primary of a sparse cluster: the servers not in sync with it."""
    version: str = ""
    """The software version it runs (``clusterd.updates``)."""
    late: float = 0.0
    """How much later than due its heartbeats have come lately, past one interval of jitter (seconds; the largest,
    fading: :data:`LATE_MEMORY`)."""


@dataclass(slots=True)
class Membership:
    me: int
    peers: dict[int, PeerView]
    detection: float
    hold: float
    started: float
    epoch: int = 0
    primary: int | None = None
    head: str = ""
    """The id of the generation this server holds (the state core sets it)."""
    covers: Callable[[str], bool] = lambda head: not head
    """Whether this server's head descends from a peer's head (the state core sets it, from the history)."""
    log: list[str] = field(default_factory=list)
    refused: set[tuple[int, int]] = field(default_factory=set)
    """Stale claims already logged (a server's heartbeats repeat its claim until it learns the epoch)."""
    slow: frozenset[int] = frozenset()
    """Peers whose heartbeats come every :data:`SLOW` intervals (in a sparse cluster)."""
    sparse: bool = False
    """The links are sparse (:func:`topology`): more servers than a server's neighbours."""
    announced: frozenset[int] = frozenset()
    """Who is up as the primary last said it (its ``sees``); what a sparse cluster's members know of each other."""
    discovered: bool = False
    """Discovery is over (it happens once, at the start)."""
    alive: set[int] = field(default_factory=set)
    """The peers that are up (kept with each change, so that a tick costs what the links do, not the cluster's size)."""
    linked: frozenset[int] = frozenset()
    """The peers this server keeps heartbeats with (:func:`topology`; all of them in a small cluster)."""
    orphaned: float | None = None
    """Since when no primary is alive in this server's view (None while one is)."""
    interval: float = 0.0
    """The heartbeat interval (0: a third of the detection time, the default ``missed``)."""
    unheard: set[int] = field(default_factory=set)
    """Peers whose next heartbeat says nothing of their lateness: the gap before it was an outage (their
    connection closed) or this server's own pause or starvation (:meth:`forgive`)."""

    @classmethod
    def start(cls, me: int, peer_ids: list[int], detection: float, hold: float, now: float,
              epoch: int = 0, interval: float = 0.0) -> "Membership":
        membership = cls(me, {p: PeerView(p) for p in peer_ids}, detection, hold, now, epoch)
        membership.interval = interval
        membership.relink()
        return membership

    def relink(self) -> Topology:
        """Recompute whom to keep heartbeats with (:func:`topology`) after the primary changed.

        A peer this server stops linking to is no longer known to be up or
        down (the primary's announcement speaks for it); nothing is logged.
        """
        shape = topology(self.me, list(self.peers), self.primary)
        for peer in self.peers.values():
            if peer.id not in shape.linked and peer.id in self.linked:
                peer.up, peer.last, peer.late = False, -math.inf, 0.0
                self.alive.discard(peer.id)
        self.linked, self.slow = shape.linked, shape.expect_slow
        self.sparse = shape.linked != frozenset(self.peers) or bool(shape.expect_slow)
        return shape

    # -- observations -------------------------------------------------

    def heartbeat(self, message: Heartbeat, now: float) -> bool:
        """Record a heartbeat; True if the view changed (who is up, or who is primary)."""
        peer = self.peers.get(message.id)
        if peer is None:
            return False
        changed = not peer.up
        if peer.id in self.unheard:
            self.unheard.discard(peer.id)
        elif peer.last > -math.inf:
            self._learn(peer, now - peer.last)
        if not peer.up:
            peer.up, peer.since = True, now
            self.alive.add(peer.id)
            self.log.append(f"server {peer.id} is up")
        peer.last = now
        peer.epoch, peer.primary = message.epoch, message.primary
        peer.sees = frozenset(i for i in message.sees if isinstance(i, int))
        peer.uptime, peer.head, peer.generation = float(message.uptime), message.head, message.generation
        peer.digest, peer.state, peer.inbox = message.digest, message.state, message.inbox
        peer.behind = frozenset(i for i in message.behind if isinstance(i, int))
        peer.version = message.version
        claim = message.primary
        if claim == message.id and message.epoch >= self.epoch:
            self.announced = peer.sees
        if message.epoch > self.epoch:
            if self.primary == self.me and claim != self.me:
                self.log.append(f"server {claim} is primary in epoch {message.epoch}; this server steps down"
                                if claim is not None else
                                f"server {peer.id} knows epoch {message.epoch}; this server's term is over")
            self.epoch, self.primary = message.epoch, claim
            return True
        if claim is None:
            return changed
        if message.epoch == self.epoch and claim != self.primary:
            if self.primary is None or claim < self.primary:
                if self.primary == self.me:
                    self.log.append(f"server {claim} also claims epoch {self.epoch} and has the lower id; stepping down")
                self.primary = claim
                return True
        elif message.epoch < self.epoch and claim == message.id and (peer.id, message.epoch) not in self.refused:
            self.refused.add((peer.id, message.epoch))
            self.log.append(f"refused: server {peer.id} claims epoch {message.epoch}, the cluster is in epoch {self.epoch}")
        return changed

    def lost(self, peer_id: int, now: float, why: str = "connection closed") -> bool:
        peer = self.peers.get(peer_id)
        if peer is None or not peer.up:
            return False
        peer.up = False
        self.alive.discard(peer_id)
        self.log.append(f"server {peer_id} is down ({why})")
        return True

    def closed(self, peer_id: int, now: float) -> bool:
        """The peer's connection closed: it is down, and the gap until it is heard again is an outage (a restart,
        not lateness); what it had learned of its lateness is dropped."""
        peer = self.peers.get(peer_id)
        if peer is not None:
            self.unheard.add(peer_id)
            peer.late = 0.0
        return self.lost(peer_id, now)

    def forgive(self) -> None:
        """This server was paused or starved: the gaps before the heartbeats it reads next are its own, not the peers'."""
        self.unheard.update(self.peers)

    def expire(self, now: float) -> bool:
        """Mark down every peer silent for longer than the detection time."""
        changed = False
        for peer in [self.peers[i] for i in self.alive]:
            if now - peer.last > self.fuse(peer.id):
                changed |= self.lost(peer.id, now, f"no heartbeat for {now - peer.last:.1f} s")
        return changed

    def next_silence(self) -> float:
        """When the first peer up will have been silent too long if nothing comes from it (monotonic; inf: none up)."""
        return min((self.peers[i].last + self.fuse(i) for i in self.alive), default=math.inf)

    def _base(self, peer: int) -> float:
        return self.detection * (SLOW if peer in self.slow else 1)

    def fuse(self, peer: int) -> float:
        """How long ``peer`` may be silent before it is down, now: the base, longer by its recent lateness
        (:data:`LATE_WEIGHT`), by :data:`LATE_MAX` detection times at most."""
        return self._base(peer) + min(LATE_WEIGHT * self.peers[peer].late, LATE_MAX * self.detection)

    def _learn(self, peer: PeerView, gap: float) -> None:
        """A heartbeat came ``gap`` seconds after the one before: how late it was (a longer gap is an outage)."""
        if gap > self._base(peer.id) + LATE_MAX * self.detection:
            return
        due = (self.interval or self.detection / 3) * (SLOW if peer.id in self.slow else 1)
        faded = peer.late * math.exp(-gap / (LATE_MEMORY * self.detection))
        peer.late = max(gap - 2 * due, faded, 0.0)

    # -- the election -------------------------------------------------

    @property
    def up(self) -> set[int]:
        return {self.me} | self.alive

    @property
    def discovery(self) -> float:
        """How long a new server listens before taking a role, unless it has heard every peer sooner.

        Longer than the detection time: servers booting together (a power cut,
        a cold start) are slow to answer, and a server that claimed before a
        lower id was heard would hand the cluster a configuration for nothing.
        """
        return max(2 * self.detection, 3.0)

    def discovering(self, now: float) -> bool:
        if self.discovered:
            return False
        listened = self.linked if self.sparse else self.peers
        heard = all(self.peers[i].last > -math.inf for i in listened if i in self.peers)
        self.discovered = heard or now - self.started >= self.discovery
        return not self.discovered

    def role(self, now: float) -> Role:
        if self.primary == self.me:
            return Role.PRIMARY
        if self.discovering(now):
            return Role.JOINING
        return Role.SECONDARY

    def primary_alive(self) -> bool:
        """The primary of this epoch is up, here or in the view of a server that is up."""
        if self.primary is None:
            return False
        if self.primary in self.up:
            return True
        return any(self.primary in self.peers[i].sees for i in self.alive)

    def others_up(self, now: float) -> set[int]:
        """In a sparse cluster, the servers this one does not link to that the primary last announced as up.

        Less the primary it lost and any server it saw go down itself. When no
        primary is alive for 3 × the detection time the announcement is
        stale (the servers below this one may have failed with the primary),
        and only this server's own links count.
        """
        if not self.sparse or (self.orphaned is not None and now - self.orphaned > 3 * self.detection):
            return set()
        gone = self.gone()
        lost = {self.primary} if self.primary is not None and not self.primary_alive() else set()
        return set(self.announced) - gone - lost - {self.me}

    def patience(self, now: float) -> float:
        """How long a server of a sparse cluster with no fresh announcement waits before it claims.

        It cannot hear every server, so a cold start, or the loss of the
        primary with the servers below this one, would have every local
        lowest id claim at once. Each lower id not seen to go down here adds
        a detection time, as VRRP's priorities skew its timers: server 0 claims
        at once, and a higher one only if no lower one has claimed by then.
        """
        if not self.sparse or self.others_up(now):
            return 0.0
        gone = self.gone()
        return self.detection * sum(1 for i in self.peers if i < self.me and i not in gone)

    def gone(self) -> set[int]:
        """Peers this server links to and saw go down."""
        return {i for i in self.linked if i in self.peers and not self.peers[i].up and self.peers[i].last > -math.inf}

    def caught_up(self) -> bool:
        """This server's head descends from the head of every up peer."""
        return all(self.covers(self.peers[i].head) for i in self.alive)

    def returned(self, now: float, away: float) -> None:
        """This process was paused for ``away`` seconds: the hold counts again from now."""
        self.started = now
        self.log.append(f"this server was paused for {away:.1f} s; asking its peers before acting")

    def evaluate(self, now: float) -> int | None:
        """Claim the primary role if the rules give it to this server; the new epoch, or None."""
        if self.primary == self.me or self.discovering(now):
            return None
        alive = self.primary_alive()
        self.orphaned = None if alive else (now if self.orphaned is None else self.orphaned)
        orphaned = now if self.orphaned is None else self.orphaned
        if alive:
            retake = (
                self.me < (self.primary if self.primary is not None else math.inf)
                and min(self.up | self.others_up(now)) == self.me
                and now - self.started >= self.hold
                and self.caught_up()
            )
            if not retake:
                return None
            self.log.append(f"server {self.me} has been back {now - self.started:.1f} s and is caught up; "
                            f"taking the primary role back from server {self.primary}")
        else:
            holders = {i for i in self.alive if self.peers[i].head} | self.others_up(now)
            candidates = ({self.me} if self.head else set()) | holders or {self.me} | self.up
            if min(candidates) != self.me or now - orphaned < self.patience(now):
                return None
            if self.primary is not None:
                self.log.append(f"primary {self.primary} is down; server {self.me} is the lowest id up")
        self.epoch = claim_epoch(self.epoch, self.me)
        self.primary = self.me
        self.log.append(f"server {self.me} is primary in epoch {self.epoch}")
        return self.epoch

    def accepts(self, epoch: int) -> bool:
        """A request from a primary of ``epoch`` is honoured only if no later term is known."""
        return epoch >= self.epoch

    def drain_log(self) -> list[str]:
        lines, self.log = self.log, []
        return lines
