"""Nothing acknowledged is lost: a long soak of mixed faults in the fault lab, and what became of every edit.

Three ``clusterd run`` processes, each in a network namespace of its own
(root and iproute2 needed), an operator editing every server's live backup
(about four edits a second each), and a random fault at a time: kill -9,
SIGSTOP, SIGTERM, a server isolated, two servers cut apart, one direction
dropped, a three-way partition, a full state directory. At the end the
faults are healed, the cluster must converge, and the checker
(``clusterd.lab.checker``) prints the edits made, acknowledged and lost, and
any other breach of the contract. Exit status 1 if anything was lost or broken.

    python bench/faults.py [--minutes 30] [--seed 1] [--faults kill,pause,...] [--servers 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from clusterd.lab.soak import FAULTS, make_lab, soak
from clusterd.lab.world import unavailable


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--rate", type=float, default=4.0, help="edits per second per operator")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"a comma-separated choice of {', '.join(FAULTS)}")
    parser.add_argument("--keep", type=Path, help="run in this new directory and keep it (the servers' logs, backups, state directories as serverN/state.kept, and every edit made in edits.jsonl)")
    args = parser.parse_args()
    reason = unavailable()
    if reason:
        print(f"bench/faults.py: {reason}", file=sys.stderr)
        return 2
    kinds = tuple(k for k in args.faults.split(",") if k)
    if not kinds or set(kinds) - set(FAULTS):
        print(f"bench/faults.py: --faults takes {', '.join(FAULTS)}", file=sys.stderr)
        return 2
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"{time.monotonic() - started:8.1f} s  {text}", flush=True)

    with tempfile.TemporaryDirectory() as scratch, make_lab(args.keep or Path(scratch), list(range(args.servers)),
                                                          keep_state=args.keep is not None) as lab:
        verdict = soak(lab, args.minutes * 60, args.seed, kinds, args.rate, settle=120, say=say)
    print(f"\n{args.minutes:g} min of {', '.join(kinds)} on {args.servers} servers (seed {args.seed}):")
    print(verdict.summary())
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
