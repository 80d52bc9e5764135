"""Merge speed and memory against ``confmerge diff`` on the same pair, whole process to whole process.

Generates pairs of backups of 1k, 10k and 100k lines whose entries differ in
1% of sections (``generate.pair``: changed values, removed and added entries, a
new policy and rule), then times ``confmerge diff A B`` and ``confmerge merge A B
--primary A -o DIR`` (parse both, decide, lay out, check, render and write both
outputs and the report). Target: merge within twice the (CPU) time of diff.

Then the adversarial shapes of ``generate.SHAPES`` (many new rules between
existing ones, rules in reverse order, many statements added to a block whose
matching line is at its top, a three-way merge removing most of one block), each
at sizes that double: diff and merge of the same pair, and how much merge's time
grew from the size before. These are CPU times (user + system) of each process,
which other work on a shared machine disturbs far less than wall time. Target:
no faster growth than n log n (about 2.2 per doubling; a quadratic step gives 4). Prints Markdown tables; run it with
``python bench/merge.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from generate import SHAPES, pair  # noqa: E402
from measure import run, table  # noqa: E402

TARGET = 2.0
GROWTH = 2.6
"""Most a shape's merge time may grow per doubling: n log n is about 2.2, with room for a shared machine."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000, 10_000, 100_000],
                        help="lines of each backup of the 1%% pair (none: only the shapes)")
    parser.add_argument("--fraction", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shape-sizes", type=int, nargs="+", default=[4_000, 8_000, 16_000, 32_000],
                        help="entries of each adversarial shape (doubling)")
    parser.add_argument("--shapes", nargs="*", default=sorted(SHAPES), choices=sorted(SHAPES))
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
            ratio = merge.cpu_seconds / diff.cpu_seconds
            worst = max(worst, ratio)
            rows.append((
                f"{size:,}", f"{diff.seconds:.2f} s / {diff.cpu_seconds:.2f} s / {diff.peak_mb:.0f} MB",
                f"{merge.seconds:.2f} s / {merge.cpu_seconds:.2f} s / {merge.peak_mb:.0f} MB",
                f"{ratio:.2f}", f"{merge.peak_mb / diff.peak_mb:.2f}",
            ))
            print(f"{size} lines done", file=sys.stderr)
    if rows:
        print(table(("lines (each)", "confmerge diff (wall / CPU / memory)", "confmerge merge (wall / CPU / memory)",
                     "CPU time ratio", "memory ratio"), rows))
    failed = worst > TARGET
    if failed:
        print(f"\nmerge took {worst:.2f} times as long as diff; the target is at most {TARGET}", file=sys.stderr)
    if args.shapes:
        rows, steepest = shapes(args.shapes, args.shape_sizes, args.repeat)
        print()
        print(table(("shape", "entries", "lines (each)", "confmerge diff (CPU)", "confmerge merge (CPU)", "time ratio",
                     "merge growth per doubling"), rows))
        if steepest > GROWTH:
            print(f"\na shape's merge time grew {steepest:.2f} times per doubling; the target is at most {GROWTH}",
                  file=sys.stderr)
            failed = True
    if failed:
        raise SystemExit(1)


def shapes(names: list[str], sizes: list[int], repeat: int) -> tuple[list[tuple[str, ...]], float]:
    """Each shape at each size: diff and merge of its pair (three-way with its base), whole process."""
    rows: list[tuple[str, ...]] = []
    steepest = 0.0
    confmerge = [sys.executable, "-m", "confmerge"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            previous: tuple[int, float] | None = None
            for size in sizes:
                first, second, base = SHAPES[name](size)
                a, b = Path(tmp) / f"{name}-{size}-a.conf", Path(tmp) / f"{name}-{size}-b.conf"
                a.write_text(first)
                b.write_text(second)
                three_way: list[str] = []
                if base is not None:
                    ancestor = Path(tmp) / f"{name}-{size}-base.conf"
                    ancestor.write_text(base)
                    three_way = ["--base", str(ancestor)]
                diff = run([*confmerge, "diff", str(a), str(b)], repeat)
                merge = run([*confmerge, "merge", str(a), str(b), "--primary", str(a), *three_way,
                             "-o", str(Path(tmp) / f"out-{name}-{size}")], repeat)
                growth = ""
                if previous is not None and size == 2 * previous[0]:
                    factor = merge.cpu_seconds / previous[1]
                    steepest = max(steepest, factor)
                    growth = f"{factor:.2f}"
                previous = (size, merge.cpu_seconds)
                lines = max(first.count("\n"), second.count("\n"))
                rows.append((name, f"{size:,}", f"{lines:,}", f"{diff.cpu_seconds:.2f} s", f"{merge.cpu_seconds:.2f} s",
                             f"{merge.cpu_seconds / diff.cpu_seconds:.2f}", growth))
                print(f"{name} {size} done", file=sys.stderr)
    return rows, steepest


if __name__ == "__main__":
    main()
