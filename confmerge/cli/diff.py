"""``confmerge diff``: what really differs between two backups, for a person or a program.

The engine (:mod:`confmerge.diff`) finds the changes; this module reads the
files and prints them: text grouped by section, cluster-wide first, coloured on
a terminal (:func:`confmerge.present.diff_text`); or JSON / YAML in the versioned
schema of ``docs/diff.md`` (:func:`confmerge.data.diff_data`). The
exit status is diff(1)'s: 0 no difference in scope, 1 differences, 2 trouble.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

from ..data import diff_data, dump
from ..diff import Scope, diff
from ..present import diff_text
from . import EXIT_DIFFERENT, EXIT_OK, command, load_checked, load_rules, rules_option


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", type=Path, metavar="OLD", help="a BQN .conf backup")
    parser.add_argument("new", type=Path, metavar="NEW", help="the backup to compare it with")
    parser.add_argument("--scope", choices=[s.value for s in Scope], default=Scope.ALL.value,
                        help="which differences count: all (default), cluster-wide only, or server-specific only")
    parser.add_argument("--format", choices=("text", "json", "yaml"), default="text",
                        help="text for a person (default), json or yaml for programs (schema in docs/diff.md)")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour the text output: auto (a terminal, and NO_COLOR unset), always or never")
    rules_option(parser)


@command("diff", "print what really differs between two backups, in normal form; exit 1 when they differ",
         _arguments)
def run(args: argparse.Namespace) -> int:
    rules = load_rules(args)
    old, new = load_checked([args.old, args.new], rules)
    result = diff(old, new, Scope(args.scope))
    if args.format == "text":
        sys.stdout.write(diff_text(result, colour=_colour(args.color, sys.stdout)))
    else:
        dump(diff_data(result), args.format, sys.stdout)
    return EXIT_DIFFERENT if result else EXIT_OK


def _colour(choice: str, stream: TextIO) -> bool:
    """``auto`` colours a terminal unless ``NO_COLOR`` is set to anything (https://no-color.org)."""
    if choice != "auto":
        return choice == "always"
    return not os.environ.get("NO_COLOR") and stream.isatty()
