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
    version: str = ""
    """The software version it runs (``clusterd.updates``)."""


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

    @classmethod
    def start(cls, me: int, peer_ids: list[int], detection: float, hold: float, now: float,
              epoch: int = 0) -> "Membership":
        return cls(me, {p: PeerView(p) for p in peer_ids}, detection, hold, now, epoch)

    # -- observations -------------------------------------------------

    def heartbeat(self, message: Heartbeat, now: float) -> bool:
        """Record a heartbeat; True if the view changed (who is up, or who is primary)."""
        peer = self.peers.get(message.id)
        if peer is None:
            return False
        changed = not peer.up
        if not peer.up:
            peer.up, peer.since = True, now
            self.log.append(f"server {peer.id} is up")
        peer.last = now
        peer.epoch, peer.primary = message.epoch, message.primary
        peer.sees = frozenset(i for i in message.sees if isinstance(i, int))
        peer.uptime, peer.head, peer.generation = float(message.uptime), message.head, message.generation
        peer.digest, peer.state, peer.inbox = message.digest, message.state, message.inbox
        peer.version = message.version
        claim = message.primary
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
        self.log.append(f"server {peer_id} is down ({why})")
        return True

    def expire(self, now: float) -> bool:
        """Mark down every peer silent for longer than the detection time."""
        changed = False
        for peer in self.peers.values():
            if peer.up and now - peer.last > self.detection:
                changed |= self.lost(peer.id, now, f"no heartbeat for {now - peer.last:.1f} s")
        return changed

    # -- the election -------------------------------------------------

    @property
    def up(self) -> set[int]:
        return {self.me} | {p.id for p in self.peers.values() if p.up}

    @property
    def discovery(self) -> float:
        """How long a new server listens before taking a role, unless it has heard every peer sooner.

        Longer than the detection time: servers booting together (a power cut,
        a cold start) are slow to answer, and a server that claimed before a
        lower id was heard would hand the cluster a configuration for nothing.
        """
        return max(2 * self.detection, 3.0)

    def discovering(self, now: float) -> bool:
        heard = all(p.last > -math.inf for p in self.peers.values())
        return not heard and now - self.started < self.discovery

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
        return any(self.primary in p.sees for p in self.peers.values() if p.up)

    def caught_up(self) -> bool:
        """This server's head descends from the head of every up peer."""
        return all(self.covers(p.head) for p in self.peers.values() if p.up)

    def returned(self, now: float, away: float) -> None:
        """This process was paused for ``away`` seconds: the hold counts again from now."""
        self.started = now
        self.log.append(f"this server was paused for {away:.1f} s; asking its peers before acting")

    def evaluate(self, now: float) -> int | None:
        """Claim the primary role if the rules give it to this server; the new epoch, or None."""
        if self.primary == self.me or self.discovering(now):
            return None
        if self.primary_alive():
            retake = (
                self.me < (self.primary if self.primary is not None else math.inf)
                and min(self.up) == self.me
                and now - self.started >= self.hold
                and self.caught_up()
            )
            if not retake:
                return None
            self.log.append(f"server {self.me} has been back {now - self.started:.1f} s and is caught up; "
                            f"taking the primary role back from server {self.primary}")
        else:
            holders = {p.id for p in self.peers.values() if p.up and p.head}
            candidates = ({self.me} if self.head else set()) | holders or {self.me} | self.up
            if min(candidates) != self.me:
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
