"""clusterd at the guide's full size: 16, 64 and 256 real ``clusterd run`` processes on 127.0.0.1-127.0.1.0.

Per size, on this one machine (every daemon shares its cores): the time from
the first start to *complete* (as the primary's status says; the daemons
start 32 at a time, each 32 once the ones before listen), idle CPU and resident
memory per daemon, failover when the primary is killed (kill -9) and when
it hangs (SIGSTOP; measured once the witness gives the primary its base fuse
again, as a primary that hangs after running on time: right after a
failover's storm its fuse is longer by design), and the time for a new generation of a 10,000-line backup
(``bench/generate.py``) to be applied on every secondary. Memory is the
resident set (RSS, shared libraries counted whole in every process) and the
proportional set (PSS, shared pages divided among the processes that map
them: what each daemon adds). The load average is printed with each
measurement: the machine is shared.

    python bench/scale.py [--sizes 16 64 256] [--lines 10000] [--idle 10] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from clusterd.local import Cluster

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import backup  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
WAVE = 32
"""Daemons started at a time: each wave starts once the one before listens. All 256 at once on 2 cores are 3
minutes of CPU for imports and parsing, in which no timer of any daemon means anything."""


def cpu_seconds(pid: int) -> float:
    """CPU time of a process so far, its threads' (the scheduler's nanoseconds: user + system from ``stat`` count
    in 10-ms ticks, which over a 10-s window made a secondary's 3.5 ms/s read as 3 or 4)."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue  # a thread that ended meanwhile
    except OSError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    return total / 1e9


def memory_mb(pid: int) -> tuple[float, float]:
    """Resident and proportional set size (shared pages divided among the processes that map them), in MB."""
    sizes = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in ("Rss:", "Pss:"):
            sizes[parts[0]] = int(parts[1]) / 1024
    return sizes.get("Rss:", 0.0), sizes.get("Pss:", 0.0)


def load() -> str:
    return "load %.1f" % os.getloadavg()[0]


def claimed_at(log: str, server: int, after: int) -> float | None:
    """When ``server`` claimed the primary role in an epoch above ``after``, by its log (wall clock)."""
    pattern = re.compile(rf"^(\S+ \S+) clusterd\[{server}\] INFO: server {server} is primary in epoch (\d+)$", re.M)
    for stamp, epoch in pattern.findall(log):
        if int(epoch) > after:
            return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def everyone_holds(cluster: Cluster, primary: int, after: int) -> str | None:
    """The primary's head once it is newer than generation ``after`` and every server holds it in sync."""
    status = cluster.status(primary)
    if status is None or status["generation"]["number"] <= after:
        return None
    head = status["generation"]["id"]
    ok = all(s["up"] and s["head"] == head and s["sync"] == "in sync" for s in status["servers"])
    return head if ok else None


def calm(cluster: Cluster, primary: int, witness: int) -> float:
    """Wait until ``witness`` gives the primary its base fuse again (lateness fades after a failover's storm)."""
    started = time.monotonic()

    def base() -> bool | None:
        status = cluster.status(witness) or {}
        entry = next((s for s in status.get("servers", []) if s["id"] == primary), None)
        fuse = entry.get("silent_after", 1.5) if entry is not None else None  # 1.5: a daemon without fuses
        return fuse is not None and fuse <= 1.5 + 0.1 or None

    cluster.wait(f"server {witness}'s fuse for server {primary} back to its base", base, 180, every=1.0)
    return time.monotonic() - started


def failover(cluster: Cluster, old: int, new: int, how: str) -> float:
    epoch = cluster.status(new)["epoch"]
    started = time.time()
    if how == "kill":
        cluster.kill(old)
    else:
        cluster.pause(old)
    claimed = cluster.wait(f"server {new} primary", lambda: claimed_at(cluster.log(new), new, epoch), 60, every=0.1)
    return claimed - started


INOTIFY = Path("/proc/sys/fs/inotify/max_user_instances")


def enough_watches(count: int) -> int | None:
    """Each daemon watches its backup with one inotify instance; Linux allows 128 per user by default. As root,
    raise the limit for the run (one server per machine never meets it) and return the old one to put back."""
    try:
        old = int(INOTIFY.read_text())
        if old < count + 64 and os.geteuid() == 0:
            INOTIFY.write_text(f"{count + 64}\n")
            return old
        if old < count + 64:
            print(f"  {count}: only {old} inotify instances per user: the rest poll their backup", flush=True)
    except OSError:
        pass
    return None


def one_size(count: int, text: str, idle: float, keep: Path | None = None) -> dict[str, str]:
    ids = list(range(count))
    row: dict[str, str] = {"servers": str(count)}
    with tempfile.TemporaryDirectory() as scratch:
        root = str(keep / f"{count}-servers") if keep is not None else scratch
        Path(root).mkdir(parents=True, exist_ok=keep is None)
        backups = {i: text.replace("bqn-id 0", f"bqn-id {i}") for i in ids}
        cluster = Cluster(Path(root), ids, backups=backups, heartbeat=0.5, missed=3, hold=3.0)
        try:
            started = time.monotonic()
            for wave in range(0, count, WAVE):  # on one machine; a real cluster's servers boot on their own CPUs
                for i in ids[wave:wave + WAVE]:
                    cluster.start(i)
                cluster.wait("a wave listening", lambda: all((cluster.dir(i) / "state" / "clusterd.sock").exists()
                                                             for i in ids[wave:wave + WAVE]) or None, 120, every=0.2)
            cluster.wait("complete", lambda: (cluster.status(0) or {}).get("status") == "complete" or None,
                         600, every=0.5)
            row["complete"] = f"{time.monotonic() - started:.1f} s ({load()})"
            print(f"  {count}: complete after {row['complete']}", flush=True)

            time.sleep(5)  # settle: the start's work is over
            pids = {i: p.pid for i, p in cluster.processes.items()}
            before, at = {i: cpu_seconds(pid) for i, pid in pids.items()}, time.monotonic()
            time.sleep(idle)
            used = {i: cpu_seconds(pid) - before[i] for i, pid in pids.items()}
            span = time.monotonic() - at
            per = sorted(v / span * 1000 for v in used.values())
            row["idle cluster"] = f"{sum(used.values()) / span:.2f} CPU-s/s ({load()})"
            row["idle per daemon"] = (f"median {statistics.median(per):.1f} ms/s, primary {used[0] / span * 1000:.1f}, "
                                      f"max {per[-1]:.1f}")
            memory = [memory_mb(pid) for pid in pids.values()]
            rss, pss = sorted(m[0] for m in memory), sorted(m[1] for m in memory)
            row["RSS per daemon"] = f"median {statistics.median(rss):.1f} MB, max {rss[-1]:.0f} MB"
            row["PSS per daemon"] = f"median {statistics.median(pss):.1f} MB, max {pss[-1]:.0f} MB"
            print(f"  {count}: idle {row['idle cluster']}, {row['idle per daemon']}; RSS {row['RSS per daemon']}, "
                  f"PSS {row['PSS per daemon']}", flush=True)

            generation = cluster.status(0)["generation"]["number"]
            changed = text.replace("  uplink 1M\n", "  uplink 2M\n", 1)
            assert changed != text
            from confmerge import write_atomic

            started = time.monotonic()
            write_atomic(cluster.backup(0), changed)
            cluster.wait("every server holding the new generation", lambda: everyone_holds(cluster, 0, generation),
                         300, every=0.1)
            row["generation everywhere"] = f"{time.monotonic() - started:.2f} s ({load()})"
            print(f"  {count}: generation everywhere in {row['generation everywhere']}", flush=True)

            row["kill -9 failover"] = f"{failover(cluster, 0, 1, 'kill') * 1000:.0f} ms ({load()})"
            print(f"  {count}: kill -9 of the primary: {row['kill -9 failover']}", flush=True)
            cluster.wait("server 1 agreed", lambda: (cluster.status(2) or {}).get("primary") == 1 or None, 60)
            waited = calm(cluster, 1, 2)
            print(f"  {count}: server 2's fuse for server 1 back to its base after {waited:.0f} s", flush=True)
            row["SIGSTOP failover"] = f"{failover(cluster, 1, 2, 'stop') * 1000:.0f} ms ({load()})"
            print(f"  {count}: SIGSTOP of the primary: {row['SIGSTOP failover']}", flush=True)
        finally:
            cluster.stop_all()
    return row


def compiled() -> None:
    """Byte-compile clusterd and confmerge, as installing a package does: with PYTHONDONTWRITEBYTECODE set (this
    machine sets it) an editable checkout is compiled again by every daemon that starts, 0.3 s of CPU each."""
    import compileall

    import clusterd
    import confmerge

    for package in (clusterd, confmerge):
        compileall.compile_dir(str(Path(package.__file__).parent), quiet=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--lines", type=int, default=10000)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measured")
    parser.add_argument("--keep", type=Path, help="run in this new directory and keep it (every server's log and state)")
    args = parser.parse_args()
    compiled()
    text = backup(args.lines, seed=7)
    print(f"{args.lines}-line backup, {len(text.encode()):,} bytes; {os.cpu_count()} cores, {load()}", flush=True)
    old = enough_watches(max(args.sizes))
    try:
        rows = [one_size(count, text, args.idle, args.keep) for count in args.sizes]
    finally:
        if old is not None:
            INOTIFY.write_text(f"{old}\n")
    print()
    for key in rows[0]:
        print(f"{key:>22}: " + " | ".join(r.get(key, "-") for r in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
