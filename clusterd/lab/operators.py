"""Operators editing the live backups of a lab at a high rate, and the record of every edit they made.

Each server has an operator who edits its live backup the way an operator
does, by atomic replace: cluster-wide edits (a ``policy rate lab-s<id>-<n>``
section added, its ``downlink`` changed, the section removed; the shared
``lab-shared-<n>`` policies changed by everyone, so that edits meet) and
server-specific ones (``static`` routes added to and removed from its own
``routing``). The file is swapped in with ``renameat2(RENAME_EXCHANGE)``, so
the operator knows exactly what its write replaced: every tracked value that
differs between the two files is recorded as an :class:`Edit`, including
values a write carried back because the daemon rewrote the file between the
operator's read and write (``intended=False``). Every value written is unique,
so a value seen anywhere names the edit that made it.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from confmerge import write_atomic

from ..livefile import swap_paths

SHARED = 2
"""Shared policies every operator changes."""

KEPT = 30
"""Own policies and routes an operator keeps at most (it removes one instead of adding): a backup of steady size."""

_POLICY = re.compile(r"^policy rate (lab-\S+)\n((?:[ \t]+\S.*\n)*)", re.M)
_DOWNLINK = re.compile(r"^[ \t]+downlink (\d+)([kMG]?)\s*$", re.M)
_LAB_ROUTE = re.compile(r"^\s+static 10\.2\d\d\.")
_UNIT = {"": 1, "k": 1, "M": 1000, "G": 1000_000}


@dataclass(frozen=True, slots=True)
class Edit:
    """One tracked value written by an operator: ``policy rate KEY`` got downlink VALUE kbit/s (None: removed)."""

    number: int
    server: int
    key: str
    value: int | None
    at: float
    """time.monotonic() right after the write."""
    intended: bool = True
    """False: a value the write carried back from a stale read (the daemon wrote the file in between)."""
    replaced: int | None = None
    """The value in the file the write replaced (None: it had none)."""
    wall: float = 0.0
    """time.time() of the write, to be read beside the servers' logs."""


def policies(text: str) -> dict[str, int | None]:
    """The lab's tracked values in a backup: each ``lab-`` policy's downlink in kbit/s."""
    out: dict[str, int | None] = {}
    for match in _POLICY.finditer(text):
        rate = _DOWNLINK.search(match.group(2))
        out[match.group(1)] = int(rate.group(1)) * _UNIT[rate.group(2)] if rate else None
    return out


def section(text: str, keyword: str) -> str:
    """A top-level section's lines as written (all sections with that keyword, in order)."""
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        if line.strip() and not line[:1].isspace():
            inside = line.split()[0] == keyword
        if inside:
            out.append(line)
    return "".join(out)


SERVER_SPECIFIC = ("hostname", "bqn-id", "management", "interface", "wire", "routing")


def server_sections(text: str) -> dict[str, str]:
    return {keyword: section(text, keyword) for keyword in SERVER_SPECIFIC}


def with_policy(text: str, key: str, value: int | None) -> str:
    """The text with policy ``key`` set to ``value`` kbit/s downlink (added if missing), or removed (None)."""
    match = next((m for m in _POLICY.finditer(text) if m.group(1) == key), None)
    block = f"policy rate {key}\n  downlink {value}k\n  uplink 1M\n" if value is not None else ""
    if match:
        if value is not None:
            body = _DOWNLINK.sub(f"  downlink {value}k", match.group(2), count=1)
            block = f"policy rate {key}\n{body}" if _DOWNLINK.search(match.group(2)) else block
        return text[:match.start()] + block + text[match.end():]
    if value is None:
        return text
    rule = re.search(r"^(#[^\n]*\n)*rule ", text, re.M)
    at = rule.start() if rule else len(text)
    return text[:at] + block + text[at:]


def with_routes(text: str, routes: list[str]) -> str:
    """The text with its ``routing`` section's lab routes (``static 10.2xx.``) replaced by ``routes``."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.rstrip() == "routing")
    end = start + 1
    while end < len(lines) and lines[end][:1].isspace() and lines[end].strip():
        end += 1
    kept = [line for line in lines[start + 1:end] if not _LAB_ROUTE.match(line)]
    return "".join(lines[:start + 1] + kept + [f"  static {r}\n" for r in routes] + lines[end:])


def seeded(text: str) -> str:
    """A backup with the shared policies every operator edits (their first values are not edits)."""
    for n in range(SHARED):
        text = with_policy(text, f"lab-shared-{n}", 50_000 + n)
    return text


def exchange(path: Path, text: str) -> str:
    """Swap ``text`` in as ``path`` atomically and return what it replaced (renameat2 RENAME_EXCHANGE)."""
    temp = path.with_name(f".{path.name}.lab-{threading.get_ident()}")
    write_atomic(temp, text)
    try:
        swap_paths(temp, path)
        return temp.read_text()
    finally:
        temp.unlink(missing_ok=True)


@dataclass
class Record:
    """Every edit made, every server-specific section an operator left, and what went wrong on the way."""

    edits: list[Edit] = field(default_factory=list)
    sections: dict[int, dict[str, str]] = field(default_factory=dict)
    """Each server's own sections as its operator last left them."""
    violations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _values: int = 100_000

    def value(self) -> int:
        with self.lock:
            self._values += 1
            return self._values

    def add(self, server: int, before: str, after: str, intended: set[str]) -> None:
        old, new = policies(before), policies(after)
        now, wall = time.monotonic(), time.time()
        with self.lock:
            for key in sorted(set(old) | set(new)):
                if old.get(key, None) != new.get(key, None) or (key in old) != (key in new):
                    self.edits.append(Edit(len(self.edits), server, key, new.get(key), now, key in intended,
                                           old.get(key), wall))

    def dump(self, path: Path) -> None:
        """Every edit as a JSON line (``bench/faults.py --keep``): a lost one can then be traced in the logs."""
        with self.lock:
            lines = [json.dumps({"edit": e.number, "server": e.server, "key": e.key, "value": e.value,
                                 "replaced": e.replaced, "intended": e.intended,
                                 "time": datetime.fromtimestamp(e.wall).isoformat(sep=" ", timespec="milliseconds")})
                     for e in self.edits]
        write_atomic(path, "".join(line + "\n" for line in lines))


class Operator:
    """One server's operator: a thread editing its live backup every ``1/rate`` s on average."""

    def __init__(self, server: int, backup: Path, record: Record, seed: int, rate: float = 4.0,
                 others: list[int] | None = None) -> None:
        self.server = server
        self.backup = backup
        self.record = record
        self.random = random.Random(seed * 1009 + server)
        self.rate = rate
        self.own: list[str] = []
        self.routes: list[str] = []
        self.sections = server_sections(backup.read_text())
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"operator {server}", daemon=True)
        self.count = 0

    def start(self) -> None:
        with self.record.lock:
            self.record.sections[self.server] = self.sections
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        while not self.stopping.wait(min(self.random.expovariate(self.rate), 2.0)):
            try:
                self.edit_once()
            except Exception as error:  # recorded, never silent: the checker reports it
                with self.record.lock:
                    self.record.violations.append(f"operator {self.server} could not edit: {error!r}")

    def _decide(self) -> tuple[Callable[[str], str], set[str]]:
        """The next edit, as a change to whatever text the backup holds when it is made."""
        roll = self.random.random()
        if roll < 0.15:
            if len(self.routes) >= KEPT or (self.routes and self.random.random() < 0.3):
                self.routes.remove(self.random.choice(self.routes))
            else:
                self.routes.append(f"10.{200 + self.server % 50}.{self.count % 250}.0/24 via 192.168.0.1")
            routes = list(self.routes)
            return (lambda text: with_routes(text, routes)), set()
        value: int | None = self.record.value()
        if roll < 0.35:
            key = f"lab-shared-{self.random.randrange(SHARED)}"
        elif (roll < 0.55 or not self.own) and len(self.own) < KEPT:
            key = f"lab-s{self.server}-{self.count}"
            self.own.append(key)
        else:
            key = self.random.choice(self.own)
            if roll > 0.95 or len(self.own) >= KEPT and roll < 0.55:
                value = None
                self.own.remove(key)
        return (lambda text: with_policy(text, key, value)), {key}

    def edit_once(self) -> None:
        """Read, change, and swap in only if the file is still what was read (a few tries), recording the result."""
        self.count += 1
        change, keys = self._decide()
        for _ in range(5):
            text = self.backup.read_text()
            changed = change(text)
            if self.backup.read_text() == text:
                break
        replaced = exchange(self.backup, changed)
        self.record.add(self.server, replaced, changed, keys)
        mine = server_sections(replaced)
        if mine != self.sections:
            changes = []
            for keyword in (k for k in SERVER_SPECIFIC if mine[k] != self.sections[k]):
                left, found = self.sections[keyword].splitlines(), mine[keyword].splitlines()
                changes += [f"-{line.strip()}" for line in left if line not in found]
                changes += [f"+{line.strip()}" for line in found if line not in left]
                if not changes:
                    changes += [f"{keyword} was {left!r}, found {found!r}"]
            with self.record.lock:
                self.record.violations.append(f"server {self.server}'s own sections were changed behind its "
                                              f"operator: {'; '.join(changes)}")
        self.sections = server_sections(changed)
        with self.record.lock:
            self.record.sections[self.server] = self.sections
