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
import re
import sys
from pathlib import Path
from typing import Any, TextIO

from ..data import dump
from ..diagnostics import ConfError, Diagnostic
from ..files import write_all
from ..merge import Action, Edit, MergeResult, merge
from ..render import render
from . import EXIT_DIFFERENT, EXIT_OK, EXIT_TROUBLE, command, load_checked, load_rules, rules_option

REPORT = "merge-report.json"
SHOWN_CONFLICTS = 10
_GENERATION = re.compile(r"^(?P<stem>.*-v)(?P<number>\d+)$")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE", help="the servers' backups, two or more")
    parser.add_argument("-o", "--output", type=Path, default=Path("."), metavar="DIR",
                        help="where to write the outputs and merge-report.json (default: the current directory)")
    parser.add_argument("--primary", type=Path, metavar="FILE",
                        help="the input whose values win conflicts (default: the lowest bqn-id)")
    parser.add_argument("--base", type=Path, metavar="FILE",
                        help="the last unified configuration or a common ancestor: merge three-way")
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
    result = merge(inputs, primary, base)
    names = [str(path) for path in args.files]
    if args.strict and result.conflicts:
        _print_conflicts(result, names, sys.stderr)
        print(f"confmerge merge: {len(result.conflicts)} conflict(s) under --strict; nothing written", file=sys.stderr)
        return EXIT_DIFFERENT
    if args.dry_run:
        _print_dry_run(result, names, outputs)
        return EXIT_OK
    report_path = args.output / REPORT
    report = report_data(result, names, [str(path) for path in outputs], str(args.base) if args.base else None)
    files = {path: render(config) for path, config in zip(outputs, result.outputs)}
    files[report_path] = _json(report)
    write_all(files)
    _print_summary(result, names, outputs, report_path)
    return EXIT_OK


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def _refuse(path: Path, message: str) -> ConfError:
    return ConfError([Diagnostic("error", 1, 1, message, str(path))])


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


# -- report and terminal output


def _edit_data(edit: Edit) -> dict[str, Any]:
    data: dict[str, Any] = {"section": edit.section, "statement": edit.statement, "line": edit.line}
    if edit.before is not None:
        data["before"] = edit.before
    data["reason"] = edit.reason
    return data


def report_data(result: MergeResult, names: list[str], outputs: list[str], base: str | None) -> dict[str, Any]:
    """``merge-report.json``: see ``docs/merge.md``, "Report"."""
    per_output = {action.value: {output: [_edit_data(e) for e in edits if e.action is action]
                                 for output, edits in zip(outputs, result.edits)} for action in Action}
    return {
        "primary": names[result.primary],
        "base": base,
        "outputs": dict(zip(names, outputs)),
        "conflicts": [
            {"section": c.section, "statement": c.statement, "values": dict(zip(names, c.values)), "chosen": c.chosen}
            for c in result.conflicts
        ],
        "unclassified": [
            {"file": names[u.input], "section": u.section, "statement": u.statement, "line": u.line}
            for u in result.unclassified
        ],
        **per_output,
    }


def _json(data: dict[str, Any]) -> str:
    stream = io.StringIO()
    dump(data, "json", stream)
    return stream.getvalue()


def _where(section: str, statement: str | None) -> str:
    return f"{section} / {statement}" if statement else section


def _print_conflicts(result: MergeResult, names: list[str], stream: TextIO) -> None:
    if not result.conflicts:
        return
    print(f"{len(result.conflicts)} conflict(s), resolved with {names[result.primary]} first:", file=stream)
    for conflict in result.conflicts[:SHOWN_CONFLICTS]:
        values = "; ".join(f"{Path(name).name}: {value if value is not None else '(absent)'}"
                           for name, value in zip(names, conflict.values))
        chosen = conflict.chosen if conflict.chosen is not None else "(removed)"
        print(f"  {_where(conflict.section, conflict.statement)}: {values} -> {chosen}", file=stream)
    if len(result.conflicts) > SHOWN_CONFLICTS:
        print(f"  ... and {len(result.conflicts) - SHOWN_CONFLICTS} more", file=stream)


def _counts(edits: tuple[Edit, ...]) -> str:
    parts = []
    for action in Action:
        count = sum(1 for edit in edits if edit.action is action)
        if count:
            parts.append(f"{count} {action.value}")
    return ", ".join(parts) if parts else "unchanged"


def _print_summary(result: MergeResult, names: list[str], outputs: list[Path], report: Path) -> None:
    config = result.outputs[result.primary]
    print(f"primary: {names[result.primary]} (bqn-id {config.bqn_id or 0})")
    for name, output, edits in zip(names, outputs, result.edits):
        print(f"{output} <- {name}: {_counts(edits)}")
    _print_conflicts(result, names, sys.stdout)
    if result.unclassified:
        print(f"{len(result.unclassified)} unclassified entr{'y' if len(result.unclassified) == 1 else 'ies'} kept as is "
              f"(classify them with --rules)")
    print(f"report: {report}")


_SIGN = {Action.ADDED: "+", Action.REMOVED: "-", Action.CHANGED: "~", Action.MOVED: ">"}


def _shown(edit: Edit) -> str:
    """An edit as an operator reads it: where it is, and the line itself (``ntp / server 216.229.0.50``)."""
    parents = edit.statement.split(" / ")[:-1] if edit.statement else []
    if edit.action is Action.MOVED:
        return f"{edit.section}: {edit.line}"
    line = f"{edit.before} -> {edit.line}" if edit.action is Action.CHANGED else edit.line
    if edit.statement is None:
        return line
    return " / ".join([edit.section, *parents, line])


def _print_dry_run(result: MergeResult, names: list[str], outputs: list[Path]) -> None:
    print(f"primary: {names[result.primary]}")
    for name, output, edits in zip(names, outputs, result.edits):
        print(f"{output} <- {name}: {_counts(edits)}")
        for edit in edits:
            print(f"  {_SIGN[edit.action]} {_shown(edit)}  ({edit.reason})")
    _print_conflicts(result, names, sys.stdout)
    print("dry run: nothing written")
