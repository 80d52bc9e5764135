"""``confmerge parse`` and ``confmerge check``: look at one backup at a time."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..check import validate
from ..data import config_data, dump
from ..diagnostics import ConfError, printable
from . import EXIT_OK, EXIT_TROUBLE, command, load


def _parse_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="a BQN .conf backup")
    parser.add_argument("--format", choices=("json", "yaml"), default="json", help="output format (default: json)")


@command("parse", "print the typed tree of a backup (normal forms, lines, class of each section)", _parse_arguments)
def run_parse(args: argparse.Namespace) -> int:
    dump(config_data(load(args.file)), args.format)
    return EXIT_OK


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE", help="BQN .conf backups")


@command("check", "check syntax, types and references of backups; exit 0 when every file is valid", _check_arguments)
def run_check(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for path in args.files:
        try:
            problems = validate(load(path))
        except ConfError as error:
            problems = list(error.diagnostics)
        for problem in problems:
            print(problem, file=sys.stderr)
        if any(problem.severity == "error" for problem in problems):
            status = EXIT_TROUBLE
        else:
            print(printable(f"{path}: ok", one_line=True))
    return status
