"""Distribution time: a new generation of a 10,000-line configuration applied on 1, 4 and 15 secondaries.

Each round starts a unified cluster of real ``clusterd run`` processes on
127.0.0.x (embedded SSH servers, default timing), changes one cluster-wide
value in the primary's live backup, and times until every secondary has
confirmed the new generation (as the primary's status shows it). Also prints
the bytes sent to each secondary (the cluster-wide part, over SFTP).

    python bench/sync.py [--lines 10000] [--secondaries 1 4 15] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from clusterd.local import Cluster

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import backup  # noqa: E402


def one_round(lines: int, secondaries: int, text: str) -> tuple[float, int]:
    ids = list(range(secondaries + 1))
    with tempfile.TemporaryDirectory() as root:
        backups = {i: text.replace("bqn-id 0", f"bqn-id {i}") for i in ids}
        cluster = Cluster(Path(root), ids, backups=backups, heartbeat=0.5, missed=3, hold=3.0)
        cluster.start_all()
        try:
            cluster.wait("complete", lambda: cluster.status(0) and cluster.status(0)["status"] == "complete" or None,
                         120, every=0.2)
            generation = cluster.status(0)["generation"]["number"]
            marker = "  uplink 1M\n" if "  uplink 1M\n" in text else None
            changed = text.replace(marker, "  uplink 2M\n", 1) if marker else text + "\nntp\n  server 192.0.2.9\n"
            started = time.monotonic()
            from confmerge.files import write_atomic

            write_atomic(cluster.backup(0), changed)

            def done() -> bool | None:
                status = cluster.status(0)
                if status is None or status["generation"]["number"] <= generation:
                    return None
                servers = status["servers"]
                if all(s["head"] == status["generation"]["id"] and s["sync"] == "in sync" for s in servers):
                    return status["generation"]["id"]
                return None
            head = cluster.wait("every secondary in sync", done, 120, every=0.05)
            elapsed = time.monotonic() - started
            sent = len(Path(root, "server0", "state", "sync", "history", f"{head}.conf").read_bytes())
        finally:
            cluster.stop_all()
    return elapsed, sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=10000)
    parser.add_argument("--secondaries", type=int, nargs="+", default=[1, 4, 15])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    text = backup(args.lines, seed=7)
    print(f"{args.lines}-line backup, {len(text.encode()):,} bytes")
    print(f"{'secondaries':>11}  {'median s':>8}  {'max s':>6}  {'bytes per secondary':>19}")
    for count in args.secondaries:
        runs = [one_round(args.lines, count, text) for _ in range(args.repeat)]
        times = [t for t, _ in runs]
        print(f"{count:>11}  {statistics.median(times):>8.2f}  {max(times):>6.2f}  {runs[0][1]:>19,}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
