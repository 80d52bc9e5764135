"""clusterd's log and status quote a backup with its control characters escaped (issue 18, item 1)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from clusterd.local import free_base, status_of, wait_for

ESC = "\x1b[2J\x1b[31mOK"
SHOWN = "\\x1b[2J\\x1b[31mOK"


def _no_raw_controls(text: str) -> bool:
    return not any(ord(c) < 0x20 and c not in "\n\t" or 0x7f <= ord(c) <= 0x9f for c in text)


def _clusterd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clusterd", *args], capture_output=True, text=True, timeout=60)


def test_a_backup_with_escapes_reaches_the_log_and_status_escaped(tmp_path: Path):
    (tmp_path / "bqn.conf").write_text(f"hostname {ESC}\nbqn-id 0\n", encoding="utf-8")
    config = tmp_path / "cluster.yaml"
    made = _clusterd("-c", str(config), "init", "--id", "0", "--address", "127.0.0.1",
                     "--port-base", str(free_base(1)), "--backup", "bqn.conf")
    assert made.returncode == 0, made.stderr
    log = tmp_path / "clusterd.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen([sys.executable, "-m", "clusterd", "-c", str(config), "run"],
                                  stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    try:
        wait_for("the daemon to find the backup invalid", lambda: "not valid" in log.read_text(errors="replace"),
                 timeout=30, explain=lambda: log.read_text(errors="replace"))
        wait_for("the daemon to answer", lambda: status_of(config), timeout=30)
        status = _clusterd("-c", str(config), "status")
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    text = log.read_text()
    assert SHOWN in text and _no_raw_controls(text), text
    assert status.returncode == 0 and _no_raw_controls(status.stdout), status.stdout
