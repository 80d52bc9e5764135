"""``clusterd demo``: the daemon's main job on three servers of loopback, narrated, stopping by itself.

Three ``clusterd run`` processes on 127.0.0.1-3 (the guide's control ports
63500+id when they are free), each with an embedded SSH server standing in
for its sshd, started from the fixtures' backups of the guide's scenario
(``bqn0-v1.conf``, ``bqn1-v1.conf``, ``bqn2-v1.conf``). It shows the
unification at join, an edit made on a secondary reaching every server, and a
failover and the old primary's return, then stops every process.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from confmerge import Op, Scope, diff, parse

from .local import FIXTURES, Cluster

NTP_EDIT = ("  server 162.159.200.1\n", "  server 162.159.200.1\n  server 192.0.2.123\n")


def _status(config: Path) -> None:
    """``clusterd status`` as the operator runs it (the command itself, so the demo shows exactly its output)."""
    sys.stdout.flush()
    subprocess.run([sys.executable, "-m", "clusterd", "-c", str(config), "status"], timeout=30,
                   stdin=subprocess.DEVNULL, check=False)


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _differences(old: str, new: str, scope: Scope) -> list[str]:
    """Each difference as one short line: ``+ rule sw-updates-at-peak``, ``- ntp / server 216.229.0.50``."""
    marks = {Op.ADDED: "+", Op.REMOVED: "-", Op.CHANGED: "~", Op.MOVED: ">"}
    return [f"{marks[c.op]} {c.section}{' / ' + c.statement if c.statement else ''}"
            for c in diff(parse(old, "old"), parse(new, "new"), scope).changes]


def run_demo(keep: Path | None = None, web: bool = False) -> int:
    names = ["bqn0-v1.conf", "bqn1-v1.conf", "bqn2-v1.conf"]
    if not all((FIXTURES / name).exists() for name in names):
        print(f"clusterd demo: the fixtures are not at {FIXTURES}; run it from a clone (pip install -e .)")
        return 2
    if keep and keep.exists() and any(keep.iterdir()):
        print(f"clusterd demo: {keep} is not empty")
        return 2
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="clusterd-demo-"))
    previous = signal.signal(signal.SIGTERM, _interrupted)
    try:
        return _web(root, names) if web else _narrate(root, names)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if keep:
            print(f"  the servers' files and logs are in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _interrupted(signum: int, frame: FrameType | None) -> None:
    """SIGTERM ends the demo as Ctrl-C does: every daemon stopped, the temporary directory (node keys too) removed."""
    raise KeyboardInterrupt


def _web(root: Path, names: list[str]) -> int:
    """The three servers with the web GUI, running until Ctrl-C or SIGTERM: where to open each is printed."""
    import socket

    backups = {i: (FIXTURES / name).read_text() for i, name in enumerate(names)}
    cluster = Cluster(root, [0, 1, 2], backups=backups, port_base=63500, heartbeat=0.5, missed=3, hold=3.0)
    ports = {}
    for i in cluster.ids:
        with socket.socket() as probe:
            try:
                probe.bind((cluster.address(i), 8443))
            except OSError:
                probe.bind((cluster.address(i), 0))
            ports[i] = probe.getsockname()[1]
        cluster.config(i).write_text(cluster.config(i).read_text() + f"web:\n  listen: {cluster.address(i)}:{ports[i]}\n"
                                     "visibility:\n  interfaces: [lo]\n")
    try:
        cluster.start_all()
        cluster.wait("the cluster to be complete", lambda: cluster.complete() or None, 30, every=0.1)
        _say("three BQN servers with the web GUI (self-signed certificates: the browser asks to accept each once)")
        for i in cluster.ids:
            token = (cluster.dir(i) / "state" / "web-token").read_text().strip()
            print(f"  server {i}: open https://{cluster.address(i)}:{ports[i]}/login?token={token}")
        print("  Ctrl-C stops every server", flush=True)
        while all(process.poll() is None for process in cluster.processes.values()):
            time.sleep(0.5)
        print("\nclusterd demo: a server stopped; see its log in " + str(root))
        return 1
    except AssertionError as error:
        print(f"\nclusterd demo: {error}")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.stop_all()
        _say("every daemon stopped")


def _narrate(root: Path, names: list[str]) -> int:
    backups = {i: (FIXTURES / name).read_text() for i, name in enumerate(names)}
    cluster = Cluster(root, [0, 1, 2], backups=backups, port_base=63500, heartbeat=0.5, missed=3, hold=3.0)
    started = time.monotonic()
    try:
        _say("three BQN servers, as the guide's example: ids 0, 1, 2 on 127.0.0.1-3")
        for i in cluster.ids:
            print(f"  server {i}: {names[i]}, control port {cluster.base + i}, SSH port {cluster.ssh_port(i)}, "
                  f"files in {cluster.dir(i)}")
        for i in (1, 2):
            count = len(_differences(backups[i], backups[0], Scope.CLUSTER))
            print(f"  server {i}'s cluster-wide sections differ from server 0's in {count} entries")

        _say("start the daemons; the lowest id is primary and its configuration becomes the cluster's")
        cluster.start_all()
        cluster.wait("the cluster to be complete", lambda: cluster.complete() or None, 30, every=0.1)
        print(f"  ready and complete after {time.monotonic() - started:.1f} s")
        _status(cluster.config(1))
        for i in (1, 2):
            after = cluster.backup(i).read_text()
            own = _differences(backups[i], after, Scope.SERVER)
            gained = _differences(backups[i], after, Scope.CLUSTER)
            print(f"  server {i}: {len(gained)} cluster-wide entries changed to the cluster's, "
                  f"{len(own)} of its own (hostname, management, interfaces) touched")
            for line in gained:
                print(f"      {line}")
        print("  (what only a secondary had is gone, as the guide says; to keep it, unify first with\n"
              "   confmerge merge fixtures/bqn0-v1.conf fixtures/bqn1-v1.conf fixtures/bqn2-v1.conf)")

        _say("an operator adds NTP server 192.0.2.123 on server 2 (a secondary)")
        edited = time.monotonic()
        cluster.edit(2, *NTP_EDIT)
        cluster.wait("the edit on every server", lambda: all(
            "server 192.0.2.123" in cluster.backup(i).read_text() for i in cluster.ids) or None, 20, every=0.05)
        print(f"  on every server after {time.monotonic() - edited:.2f} s (recorded there, taken in by the primary, "
              "distributed)")
        cluster.wait("the cluster to be complete", lambda: cluster.complete() or None, 20, every=0.1)

        _say("kill -9 the primary, server 0")
        killed = time.monotonic()
        cluster.kill(0)
        cluster.wait("server 1 to take over", lambda: cluster.agreed_primary() == 1 or None, 15, every=0.02)
        print(f"  server 1 is primary after {time.monotonic() - killed:.2f} s")
        _status(cluster.config(1))

        _say("server 0 comes back: it catches up, waits the hold time, and takes the primary role back")
        returned = time.monotonic()
        cluster.start(0)
        cluster.wait("server 0 to be primary again", lambda: cluster.agreed_primary() == 0 and cluster.complete()
                     or None, 30, every=0.1)
        print(f"  server 0 is primary again after {time.monotonic() - returned:.1f} s")
        _status(cluster.config(0))
    except AssertionError as error:
        print(f"\nclusterd demo: {error}")
        return 1
    finally:
        cluster.stop_all()
    _say(f"done in {time.monotonic() - started:.1f} s; every daemon stopped")
    return 0
