"""Real ``clusterd run`` processes, each in a network namespace of its own, and the faults done to them.

Every server lives in namespace ``<tag>-s<id>`` with one interface, ``eth0``,
addressed 10.77.0.<id+1>/24; its peer end sits on bridge ``br0`` in a
namespace of the lab's own (``<tag>-br``), so nothing is added to the root
namespace and the addresses exist only inside namespaces the lab made. The
daemons run under ``ip netns exec``; their local sockets are files, so status
is read from outside. Faults use iproute2 alone: a bridge port down isolates a
server, a blackhole route drops one direction between two servers, a small
tmpfs mounted as a state directory fills up. Everything made is removed by
:meth:`Lab.close` (a context manager exit), also after a failure or Ctrl-C,
and labs left behind by a dead process are swept when the next one starts.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..client import Trouble, ask
from ..config import ClusterConfig, load
from ..local import FIXTURES, Cluster

PREFIX = "cflab"
"""Every namespace and tmpfs a lab makes is named ``cflab<pid>-<n>...``: a sweep knows its own and their owner."""

NETWORK = "10.77.0"
_labs = itertools.count()


class Unavailable(Exception):
    """Why the lab cannot run here (not root, no ``ip``): a reason to skip, said plainly."""


@functools.cache
def unavailable() -> str | None:
    """None when the lab can run here, else the plain reason it cannot (a namespace is made and removed to know)."""
    if os.geteuid() != 0:
        return "the fault lab needs root (network namespaces, tmpfs mounts)"
    if shutil.which("ip") is None:
        return "the fault lab needs iproute2's ip command"
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "the fault lab needs mount and umount"
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=15)
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=15)
    if made.returncode != 0:
        return f"the fault lab cannot make a network namespace here: {made.stderr.strip()}"
    return None


def ip(*args: str, check: bool = True) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_namespace(name: str) -> None:
    for pid in ip("netns", "pids", name, check=False).split():
        try:
            os.kill(int(pid), signal.SIGCONT)
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    deadline = time.monotonic() + 10
    while ip("netns", "pids", name, check=False).split() and time.monotonic() < deadline:
        time.sleep(0.05)
    ip("netns", "del", name, check=False)


def _copy_files(source: Path, target: Path) -> None:
    """Regular files and directories only (not the daemon's socket); a failed copy is said, never raised."""
    def special(directory: str, names: list[str]) -> list[str]:
        return [n for n in names if not (os.path.isfile(os.path.join(directory, n))
                                         or os.path.isdir(os.path.join(directory, n)))]
    try:
        shutil.copytree(source, target, ignore=special, dirs_exist_ok=True)
    except (OSError, shutil.Error) as error:
        print(f"fault lab: could not keep {source}: {error}", file=sys.stderr)


def _unmount(path: str) -> None:
    if subprocess.run(["umount", path], capture_output=True, timeout=15).returncode != 0:
        subprocess.run(["umount", "-l", path], capture_output=True, timeout=15)


def sweep() -> list[str]:
    """Remove the namespaces and mounts of labs whose process is gone (killed before it could clean up)."""
    removed = []
    owner = re.compile(rf"^{PREFIX}(\d+)-")
    for line in ip("netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        match = owner.match(name)
        if match and not _alive(int(match.group(1))):
            _remove_namespace(name)
            removed.append(name)
    for line in Path("/proc/mounts").read_text().splitlines():
        source, target = line.split()[:2]
        match = owner.match(source)
        if match and not _alive(int(match.group(1))):
            _unmount(target.replace("\\040", " "))
            removed.append(target)
    return removed


class Lab(Cluster):
    """A :class:`clusterd.local.Cluster` whose servers each run in a network namespace, with faults to inflict.

    ``small_disk``: servers whose state directory is a tmpfs of ``disk_size``
    (``fill_disk`` fills it). Options are :class:`Cluster`'s (timing, backups,
    apply command); ``detection`` is the silence after which the servers call
    a peer down.
    """

    def __init__(self, root: Path, ids: list[int], small_disk: set[int] | frozenset[int] = frozenset(),
                 disk_size: str = "2m", keep_state: bool = False, **options: Any) -> None:
        reason = unavailable()
        if reason:
            raise Unavailable(reason)
        sweep()
        self.tag = f"{PREFIX}{os.getpid()}-{next(_labs)}"
        self.namespaces: list[str] = []
        self.mounts: list[Path] = []
        self.paused: set[int] = set()
        self.isolated: set[int] = set()
        self.cuts: set[tuple[int, int]] = set()
        self.full: set[int] = set()
        self._configs: dict[int, ClusterConfig] = {}
        self._closed = False
        self.keep_state = keep_state
        """Copy each small disk's state directory to ``state.kept`` before it is unmounted (for a post-mortem)."""
        self._lock = threading.RLock()
        options.setdefault("backups", {i: unified_backup(i) for i in ids})
        options.setdefault("port_base", 63500)  # any free base will do: the namespaces are the lab's
        self.detection: float = options.get("heartbeat", 0.2) * options.get("missed", 3)
        try:
            super().__init__(root, ids, **options)
            self._network()
            for i in sorted(small_disk):
                self._small_disk(i, disk_size)
        except BaseException:
            self.close()
            raise

    # -- the world ------------------------------------------------------

    @staticmethod
    def address(i: int) -> str:
        return f"{NETWORK}.{i + 1}"

    def namespace(self, i: int) -> str:
        return f"{self.tag}-s{i}"

    @property
    def bridge(self) -> str:
        return f"{self.tag}-br"

    def _network(self) -> None:
        ip("netns", "add", self.bridge)
        self.namespaces.append(self.bridge)
        ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
        ip("-n", self.bridge, "link", "set", "br0", "up")
        for i in self.ids:
            ns = self.namespace(i)
            ip("netns", "add", ns)
            self.namespaces.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", self.bridge, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("-n", self.bridge, "link", "set", f"p{i}", "master", "br0", "up")
            ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")

    def _small_disk(self, i: int, size: str) -> None:
        state = self.dir(i) / "state"
        kept = {p.name: (p.read_bytes(), p.stat().st_mode) for p in state.iterdir() if p.is_file()}
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", f"{self.tag}-disk{i}", str(state)],
                       check=True, capture_output=True, timeout=15)
        self.mounts.append(state)
        for name, (data, mode) in kept.items():
            (state / name).write_bytes(data)
            os.chmod(state / name, mode)

    def command(self, i: int) -> list[str]:
        return ["ip", "netns", "exec", self.namespace(i), *super().command(i)]

    def close(self) -> None:
        """Stop every process, remove every namespace and mount; safe to call twice, and Ctrl-C waits for it."""
        if self._closed:
            return
        self._closed = True
        main = threading.current_thread() is threading.main_thread()
        if main:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            for process in list(getattr(self, "processes", {}).values()):
                if process.poll() is None:
                    os.kill(process.pid, signal.SIGCONT)
                    process.kill()
            for process in list(getattr(self, "processes", {}).values()):
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            if hasattr(self, "processes"):
                self.processes.clear()
            for name in reversed(self.namespaces):
                _remove_namespace(name)
            self.namespaces.clear()
            for path in reversed(self.mounts):
                if self.keep_state:
                    _copy_files(path, path.with_name("state.kept"))
                _unmount(str(path))
            self.mounts.clear()
        finally:
            if main:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})

    stop_all = close

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- looking ------------------------------------------------------------

    def status(self, i: int, timeout: float = 2.0) -> dict[str, Any] | None:
        """Server i's ``clusterd status --json``; None while it is stopped, paused or does not answer."""
        if i not in self.processes or i in self.paused:
            return None
        if i not in self._configs:
            self._configs[i] = load(self.config(i))
        try:
            return ask(self._configs[i], {"type": "status"}, timeout=timeout)["status"]
        except (Trouble, KeyError, TypeError):
            return None

    def running(self) -> list[int]:
        return [i for i in self.ids if i in self.processes and i not in self.paused]

    # -- faults -------------------------------------------------------------

    def kill(self, i: int) -> None:
        """kill -9 (a paused process dies too)."""
        with self._lock:
            self.paused.discard(i)
            super().kill(i)

    def terminate(self, i: int) -> None:
        """SIGTERM, as systemd stops the unit; SIGKILL after 10 s."""
        with self._lock:
            process = self.processes.pop(i)
            if i in self.paused:
                os.kill(process.pid, signal.SIGCONT)
                self.paused.discard(i)
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def pause(self, i: int) -> None:
        with self._lock:
            os.kill(self.processes[i].pid, signal.SIGSTOP)
            self.paused.add(i)

    def resume(self, i: int) -> None:
        with self._lock:
            if i in self.paused and i in self.processes:
                os.kill(self.processes[i].pid, signal.SIGCONT)
            self.paused.discard(i)

    def isolate(self, i: int) -> None:
        """Cut server i off from everyone: its bridge port goes down."""
        ip("-n", self.bridge, "link", "set", f"p{i}", "down")
        self.isolated.add(i)

    def rejoin(self, i: int) -> None:
        ip("-n", self.bridge, "link", "set", f"p{i}", "up")
        self.isolated.discard(i)

    def drop(self, source: int, target: int) -> None:
        """One way: packets from ``source`` to ``target`` vanish (a blackhole route in source's namespace)."""
        if (source, target) not in self.cuts:
            ip("-n", self.namespace(source), "route", "add", "blackhole", f"{self.address(target)}/32")
            self.cuts.add((source, target))

    def undrop(self, source: int, target: int) -> None:
        if (source, target) in self.cuts:
            ip("-n", self.namespace(source), "route", "del", "blackhole", f"{self.address(target)}/32", check=False)
            self.cuts.discard((source, target))

    def cut(self, a: int, b: int) -> None:
        """A partition between two servers, both ways; each still reaches the others."""
        self.drop(a, b)
        self.drop(b, a)

    def partition(self, *sides: set[int]) -> None:
        """Servers reach only those on their own side."""
        for side in sides:
            for other in sides:
                if other is not side:
                    for a in side:
                        for b in other:
                            self.drop(a, b)

    def fill_disk(self, i: int) -> None:
        """Fill server i's state directory (a small tmpfs) to the last byte."""
        state = self.dir(i) / "state"
        if state not in self.mounts:
            raise ValueError(f"server {i} has no small disk; make the lab with small_disk={{{i}}}")
        fd = os.open(state / "lab-filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 65536, 4096, 1):
                try:
                    while os.write(fd, b"\0" * size):
                        pass
                except OSError:
                    pass
        finally:
            os.close(fd)
        self.full.add(i)

    def free_disk(self, i: int) -> None:
        (self.dir(i) / "state" / "lab-filler").unlink(missing_ok=True)
        self.full.discard(i)

    def heal(self) -> None:
        """Every link up, every route back, every pause resumed, every disk freed (stopped servers stay stopped)."""
        for i in list(self.isolated):
            self.rejoin(i)
        for source, target in list(self.cuts):
            self.undrop(source, target)
        for i in list(self.paused):
            self.resume(i)
        for i in list(self.full):
            self.free_disk(i)


def unified_backup(i: int) -> str:
    """Server i's backup, already unified (the cluster-wide part of ``expected/bqn1-v2.conf``), its own identity."""
    text = (FIXTURES / "expected" / "bqn1-v2.conf").read_text()
    text = text.replace("hostname bqn1", f"hostname bqn{i}").replace("bqn-id 1", f"bqn-id {i}")
    return text.replace("# hostname: bqn1", f"# hostname: bqn{i}").replace("# bqn-id: 1", f"# bqn-id: {i}")
