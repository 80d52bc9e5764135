"""The audit log: every change asked of the web GUI or API, one JSON line each in ``state-dir/audit.log``.

A line says who (the token's name or the user), their role, when, what, from
which address and the result (the HTTP status, and the reason of a refusal).
Each is appended with one write and fsynced before the answer goes out, so
a change the client saw is on disk; a line cut short by a crash is skipped
when read, and the next one starts on a line of its own.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Entry:
    who: str
    role: str
    when: float
    what: str
    address: str
    status: int
    result: str


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, entry: Entry) -> None:
        line = (json.dumps(asdict(entry), ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def newest(self, limit: int = 500) -> list[dict[str, Any]]:
        """The last ``limit`` entries, newest first."""
        try:
            lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for line in reversed(lines):
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
            if len(entries) >= limit:
                break
        return entries
