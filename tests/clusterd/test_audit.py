"""The audit log: JSON lines appended, read newest first, a line cut short skipped (clusterd.audit)."""

from __future__ import annotations

import stat
from pathlib import Path

from clusterd.audit import AuditLog, Entry


def test_entries_are_appended_and_read_newest_first_a_cut_line_skipped(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    assert log.newest() == []
    for n in range(3):
        log.append(Entry("token ci", "admin", 1000.0 + n, f"change {n}", "127.0.0.1", 200, "done"))
    with open(log.path, "a") as handle:
        handle.write('{"who": "cut sh')
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    assert [e["what"] for e in log.newest()] == ["change 2", "change 1", "change 0"]
    log.append(Entry("token ci", "admin", 1003.0, "change 3", "127.0.0.1", 200, "done"))
    assert [e["what"] for e in log.newest()] == ["change 3", "change 2", "change 1", "change 0"]
    assert [e["what"] for e in log.newest(2)] == ["change 3", "change 2"]
    assert log.newest()[1] == {"who": "token ci", "role": "admin", "when": 1002.0, "what": "change 2",
                               "address": "127.0.0.1", "status": 200, "result": "done"}
