"""``clusterd demo`` as a new user runs it: it narrates, stops by itself, and leaves nothing running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_demo_unifies_distributes_an_edit_fails_over_and_stops(tmp_path):
    done = subprocess.run([sys.executable, "-m", "clusterd", "demo", "--keep", str(tmp_path / "demo")],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for step in ("three BQN servers", "ready and complete after", "cluster-wide entries changed to the cluster's",
                 "0 of its own", "192.0.2.123", "on every server after", "server 1 is primary after",
                 "server 0 is primary again", "every daemon stopped"):
        assert step in out, step
    assert "status complete" in out.rsplit("server 0 comes back", 1)[1]
    for i in (0, 1, 2):
        text = (tmp_path / "demo" / f"server{i}" / "bqn.conf").read_text()
        assert "server 192.0.2.123" in text and "rule sw-updates-at-peak" in text
        assert f"hostname bqn{i}" in text
    assert not running_with(str(tmp_path / "demo")), "no daemon left running"


def running_with(text: str) -> list[int]:
    """Processes whose command line mentions ``text`` (what pgrep -f does, without needing procps)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
