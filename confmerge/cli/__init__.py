"""The ``confmerge`` command: files and terminals at the edge of the engine.

Each subcommand lives in a module of this package and registers itself with
:func:`command`; it reads its inputs, calls the pure engine, and prints. Bad
input is reported as ``FILE:LINE:COLUMN: error: MESSAGE`` with exit status 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import io
import os
import pkgutil
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, NoReturn, Sequence

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
    return run_program(build_parser, argv)


def run_program(build: Callable[[], argparse.ArgumentParser], argv: Sequence[str] | None,
                run: Callable[[argparse.Namespace], int] | None = None) -> int:
    """Start a program the way both do: build its parser, read ``argv``, run the chosen command under
    :func:`guarded`. Options are never abbreviated (``--scop`` is not ``--scope``), and an unknown option is
    named with its subcommand's usage."""
    def start(_: argparse.Namespace) -> int:
        _buffer_stdout()
        parser = build()
        parsers = list(_parsers(parser))
        for each in parsers:
            each.allow_abbrev = False
        words = list(sys.argv[1:] if argv is None else argv)
        _check_options(parser, words)
        args, extra = parser.parse_known_args(words)
        if extra:
            _unrecognized(parsers, args, extra)
        return (run or args.run)(args)
    return guarded(start, argparse.Namespace())


def _buffer_stdout() -> None:
    """Give an unbuffered stdout (``python -u``, ``PYTHONUNBUFFERED``) a buffered layer again: unbuffered, the
    text layer hands each write to the file once and drops what a write cut short by a closed pipe left
    unwritten, without an error; a buffered layer writes the rest, and so meets the closed pipe."""
    stream = sys.stdout
    if isinstance(stream, io.TextIOWrapper) and isinstance(stream.buffer, io.RawIOBase):
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(stream.buffer), encoding=stream.encoding,
                                      errors=stream.errors, line_buffering=True)


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def _check_options(parser: argparse.ArgumentParser, words: list[str]) -> None:
    """An unknown option is named as such, before argparse reads the words: it would take the word after it
    for an argument (a subcommand, a peer number) and complain about that word instead (``clusterd diff
    --scop all``: "invalid int value: 'all'"). Options before the subcommand are the program's, after it the
    subcommand's."""
    subcommands = next((action.choices for action in parser._actions
                        if isinstance(action, argparse._SubParsersAction)), {})
    current = parser
    takes_value = _takes_value(current)
    index = 0
    while index < len(words) and words[index] != "--":
        word = words[index]
        if current is parser and word in subcommands:
            current = subcommands[word]
            takes_value = _takes_value(current)
        elif word.startswith("-") and word != "-" and not _NUMBER.fullmatch(word):
            option = word[:2] if not word.startswith("--") and word[:2] in takes_value else word.split("=", 1)[0]
            if option not in takes_value:
                _unrecognized([current], argparse.Namespace(), [option])
            if takes_value[option] and word == option:
                index += 1
        index += 1


_NUMBER = re.compile(r"-\d+(\.\d*)?")


def _takes_value(parser: argparse.ArgumentParser) -> dict[str, bool]:
    return {option: action.nargs != 0 for action in parser._actions for option in action.option_strings}


def _unrecognized(parsers: list[argparse.ArgumentParser], args: argparse.Namespace, extra: list[str]) -> NoReturn:
    """Refuse leftover arguments with the usage of the subcommand they were given to; an unknown option is
    named alone (not the file argparse took its place for), with the option it resembles."""
    command = getattr(args, "command", None)
    parser = next((p for p in parsers if p.get_default("run") is getattr(args, "run", None) and p is not parsers[0]
                   and command is not None), parsers[0])
    options = [word for word in extra if word.startswith("-") and word != "-"]
    if not options:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    known = [option for action in parser._actions for option in action.option_strings]
    hints = []
    for option in options:
        close = difflib.get_close_matches(option.split("=", 1)[0], known, n=1)
        hints.append(f"{option} (did you mean {close[0]}?)" if close else option)
    parser.error(f"unrecognized option{'s' if len(options) > 1 else ''}: {', '.join(hints)}")


def guarded(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command the way both programs do: bad input as its diagnostics and exit 2, never a traceback;
    Ctrl-C is 130. A reader that closed the pipe (``| head``) makes it trouble, exit 2, as diff(1) does: an
    output cut short never reports "no difference"."""
    try:
        status = run(args)
        sys.stdout.flush()
        return status
    except ConfError as error:
        for diagnostic in error.diagnostics:
            print(diagnostic, file=sys.stderr)
        return EXIT_TROUBLE
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_TROUBLE
    except KeyboardInterrupt:
        return 130


def _discard_stdout() -> None:
    """What is still buffered for a closed pipe goes nowhere, so that the interpreter's exit does not fail on it."""
    try:
        fileno = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fileno)
    finally:
        os.close(devnull)
