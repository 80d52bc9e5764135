"""Memory a replaced backup tree held, given back to the system.

A daemon keeps the parsed tree of its live backup (megabytes for 10,000
lines) so that applying a generation does not parse it again. When a new
tree replaces it, Python frees the old one's small objects, but the C
allocator keeps the pages it got for the larger ones (the strings, lists
and dictionaries of a parse) for reuse: in a 256-server cluster on one
machine every daemon held a few megabytes it no longer used after each
generation. glibc's ``malloc_trim`` returns them; elsewhere this does nothing.

The parses run in worker threads, and glibc gives each thread that
allocates an arena of its own, whose free pages stay with it: a daemon
keeps to one arena (:func:`one_arena`, as ``MALLOC_ARENA_MAX=1`` would):
about 1.2 MB less per daemon (PSS 44.1-44.5 MB against 42.7-43.5 MB in a
16-server cluster here), for a lock its few threads seldom contend for.
"""

from __future__ import annotations

import asyncio
import ctypes
from typing import Callable

DELAY = 1.0
"""Seconds after a replacement: the old tree's last references (a reply, a log line) are gone by then."""


M_ARENA_MAX = -8
"""glibc's ``mallopt`` parameter for the number of arenas (malloc.h)."""


def _loader(name: str, arguments: list[type]) -> Callable[..., int] | None:
    try:
        function = getattr(ctypes.CDLL(None), name)  # the process's own symbols: glibc's, no library search
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = arguments, ctypes.c_int
    return function


_malloc_trim = _loader("malloc_trim", [ctypes.c_size_t])
_mallopt = _loader("mallopt", [ctypes.c_int, ctypes.c_int])


def one_arena() -> bool:
    """Every thread allocates from the main arena from now on; False where that cannot be asked."""
    return _mallopt is not None and _mallopt(M_ARENA_MAX, 1) == 1


def trim() -> bool:
    """Return the allocator's free pages to the system now; False where that cannot be done."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True


class Trimmer:
    """Trims once, :data:`DELAY` after the last of a burst of replacements (call :meth:`soon` from the event loop)."""

    def __init__(self) -> None:
        self._pending: asyncio.TimerHandle | None = None

    def soon(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        self._pending = asyncio.get_running_loop().call_later(DELAY, self._run)

    def _run(self) -> None:
        self._pending = None
        trim()
