"""Failover time: kill -9 the primary, time until the next lowest id's first heartbeat as primary.

Three ``clusterd run`` processes on 127.0.0.1-3 with the default timing
(heartbeat 0.5 s, 3 missed, hold 3 s). Each round kills the primary (server
0), reads from the new primary's log when it took the role, restarts server 0
and waits until it is primary again. Prints the median and maximum.

A killed process's connections are closed by its kernel, which peers see at
once. ``--freeze`` stops the primary with SIGSTOP instead: its connections stay
open and only the missed heartbeats tell, as with a hung server or a cut cable.

    python bench/failover.py [--rounds 20] [--freeze]
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path


from clusterd.local import Cluster  # noqa: E402

CLAIM = re.compile(r"^(\S+ \S+) clusterd\[1\] INFO: server 1 is primary in epoch (\d+)$", re.M)


def claimed_at(log: str, epoch_after: int) -> tuple[float, int] | None:
    for stamp, epoch in CLAIM.findall(log):
        if int(epoch) > epoch_after:
            return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp(), int(epoch)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--freeze", action="store_true", help="SIGSTOP the primary instead of kill -9")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        cluster = Cluster(Path(root), [0, 1, 2], heartbeat=0.5, missed=3, hold=3.0)
        cluster.start_all()
        times: list[float] = []
        try:
            cluster.wait("server 0 primary", lambda: cluster.agreed_primary() == 0 or None, 30)
            for round_ in range(args.rounds):
                epoch = cluster.status(1)["epoch"]
                killed = time.time()
                if args.freeze:
                    cluster.processes[0].send_signal(signal.SIGSTOP)
                else:
                    cluster.kill(0)
                claim = cluster.wait("server 1 primary", lambda: claimed_at(cluster.log(1), epoch), 15)
                times.append(claim[0] - killed)
                if args.freeze:
                    cluster.kill(0)
                cluster.start(0)
                cluster.wait("server 0 primary again", lambda: cluster.agreed_primary() == 0 or None, 30)
                print(f"round {round_ + 1:2}: {times[-1] * 1000:7.1f} ms", flush=True)
        finally:
            cluster.stop_all()
    how = "SIGSTOP" if args.freeze else "kill -9"
    print(f"\nfailover over {len(times)} rounds of {how} (defaults: heartbeat 0.5 s, 3 missed): "
          f"median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms, "
          f"min {min(times) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
