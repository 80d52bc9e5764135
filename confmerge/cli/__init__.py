"""The ``confmerge`` command: files and terminals at the edge of the engine.

Each subcommand lives in a module of this package and registers itself with
:func:`command`; it reads its inputs, calls the pure engine, and prints. Bad
input is reported as ``FILE:LINE:COLUMN: error: MESSAGE`` with exit status 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .. import __version__
from ..check import not_a_backup, validate
from ..diagnostics import ConfError, Diagnostic
from ..files import read_text
from ..parser import parse
from ..rules import Rules, rules_with
from ..tree import Config

EXIT_OK, EXIT_DIFFERENT, EXIT_TROUBLE = 0, 1, 2


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None]):
    """Register the decorated ``run(args) -> exit status`` as subcommand ``name``."""
    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = Command(name, help, arguments, run)
        return run
    return register


def load(path: Path, rules: Rules | None = None) -> Config:
    """Read and parse one backup; its warnings go to stderr. A file with nothing of a backup is refused."""
    config = parse(read_text(path), str(path), rules)
    if (refused := not_a_backup(config)) is not None:
        raise ConfError([*config.warnings, refused])
    for warning in config.warnings:
        print(warning, file=sys.stderr)
    return config


def load_checked(paths: Sequence[Path], rules: Rules | None = None) -> list[Config]:
    """Read, parse and check several backups as ``confmerge check`` does; every problem of every file is
    reported (one :class:`ConfError`) before giving up."""
    configs: list[Config] = []
    problems: list[Diagnostic] = []
    for path in paths:
        try:
            config = load(path, rules)
        except ConfError as error:
            problems.extend(error.diagnostics)
            continue
        problems.extend(validate(config))
        configs.append(config)
    if any(problem.severity == "error" for problem in problems):
        raise ConfError(problems)
    return configs


def rules_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules", type=Path, metavar="FILE",
                        help="a rules file (YAML) that overrides the default merge classes")


def load_rules(args: argparse.Namespace) -> Rules:
    path: Path | None = getattr(args, "rules", None)
    return rules_with(path, read_text(path) if path is not None else None)


def build_parser() -> argparse.ArgumentParser:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    parser = argparse.ArgumentParser(
        prog="confmerge",
        description="Diff and merge BQN configuration backups (.conf) for a cluster.",
    )
    parser.add_argument("--version", action="version", version=f"confmerge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in sorted(COMMANDS, key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n)):
        spec = COMMANDS[name]
        child = sub.add_parser(name, help=spec.help, description=spec.help[0].upper() + spec.help[1:] + ".")
        spec.arguments(child)
        child.set_defaults(run=spec.run)
    return parser


_ORDER = ["merge", "diff", "check", "parse", "rules"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(args.run, args)


def guarded(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command the way both programs do: bad input as its diagnostics and exit 2, never a traceback;
    a reader that closed the pipe ends it quietly; Ctrl-C is 130."""
    try:
        return run(args)
    except ConfError as error:
        for diagnostic in error.diagnostics:
            print(diagnostic, file=sys.stderr)
        return EXIT_TROUBLE
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
