"""Merge speed and memory against ``confmerge diff`` on the same pair, whole process to whole process.

Generates pairs of backups of 1k, 10k and 100k lines whose entries differ in
1% of sections (``generate.pair``: changed values, removed and added entries, a
new policy and rule), then times ``confmerge diff A B`` and ``confmerge merge A B
--primary A -o DIR`` (parse both, decide, lay out, check, render and write both
outputs and the report). Target: merge within twice the time of diff. Prints a
Markdown table; run it with ``python bench/merge.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from generate import pair  # noqa: E402
from measure import run, table  # noqa: E402

TARGET = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--fraction", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            a, b = Path(tmp) / f"a-{size}.conf", Path(tmp) / f"b-{size}.conf"
            text_a, text_b = pair(size, args.fraction)
            a.write_text(text_a)
            b.write_text(text_b)
            confmerge = [sys.executable, "-m", "confmerge"]
            diff = run([*confmerge, "diff", str(a), str(b)], args.repeat)
            merge = run([*confmerge, "merge", str(a), str(b), "--primary", str(a), "-o", str(Path(tmp) / f"out-{size}")],
                        args.repeat)
            ratio = merge.seconds / diff.seconds
            worst = max(worst, ratio)
            rows.append((
                f"{size:,}", f"{diff.seconds:.2f} s / {diff.peak_mb:.0f} MB", f"{merge.seconds:.2f} s / {merge.peak_mb:.0f} MB",
                f"{ratio:.2f}", f"{merge.peak_mb / diff.peak_mb:.2f}",
            ))
            print(f"{size} lines done", file=sys.stderr)
    print(table(("lines (each)", "confmerge diff", "confmerge merge", "time ratio", "memory ratio"), rows))
    if worst > TARGET:
        print(f"\nmerge took {worst:.2f} times as long as diff; the target is at most {TARGET}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
