"""``confmerge merge``: unify a cluster's backups into one new backup per server.

The guide's "Unify configuration across the cluster" step as one command:
parse every input (all errors at once), merge them with :func:`confmerge.merge.merge`,
then write every output and ``merge-report.json`` to temporary names and
rename them only when all were written. Any problem before that point writes
nothing; an input is never overwritten.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

from ..data import dump, report_data
from ..diagnostics import ConfError, Diagnostic
from ..files import read_text, write_all
from ..merge import merge
from ..present import merge_conflicts, merge_dry_run, merge_summary
from ..render import render
from ..resolve import Choice, ConflictKey, resolutions_from_data, unmatched
from . import EXIT_DIFFERENT, EXIT_OK, EXIT_TROUBLE, command, load_checked, load_rules, rules_option

REPORT = "merge-report.json"
_GENERATION = re.compile(r"^(?P<stem>.*-v)(?P<number>\d+)$")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE", help="the servers' backups, two or more")
    parser.add_argument("-o", "--output", type=Path, default=Path("."), metavar="DIR",
                        help="where to write the outputs and merge-report.json (default: the current directory)")
    parser.add_argument("--primary", type=Path, metavar="FILE",
                        help="the input whose values win conflicts (default: the lowest bqn-id)")
    parser.add_argument("--base", type=Path, metavar="FILE",
                        help="the last unified configuration or a common ancestor: merge three-way")
    parser.add_argument("--resolve", type=Path, metavar="FILE",
                        help="resolve conflicts as this resolutions file says (JSON, as the web GUI saves it)")
    rules_option(parser)
    parser.add_argument("--strict", action="store_true", help="on any conflict, write nothing and exit 1")
    parser.add_argument("--dry-run", action="store_true", help="write nothing; print what each output would gain or lose")


def next_generation(path: Path) -> str:
    """The output's name: a trailing ``-vN`` of the stem bumped (``bqn0-v1.conf`` → ``bqn0-v2.conf``), else ``-v2`` added."""
    match = _GENERATION.match(path.stem)
    stem = f"{match['stem']}{int(match['number']) + 1}" if match else f"{path.stem}-v2"
    return stem + path.suffix


@command("merge", "unify the cluster-wide configuration of a cluster's backups, one new backup per server", _arguments)
def run(args: argparse.Namespace) -> int:
    if len(args.files) < 2:
        print("confmerge merge: error: give two backups or more", file=sys.stderr)
        return EXIT_TROUBLE
    rules = load_rules(args)
    loaded = load_checked([*args.files, *([args.base] if args.base is not None else [])], rules)
    inputs, base = loaded[:len(args.files)], (loaded[-1] if args.base is not None else None)
    primary = _primary_index(args.files, args.primary)
    outputs = _output_paths(args.files, args.base, args.output)
    names = [str(path) for path in args.files]
    resolutions = read_resolutions(args.resolve, names, base is not None) if args.resolve is not None else {}
    result = merge(inputs, primary, base, resolutions)
    if stale := unmatched(resolutions, result.conflicts):
        raise _refuse(args.resolve, "resolves no conflict of this merge: " + ", ".join(
            f"{section} / {statement}" if statement else section for section, statement in stale))
    if args.strict and result.conflicts:
        sys.stderr.write(merge_conflicts(result, names))
        print(f"confmerge merge: {len(result.conflicts)} conflict(s) under --strict; nothing written", file=sys.stderr)
        return EXIT_DIFFERENT
    if args.dry_run:
        sys.stdout.write(merge_dry_run(result, names, [str(path) for path in outputs]))
        return EXIT_OK
    report_path = args.output / REPORT
    report = report_data(result, names, [str(path) for path in outputs], str(args.base) if args.base else None)
    files = {path: render(config) for path, config in zip(outputs, result.outputs)}
    files[report_path] = _json(report)
    _check_directory(args.output)
    write_all(files)
    sys.stdout.write(merge_summary(result, names, [str(path) for path in outputs], str(report_path)))
    return EXIT_OK


def read_resolutions(path: Path, names: list[str], has_base: bool) -> dict[ConflictKey, Choice]:
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfError([Diagnostic("error", error.lineno, error.colno, f"not JSON: {error.msg}", str(path))]) from None
    except RecursionError:
        raise _refuse(path, "not a resolutions file: nested too deep") from None
    except ValueError:  # a number longer than the interpreter converts; a resolutions file holds none
        raise _refuse(path, "not a resolutions file: a number too long") from None
    return resolutions_from_data(data, names, has_base, str(path))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def _refuse(path: Path, message: str) -> ConfError:
    return ConfError([Diagnostic("error", 0, 0, message, str(path))])


def _primary_index(files: list[Path], primary: Path | None) -> int | None:
    if primary is None:
        return None
    for index, path in enumerate(files):
        if _same_file(path, primary):
            return index
    raise _refuse(primary, "--primary must name one of the inputs")


def _output_paths(files: list[Path], base: Path | None, directory: Path) -> list[Path]:
    """One output per input in ``directory``; refuse two outputs with one name and any output over an input."""
    for k, path in enumerate(files):
        for other in files[k + 1:]:
            if _same_file(path, other):
                raise _refuse(other, f"given twice (also as {path})")
    outputs = [directory / next_generation(path) for path in files]
    protected = [*files, *([base] if base is not None else [])]
    seen: dict[Path, Path] = {}
    for source, output in zip(files, outputs):
        key = output.resolve()
        if key in seen:
            raise _refuse(source, f"its output {output} would also be the output of {seen[key]}; rename one of them")
        seen[key] = source
        for path in protected:
            if _same_file(output, path):
                raise _refuse(source, f"its output {output} would overwrite the input {path}; choose another -o DIR")
    report = directory / REPORT
    for path in protected:
        if _same_file(report, path):
            raise _refuse(path, f"the report {report} would overwrite this input; choose another -o DIR")
    return outputs


def _check_directory(directory: Path) -> None:
    """``-o`` names a directory: one that exists, or one that can be made where nothing else is in the way."""
    for path in (directory, *directory.parents):
        if path.exists():
            if not path.is_dir():
                raise _refuse(path, "not a directory (-o names the directory for the outputs); nothing written"
                              if path == directory else f"not a directory, so {directory} cannot be made; nothing written")
            return


def _json(data: dict[str, Any]) -> str:
    stream = io.StringIO()
    dump(data, "json", stream)
    return stream.getvalue()
