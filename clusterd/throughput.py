"""Common visibility: each server's traffic throughput, measured here, shared over the control channel.

A :class:`Meter` reads the byte counters of this server's measured interfaces
in ``/sys/class/net/IF/statistics`` once a second and turns them into downlink
and uplink bits per second. A measured interface is the access side of a
wire (``wire`` / ``access``), or one named in the cluster file's
``visibility: interfaces``: what it transmits goes down to the subscribers
(downlink), what it receives comes up from them (uplink).

Every server keeps a :class:`Rings` per server in memory: one slot per
second for the last hour and one-minute averages for the last day, indexed by
the sample's time, so a second (or minute) that no sample reached reads as
*no data* (None), never as a zero: a server that is down sends nothing.
The :class:`Board` holds them all and makes the :class:`~clusterd.protocol.Visibility`
messages that carry this server's samples to each peer.
"""

from __future__ import annotations

import math
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from . import __version__
from .protocol import Visibility

HOUR = 3600
DAY_MINUTES = 1440
SYS_NET = Path("/sys/class/net")
CURRENT = 6
"""A server's newest sample is its current throughput while it is at most this many seconds old (a secondary of a
sparse cluster sends the primary its samples every :data:`SENT_EVERY` seconds, one second late at most)."""
SENT_EVERY = 4
"""Seconds between a sparse cluster's secondary's messages of samples to the primary (one message, all those seconds)."""

Sample = tuple[int, float | None, float | None]


def counters(interface: str, root: Path = SYS_NET) -> tuple[int, int] | None:
    """``(rx_bytes, tx_bytes)`` of ``interface``; None if it does not exist (or cannot be read)."""
    statistics = root / interface / "statistics"
    try:
        return int((statistics / "rx_bytes").read_text()), int((statistics / "tx_bytes").read_text())
    except (OSError, ValueError):
        return None


class Meter:
    """This server's throughput from its interfaces' counters: one reading a second, bits per second since the last."""

    def __init__(self, root: Path = SYS_NET) -> None:
        self.root = root
        self.interfaces: tuple[str, ...] = ()
        self.problem = ""
        self._last: tuple[float, dict[str, tuple[int, int]]] | None = None

    def read(self, interfaces: Iterable[str], now: float) -> tuple[float, float] | None:
        """(downlink, uplink) bits/s over the interfaces since the previous reading; None for the first or none readable."""
        names = tuple(dict.fromkeys(interfaces))
        found = {name: c for name in names if (c := counters(name, self.root)) is not None}
        missing = [name for name in names if name not in found]
        self.interfaces = names
        self.problem = ("no measured interfaces (no wire in the backup and no visibility.interfaces)" if not names else
                        f"interface{'s' if len(missing) > 1 else ''} {', '.join(missing)} not found" if missing else "")
        previous, self._last = self._last, (now, found)
        if previous is None or not found or now <= previous[0]:
            return None
        seconds = now - previous[0]
        down = up = 0
        for name, (rx, tx) in found.items():
            old = previous[1].get(name)
            if old is None or rx < old[0] or tx < old[1]:  # new, or its counters reset (the interface was re-created)
                continue
            down += tx - old[1]
            up += rx - old[0]
        return down * 8 / seconds, up * 8 / seconds


def wire_interfaces(config: Any) -> tuple[str, ...]:
    """The access interface of every ``wire`` section of a parsed backup."""
    names = []
    for section in getattr(config, "sections", ()):
        if section.words[:1] == ("wire",):
            names += [child.words[1] for child in section.children if child.words[:1] == ("access",)
                      and len(child.words) > 1]
    return tuple(names)


class Rings:
    """One server's samples: a slot per second for an hour, per minute (sum and count) for a day."""

    def __init__(self) -> None:
        self.seconds: list[Sample | None] = [None] * HOUR
        self.minutes: list[tuple[int, float, float, int] | None] = [None] * DAY_MINUTES

    def add(self, t: int, down: float, up: float) -> None:
        """A sample for second ``t``; one already held for that second is kept (a resend adds nothing twice)."""
        held = self.seconds[t % HOUR]
        if held is not None and held[0] >= t:
            return
        self.seconds[t % HOUR] = (t, down, up)
        minute = t // 60
        slot = self.minutes[minute % DAY_MINUTES]
        if slot is not None and slot[0] > minute:
            return
        if slot is None or slot[0] < minute:
            slot = (minute, 0.0, 0.0, 0)
        self.minutes[minute % DAY_MINUTES] = (minute, slot[1] + down, slot[2] + up, slot[3] + 1)

    def add_minute(self, minute: int, down: float, up: float) -> None:
        """A peer's average for a minute this server holds nothing of (it was not running, or not connected)."""
        slot = self.minutes[minute % DAY_MINUTES]
        if slot is None or slot[0] < minute:
            self.minutes[minute % DAY_MINUTES] = (minute, down, up, 1)

    def second(self, t: int) -> Sample:
        held = self.seconds[t % HOUR]
        return held if held is not None and held[0] == t else (t, None, None)

    def minute(self, minute: int) -> Sample:
        slot = self.minutes[minute % DAY_MINUTES]
        if slot is None or slot[0] != minute or not slot[3]:
            return (minute * 60, None, None)
        return (minute * 60, slot[1] / slot[3], slot[2] / slot[3])

    def series(self, seconds: int, now: int) -> tuple[int, list[Sample]]:
        """(step, samples) for the last ``seconds`` before ``now``: per second up to an hour, else per minute (a day at most)."""
        if seconds <= HOUR:
            return 1, [self.second(t) for t in range(now - seconds + 1, now + 1)]
        last = now // 60
        count = min(DAY_MINUTES, math.ceil(seconds / 60))
        return 60, [self.minute(m) for m in range(last - count + 1, last + 1)]

    def newest(self, now: int) -> Sample | None:
        for t in range(now, now - CURRENT - 1, -1):
            sample = self.second(t)
            if sample[1] is not None:
                return sample
        return None


@dataclass(slots=True)
class ServerInfo:
    """What a server says of itself with its samples: shown in its box on the home page."""

    hostname: str = ""
    version: str = ""
    web: str = ""
    interfaces: list[str] = field(default_factory=list)
    problem: str = ""


@dataclass(slots=True)
class _Sent:
    connection: int = -1
    upto: int = 0


class Board:
    """Every server's rings and what it says of itself; this server's are filled by :meth:`sample`."""

    def __init__(self, own: int) -> None:
        self.own = own
        self.meter = Meter()
        self.rings: dict[int, Rings] = {own: Rings()}
        self.info: dict[int, ServerInfo] = {own: ServerInfo(version=__version__)}
        self._sent: dict[int, _Sent] = {}

    def sample(self, interfaces: Iterable[str], hostname: str, web: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        rates = self.meter.read(interfaces, now)
        info = self.info[self.own]
        info.hostname, info.web = hostname or socket.gethostname(), web
        info.interfaces, info.problem = list(self.meter.interfaces), self.meter.problem
        if rates is not None:
            self.rings[self.own].add(int(now), round(rates[0], 1), round(rates[1], 1))

    def message(self, peer: int, connection: int, now: float | None = None) -> Visibility:
        """This server's samples for ``peer``: all it holds on a new connection, else those not sent on this one."""
        now_s = int(time.time() if now is None else now)
        sent = self._sent.setdefault(peer, _Sent())
        ring = self.rings[self.own]
        minutes: list[list[Any]] = []
        if sent.connection != connection:
            start = now_s - HOUR + 1
            minutes = [list(m) for m in ring.series(HOUR * 24, now_s)[1] if m[1] is not None and m[0] + 60 <= start]
        else:
            start = max(sent.upto + 1, now_s - HOUR + 1)
        seconds = [list(s) for s in (ring.second(t) for t in range(start, now_s + 1)) if s[1] is not None]
        sent.connection, sent.upto = connection, now_s
        info = self.info[self.own]
        return Visibility(id=self.own, hostname=info.hostname, version=info.version, web=info.web,
                          interfaces=info.interfaces, problem=info.problem, seconds=seconds, minutes=minutes)

    def receive(self, message: Visibility) -> None:
        """A peer's samples; malformed ones (not [time, down, up] of finite non-negative numbers) are dropped."""
        ring = self.rings.setdefault(message.id, Rings())
        self.info[message.id] = ServerInfo(message.hostname[:253], message.version[:64], message.web[:256],
                                           [str(i)[:15] for i in message.interfaces[:64]], message.problem[:512])
        for item in message.seconds[:HOUR]:
            if _valid(item):
                ring.add(int(item[0]), float(item[1]), float(item[2]))
        for item in message.minutes[:DAY_MINUTES]:
            if _valid(item) and int(item[0]) % 60 == 0:
                ring.add_minute(int(item[0]) // 60, float(item[1]), float(item[2]))

    def forget(self, keep: Iterable[int]) -> None:
        """Drop the servers that left the cluster (and this server's old id after a set-id)."""
        kept = set(keep) | {self.own}
        for table in (self.rings, self.info, self._sent):
            for server in [s for s in table if s not in kept]:
                del table[server]

    def current(self, server: int, up: bool, now: int | None = None) -> list[float] | None:
        """[downlink, uplink] bits/s now, or None: no data (a server that is down has none, whatever it sent before)."""
        ring = self.rings.get(server)
        if ring is None or not up:
            return None
        sample = ring.newest(int(time.time()) if now is None else now)
        return [sample[1], sample[2]] if sample is not None and sample[1] is not None and sample[2] is not None else None

    def series(self, servers: Iterable[int], seconds: int, up: dict[int, bool], now: int | None = None,
               points: int | None = None) -> dict[str, Any]:
        """``GET /api/v1/throughput``'s and ``clusterd throughput --json``'s object.

        ``points``: at most this many samples per server, each the average of
        as many consecutive ones as it takes (``step`` says how many seconds
        one covers): what a primary answers a secondary with, so that an
        hour of 256 servers is a few hundred kilobytes, not 30 MB.
        """
        now = int(time.time()) - 1 if now is None else now
        out = []
        step = 1
        for server in servers:
            step, samples = self.rings.get(server, Rings()).series(seconds, now)
            if points is not None and len(samples) > points:
                width = math.ceil(len(samples) / points)
                samples = [_average(samples[k:k + width]) for k in range(0, len(samples), width)]
                step *= width
            info = self.info.get(server, ServerInfo())
            out.append({"id": server, "this": server == self.own, "up": up.get(server, False),
                        "hostname": info.hostname, "interfaces": info.interfaces, "problem": info.problem or None,
                        "current": self.current(server, up.get(server, False), now + 1),
                        "samples": [list(s) for s in samples]})
        return {"now": now, "seconds": seconds, "step": step, "unit": "bit/s", "servers": out}


def _average(samples: list[Sample]) -> Sample:
    """One sample for consecutive ones: their average where they have data (no data if none has)."""
    known = [s for s in samples if s[1] is not None and s[2] is not None]
    if not known:
        return (samples[-1][0], None, None)
    return (samples[-1][0], round(sum(s[1] for s in known) / len(known), 1),  # type: ignore[misc]
            round(sum(s[2] for s in known) / len(known), 1))  # type: ignore[misc]


def _valid(item: Any) -> bool:
    return (isinstance(item, list) and len(item) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 for v in item))
