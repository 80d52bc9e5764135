"""``confmerge diff`` against hier_config, GNU diff and difflib, whole process to whole process.

Generates two backups of about 100,000 lines whose entries differ in 1% of
their sections (``generate.pair``), then times, best of N runs with the peak
resident memory of each: ``confmerge diff A B``; a hier_config script that
parses both (``get_hconfig(Platform.GENERIC, text)``) and prints its
remediation (``running.config_to_get_to(generated)``); GNU ``diff A B``; and a
script printing difflib's ``unified_diff``. Target: confmerge diff in no more
time than hier_config.

Then, in this process, what deepdiff would cost where the engine could use it
(``docs/diff.md``, "Why not deepdiff everywhere"): the engine's ``diff()`` on
the parsed pair; DeepDiff over the same typed trees as nested dicts; and the
field differences of the changed statements, DeepDiff against the engine's
comprehension; plus the time ``import deepdiff`` adds to a process.

Run ``python bench/diff.py``; it prints Markdown tables.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, TypeVar

sys.path.insert(0, str(Path(__file__).parent))

from measure import run, table  # noqa: E402

T = TypeVar("T")

HIER_CONFIG = """\
import sys
from hier_config import Platform, get_hconfig
running = get_hconfig(Platform.GENERIC, open(sys.argv[1]).read())
generated = get_hconfig(Platform.GENERIC, open(sys.argv[2]).read())
remediation = running.config_to_get_to(generated)
sys.stdout.write("".join(line.cisco_style_text() + "\\n" for line in remediation.all_children_sorted()))
"""
DIFFLIB = """\
import difflib, sys
a, b = (open(path).readlines() for path in sys.argv[1:3])
sys.stdout.writelines(difflib.unified_diff(a, b, sys.argv[1], sys.argv[2]))
"""


def output_lines(command: list[str]) -> int:
    return subprocess.run(command, capture_output=True, text=True).stdout.count("\n")


def processes(a: Path, b: Path, repeat: int) -> str:
    python = sys.executable
    tools = [
        ("confmerge diff", "parse and type both, compare by identity in normal form",
         [python, "-m", "confmerge", "diff", str(a), str(b)]),
        ("hier_config 3", "parse both untyped, remediation (`config_to_get_to`)", [python, "-c", HIER_CONFIG, str(a), str(b)]),
        ("GNU diff", "lines, in order", ["diff", str(a), str(b)]),
        ("difflib", "`unified_diff` of the lines", [python, "-c", DIFFLIB, str(a), str(b)]),
    ]
    measured = [(name, what, run(command, repeat), output_lines(command)) for name, what, command in tools]
    reference = measured[1][2]
    rows = [
        (name, what, f"{m.seconds:.2f} s", f"{m.peak_mb:.0f} MB", f"{m.seconds / reference.seconds:.2f}", f"{lines:,}")
        for name, what, m, lines in measured
    ]
    return table(("tool", "what it does", "time", "peak memory", "time vs hier_config", "output lines"), rows)


def best(function: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def timed(function: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def deepdiff_costs(a: Path, b: Path, repeat: int) -> str:
    _, imported = timed(lambda: __import__("deepdiff"))
    from deepdiff import DeepDiff

    from confmerge.diff import diff, field_changes
    from confmerge.parser import parse
    from confmerge.reference import compare, view

    old, new = parse(a.read_text(), str(a)), parse(b.read_text(), str(b))
    engine = best(lambda: diff(old, new), repeat)
    changes = diff(old, new).changes
    (old_view, new_view), views = timed(lambda: (view(old.root), view(new.root)))
    found, whole = timed(lambda: compare(old_view, new_view))
    theirs = {op: sum(found_op == op for found_op, _ in found) for op in ("added", "removed", "changed")}
    ours = {op: sum(c.op.value == op for c in changes) for op in theirs}
    changed = [(c.old, c.new) for c in changes if c.op.value == "changed"]
    comprehension = best(lambda: [field_changes(x, y) for _ in range(1000) for x, y in changed], repeat) / 1000
    per_call = best(lambda: [DeepDiff(x.fields, y.fields) for _ in range(10) for x, y in changed], repeat) / 10
    rows = [
        ("compare the two typed trees", "`confmerge.diff.diff`", f"{engine * 1000:.0f} ms",
         "DeepDiff of the trees as nested dicts by identity", f"{whole:.1f} s (+ {views:.2f} s to build the dicts)"),
        (f"field differences of the {len(changed)} changed statements", "`field_changes` (a comprehension)",
         f"{comprehension / len(changed) * 1e6:.1f} µs each", "`DeepDiff(old.fields, new.fields)`",
         f"{per_call / len(changed) * 1e6:.0f} µs each"),
        ("load the library", "—", "—", "`import deepdiff` (pulls numpy and pydantic)", f"{imported * 1000:.0f} ms"),
    ]
    agreement = ", ".join(f"{ours[op]} / {theirs[op]} {op}" for op in theirs)
    header = (f"job, on the {len(old.root.children):,}-section pair", "engine", "time", "with deepdiff", "time")
    return f"Entries found, engine / DeepDiff: {agreement}.\n\n" + table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--fraction", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-deepdiff", action="store_true", help="skip the in-process deepdiff measurements (slow)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # Generated in a child: a child's peak memory includes its parent's at fork, so keep this process small.
        subprocess.run([sys.executable, str(Path(__file__).parent / "generate.py"), str(args.lines),
                        "-o", f"{tmp}/bqn", "--pair", str(args.fraction)], check=True)
        a, b = Path(f"{tmp}/bqn-a.conf"), Path(f"{tmp}/bqn-b.conf")
        counts = [path.read_text().count("\n") for path in (a, b)]
        print(f"{counts[0]:,} and {counts[1]:,} lines, {args.fraction:.0%} of sections touched\n")
        print(processes(a, b, args.repeat))
        if not args.no_deepdiff:
            print()
            print(deepdiff_costs(a, b, args.repeat))


if __name__ == "__main__":
    main()
