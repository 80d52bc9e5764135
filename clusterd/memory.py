"""Memory a replaced backup tree held, given back to the system.

A daemon keeps the parsed tree of its live backup (megabytes for 10,000
lines) so that applying a generation does not parse it again. When a new
tree replaces it, Python frees the old one's small objects, but the C
allocator keeps the pages it got for the larger ones (the strings, lists
and dictionaries of a parse) for reuse: in a 256-server cluster on one
machine every daemon held a few megabytes it no longer used after each
generation. glibc's ``malloc_trim`` returns them; elsewhere this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
from typing import Callable

DELAY = 1.0
"""Seconds after a replacement: the old tree's last references (a reply, a log line) are gone by then."""


def _loader() -> Callable[[int], int] | None:
    try:
        function = ctypes.CDLL(None).malloc_trim  # the process's own symbols: glibc's, no library search
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = [ctypes.c_size_t], ctypes.c_int
    return function


_malloc_trim = _loader()


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
