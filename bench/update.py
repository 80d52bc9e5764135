"""Roll-out time of a software update: a 50 MB package on 15 secondaries and a primary, against the installs.

Sixteen ``clusterd run`` processes on 127.0.0.1-16 with the default timing
(heartbeat 0.5 s, 3 missed, hold 3 s), each restarted when it exits (as
systemd does). The package is 50 MB of random bytes; its install copies it
beside the server's files (fsynced), writes the version, logs its own start
and end, and stops the daemon. ``clusterd update`` rolls it out one server at
a time, the primary last. The figure is the overhead: the roll-out's time
minus the sum of the installs' own times (checking, copying to every server,
daemons restarting, coming back in sync, the primary's role coming back).

    python bench/update.py [--servers 16] [--size-mb 50] [--parallel 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clusterd.client import ask
from clusterd.config import load
from clusterd.local import Supervised
from clusterd.package import make

INSTALL = """\
here=$(dirname "$CLUSTERD_CONFIG")
start=$(date +%s.%N)
cp "$CLUSTERD_PACKAGE" "$here/bqn-release.bin.part" && sync "$here/bqn-release.bin.part"
mv "$here/bqn-release.bin.part" "$here/bqn-release.bin"
printf '%s\\n' "$CLUSTERD_PACKAGE_VERSION" > "$here/version"
end=$(date +%s.%N)
echo "$CLUSTERD_SERVER $start $end" >> "$here/../installs.log"
kill -TERM "$CLUSTERD_PID"
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=16, help="servers in all (one primary)")
    parser.add_argument("--size-mb", type=float, default=50.0)
    parser.add_argument("--parallel", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "install.sh").write_text(INSTALL)
        package = root / "bqn-9.9.bin"
        package.write_bytes(os.urandom(int(args.size_mb * 1_000_000)))
        make(package, "9.9")
        settings = (f"update-command: 'sh {root / 'install.sh'}'\nversion-command: 'cat {{dir}}/version'\n"
                    "update-timeout: 300\n")
        ids = list(range(args.servers))
        cluster = Supervised(root / "cluster", ids, extra=settings, heartbeat=0.5, missed=3, hold=3.0)
        for i in ids:
            (cluster.dir(i) / "version").write_text("1.0\n")
        try:
            cluster.start_all()
            cluster.wait("the cluster complete", lambda: cluster.complete() or None, 120)
            started = time.time()
            done = subprocess.run([sys.executable, "-m", "clusterd", "-c", str(cluster.config(0)), "update",
                                   str(package), "--parallel", str(args.parallel)],
                                  capture_output=True, text=True, timeout=3600)
            total = time.time() - started
            if done.returncode != 0:
                print(done.stdout, done.stderr, cluster.logs(), sep="\n")
                return 1
            plan = ask(load(cluster.config(0)), {"type": "update", "action": "status"})["update"]["rollout"]
        finally:
            cluster.stop_all()
        runs = [line.split() for line in (cluster.root / "installs.log").read_text().splitlines()]
        installs = {int(s): (float(a), float(b)) for s, a, b in runs}
    assert sorted(installs) == ids, "every server installed once"
    spent = sum(b - a for a, b in installs.values())
    copy = min(a for a, _ in installs.values()) - plan["started"]
    back = [plan["steps"][str(i)]["finished"] - installs[i][1] for i in ids]
    print(f"{args.servers} servers, {args.size_mb:.0f} MB package, {args.parallel} at a time")
    print(f"roll-out {total:.1f} s (the CLI's wall clock); installs' own time {spent:.1f} s in all "
          f"({spent / len(ids):.2f} s each); overhead {total - spent:.1f} s ({(total - spent) / len(ids):.2f} s "
          f"a server, {total / spent:.2f}x the installs)")
    print(f"  check and copy to {args.servers - 1} peers: {copy:.1f} s; after an install ends, until its server is "
          f"back in sync: median {statistics.median(back):.2f} s, max {max(back):.2f} s "
          f"(the primary, with its role back: {back[0]:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
