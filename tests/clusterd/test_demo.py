"""``clusterd demo`` as a new user runs it: it narrates, stops by itself, and leaves nothing running."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


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


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_demo_stops_its_daemons_and_removes_its_directory(signum):
    """The demo's temporary directory holds three node keys: interrupted, it must go with every daemon."""
    demo = subprocess.Popen([sys.executable, "-m", "clusterd", "demo"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    try:
        root = None
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline and root is None:
            ready, _, _ = select.select([demo.stdout], [], [], 1)
            if ready:
                line = demo.stdout.readline()
                lines.append(line)
                if found := re.search(r"files in (\S+)/server2$", line.rstrip()):
                    root = Path(found.group(1))
        assert root is not None, "".join(lines)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not running_with(str(root / "server2")):
            time.sleep(0.05)
        assert running_with(str(root / "server2")), "the daemons started"
        assert list(root.glob("server*/state/node_key")), "node keys are in the directory"
        demo.send_signal(signum)
        out, _ = demo.communicate(timeout=60)
        assert demo.returncode == 130, "".join(lines) + out
        assert not root.exists(), f"{root} left behind:\n{''.join(lines)}{out}"
        assert not running_with(str(root)), "no daemon left running"
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(timeout=10)


def test_the_web_demo_keeps_three_servers_with_their_gui_until_ctrl_c(tmp_path):
    import json
    import ssl
    import urllib.request

    root = tmp_path / "demo"
    demo = subprocess.Popen([sys.executable, "-m", "clusterd", "demo", "--web", "--keep", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    try:
        urls, seen = {}, ""
        deadline = time.monotonic() + 80
        while time.monotonic() < deadline and "Ctrl-C stops" not in seen:
            if select.select([demo.stdout], [], [], 1)[0]:
                seen += os.read(demo.stdout.fileno(), 65536).decode()
        for found in re.finditer(r"server (\d): open (https://\S+)/login\?token=(\S+)\n", seen):
            urls[int(found.group(1))] = (found.group(2), found.group(3))
        lines = [seen]
        assert len(urls) == 3, seen
        url, token = urls[1]
        context = ssl.create_default_context(cafile=str(root / "server1" / "state" / "web-cert.pem"))
        request = urllib.request.Request(url + "/api/v1/cluster", headers={"Authorization": f"Bearer {token}"})
        cluster = json.load(urllib.request.urlopen(request, context=context, timeout=30))
        assert (cluster["state"], cluster["server"], [s["id"] for s in cluster["servers"]]) == ("ready", 1, [0, 1, 2])
        demo.send_signal(signal.SIGINT)
        out, _ = demo.communicate(timeout=60)
        assert demo.returncode == 0 and "every daemon stopped" in out, "".join(lines) + out
        assert not running_with(str(root)), "no daemon left running"
    finally:
        if demo.poll() is None:
            demo.terminate()  # the demo stops its daemons on SIGTERM; SIGKILL would leave them running
            try:
                demo.wait(timeout=30)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait(timeout=10)
        for pid in running_with(str(root)):
            os.kill(pid, signal.SIGKILL)
