"""Parse-and-type speed and memory against hier_config, whole process to whole process.

Generates backups of 1k, 10k and 100k lines, then times ``confmerge check``
(parse, type, check references), hier_config's ``get_hconfig(Platform.GENERIC,
text)`` on the same text, and the LALR reference parse of our own grammar
(``confmerge.grammar.parse_blocks``, untyped) for scale. Prints a Markdown
table with the ratios; run it with ``python bench/parse.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from generate import backup  # noqa: E402
from measure import run, table  # noqa: E402

HIER_CONFIG = "import sys\nfrom hier_config import Platform, get_hconfig\nget_hconfig(Platform.GENERIC, open(sys.argv[1]).read())\n"
LALR = "import sys\nfrom confmerge.grammar import parse_blocks\nparse_blocks(open(sys.argv[1]).read())\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = Path(tmp) / f"backup-{size}.conf"
            path.write_text(backup(size))
            ours = run([sys.executable, "-m", "confmerge", "check", str(path)], args.repeat)
            theirs = run([sys.executable, "-c", HIER_CONFIG, str(path)], args.repeat)
            lalr = run([sys.executable, "-c", LALR, str(path)], args.repeat)
            rows.append((
                f"{size:,}", f"{ours.seconds:.2f} s / {ours.peak_mb:.0f} MB",
                f"{theirs.seconds:.2f} s / {theirs.peak_mb:.0f} MB",
                f"{ours.seconds / theirs.seconds:.2f}", f"{ours.peak_mb / theirs.peak_mb:.2f}",
                f"{lalr.seconds:.2f} s / {lalr.peak_mb:.0f} MB",
            ))
            print(f"{size} lines done", file=sys.stderr)
    print(table(("lines", "confmerge check", "hier_config", "time ratio", "memory ratio", "Lark LALR + Indenter (untyped)"), rows))


if __name__ == "__main__":
    main()
