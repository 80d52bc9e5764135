"""A cluster of ``clusterd run`` processes on 127.0.0.x: what ``clusterd demo``, the tests and the benchmarks run.

Every server gets a directory with its cluster file, state directory and live
backup; keys are made before the start and each server trusts the others
(as ``clusterd add-peer`` on both sides would leave it), and each runs the
embedded SSH server unless told otherwise. Every wait is bounded.
"""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from . import keys
from .client import Trouble, ask
from .config import ClusterConfig, load

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
"""The repository's fixtures (an editable install, as the README's Quick start makes)."""


def free_base(count: int, span: int = 300, prefer: int | None = None) -> int:
    """A port base whose control ports (base+id) and SSH ports (base+span+id) are free on every address used."""
    for attempt in range(200):
        base = prefer if attempt == 0 and prefer is not None else random.randrange(20000, 60000)
        try:
            for i in range(count):
                for port in (base + i, base + span + i):
                    with socket.socket() as s:
                        s.bind((Cluster.address(i), port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port range on loopback")


_loaded: dict[Path, tuple[int, ClusterConfig]] = {}


def status_of(config: Path) -> dict[str, Any] | None:
    """``clusterd status`` of the daemon running on ``config``; None while it does not answer.

    The cluster file is read again only when it changed (a 256-server one takes a tenth of a second to load).
    """
    try:
        stamp = config.stat().st_mtime_ns
        if _loaded.get(config, (None,))[0] != stamp:
            _loaded[config] = (stamp, load(config))
        return ask(_loaded[config][1], {"type": "status"}, timeout=5)["status"]
    except (Trouble, KeyError, OSError):
        return None


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 20.0, every: float = 0.05,
             explain: Callable[[], str] = lambda: "") -> Any:
    """Poll until ``predicate`` gives something other than None or False, for ``timeout`` seconds at most."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None and value is not False:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{explain()}")


class Cluster:
    def __init__(self, root: Path, ids: list[int], backups: dict[int, str] | None = None,
                 heartbeat: float = 0.2, missed: int = 3, hold: float = 1.0, drift: float = 60.0,
                 apply_command: dict[int, str] | None = None, serve: bool | set[int] = True,
                 port_base: int | None = None) -> None:
        self.root = root
        self.ids = ids
        self.base = free_base(max(ids) + 1, prefer=port_base)
        self.processes: dict[int, subprocess.Popen] = {}
        self.paused: set[int] = set()
        """Servers stopped with SIGSTOP: their status is not asked (it would wait for the timeout)."""
        self.node_keys = {}
        self.host_keys = {}
        for i in ids:
            state = self.dir(i) / "state"
            state.mkdir(parents=True)
            self.node_keys[i] = keys.load_or_create(state / "node_key")
            self.host_keys[i] = keys.load_or_create(state / "ssh_host_key")
            text = (backups or {}).get(i) or (FIXTURES / "bqn1-v1.conf").read_text().replace("bqn-id 1", f"bqn-id {i}")
            (self.dir(i) / "bqn.conf").write_text(text)
        for i in ids:
            peers = "\n".join(
                f"  - id: {j}\n    address: {self.address(j)}\n    ssh-port: {self.ssh_port(j)}\n"
                f"    key: {keys.public_line(self.node_keys[j])}" for j in ids if j != i)
            command = (apply_command or {}).get(i, "")
            self.config(i).write_text(
                f"# server {i} of a local cluster (clusterd.local)\nid: {i}\naddress: {self.address(i)}\nssh-port: {self.ssh_port(i)}\n"
                f"port-base: {self.base}\nstate-dir: state\nbackup: bqn.conf\napply-command: {command!r}\n"
                f"ssh:\n  serve: {'true' if (i in serve if isinstance(serve, set) else serve) else 'false'}\n"
                f"timing:\n  heartbeat: {heartbeat}\n  missed: {missed}\n  hold: {hold}\n  drift: {drift}\n"
                + (f"peers:\n{peers}\n" if peers else "peers: []\n"))
            (self.dir(i) / "state" / "known_hosts").write_text("".join(f"{line}\n" for line in (
                keys.known_hosts_entry(self.address(j), self.ssh_port(j), self.host_keys[j]) for j in ids if j != i)))

    def dir(self, i: int) -> Path:
        return self.root / f"server{i}"

    def config(self, i: int) -> Path:
        return self.dir(i) / "cluster.yaml"

    def backup(self, i: int) -> Path:
        return self.dir(i) / "bqn.conf"

    @staticmethod
    def address(i: int) -> str:
        """127.0.0.1 for server 0 on to 127.0.1.0 for server 255 (all of 127.0.0.0/8 is loopback)."""
        return f"127.0.{(i + 1) // 256}.{(i + 1) % 256}"

    def ssh_port(self, i: int) -> int:
        return self.base + 300 + i

    def command(self, i: int) -> list[str]:
        return [sys.executable, "-m", "clusterd", "-c", str(self.config(i)), "run"]

    def start(self, i: int) -> None:
        log = open(self.dir(i) / "clusterd.log", "ab")
        self.processes[i] = subprocess.Popen(
            self.command(i),
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)

    def start_all(self) -> None:
        for i in self.ids:
            self.start(i)

    def kill(self, i: int) -> None:
        process = self.processes.pop(i)
        self.paused.discard(i)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def pause(self, i: int) -> None:
        """SIGSTOP: a hung server (its connections stay open, its heartbeats stop)."""
        self.processes[i].send_signal(signal.SIGSTOP)
        self.paused.add(i)

    def resume(self, i: int) -> None:
        self.processes[i].send_signal(signal.SIGCONT)
        self.paused.discard(i)

    def running(self) -> list[int]:
        return [i for i in self.processes if i not in self.paused]

    def stop_all(self) -> None:
        for i in list(self.paused):
            self.resume(i)
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5 + len(self.processes) / 20  # one for all: a 256-server cluster stops in ~20 s
        for process in self.processes.values():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.processes.clear()

    def edit(self, i: int, old: str, new: str) -> None:
        """Change server i's live backup as an operator would, in one atomic step."""
        from confmerge import write_atomic

        text = self.backup(i).read_text()
        assert text.count(old) == 1, f"{old!r} must occur once in server {i}'s backup"
        write_atomic(self.backup(i), text.replace(old, new))

    def digest(self, i: int) -> str:
        from confmerge import cluster_digest, parse

        return cluster_digest(parse(self.backup(i).read_text(), str(self.backup(i))))

    def status(self, i: int) -> dict[str, Any] | None:
        return status_of(self.config(i)) if i in self.processes and i not in self.paused else None

    def seen(self, i: int, j: int) -> dict[str, Any] | None:
        """Server j as server i's status shows it (None while i does not answer)."""
        status = self.status(i)
        return next((s for s in status["servers"] if s["id"] == j), None) if status else None

    def log(self, i: int) -> str:
        path = self.dir(i) / "clusterd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- server {i} ---\n{self.log(i)[-4000:]}" for i in self.ids)

    def wait(self, what: str, predicate: Callable[[], Any], timeout: float = 20.0, every: float = 0.05) -> Any:
        return wait_for(what, predicate, timeout, every, self.logs)

    def agreed_primary(self) -> int | None:
        """The primary every running server reports while all say ready; None otherwise."""
        views = [self.status(i) for i in self.running()]
        primaries = {v["primary"] for v in views if v is not None and v["state"] == "ready"}
        if len(primaries) != 1 or len(views) != sum(v is not None and v["state"] == "ready" for v in views):
            return None
        return primaries.pop()

    def complete(self) -> bool:
        views = [self.status(i) for i in self.running()]
        return all(v is not None and v["status"] == "complete" for v in views)
