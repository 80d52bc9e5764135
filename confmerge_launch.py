"""The console entry points of both programs, outside both packages.

Importing either program takes a noticeable part of a second (the grammar,
SSH), and ``import confmerge.cli`` runs the package's ``__init__`` before any
of the program's own code could catch Ctrl-C. Here the import itself is
guarded, so Ctrl-C during start-up ends the program as it does later: status
130 and no traceback.
"""

from __future__ import annotations

import sys
from importlib import import_module

INTERRUPTED = 130


def confmerge() -> int:
    return _start("confmerge.cli")


def clusterd() -> int:
    return _start("clusterd.cli")


def _start(module: str) -> int:
    try:
        main = import_module(module).main
    except KeyboardInterrupt:
        return INTERRUPTED
    status: int = main(sys.argv[1:])
    return status
