"""Was this process paused, or only starved of the CPU? The event loop's gaps, told apart by the kernel's accounting.

A gap in the event loop longer than the detection time has two causes. The
process was stopped (SIGSTOP, a VM paused, a machine suspended): what it
heard before is stale and it must ask its peers before acting. Or it was
runnable all along and waited for a CPU (hundreds of daemons on two cores):
then what queued for it is fresh, and treating that as a pause made every
starved server revalidate at once, find its starved peers silent, and claim.
Linux keeps, per thread, the time spent on a CPU and the time spent waiting
for one (``/proc/thread-self/schedstat``); a stopped process accrues
neither. Where that file is not there every long gap counts as a pause, as
before.
"""

from __future__ import annotations

import math
import os
import time

SCHEDSTAT = "/proc/thread-self/schedstat"


class Gaps:
    """Measures the gaps between the event loop's turns (call :meth:`turn` from the loop's thread only)."""

    def __init__(self, limit: float, path: str = SCHEDSTAT) -> None:
        self.limit = limit
        """A gap up to this long is the loop's own rest, not a pause."""
        self._fd: int | None
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._fd = None
        self._last = time.monotonic()
        self._base = (self._last, *self._accounted())
        self.starved = 0.0
        """Seconds of the last long gap spent waiting for a CPU (0 unless the last gap was starvation)."""

    def _accounted(self) -> tuple[float, float]:
        """(seconds on a CPU, seconds runnable and waiting) of this thread so far; NaN where not known (a pause)."""
        if self._fd is None:
            return math.nan, math.nan
        try:
            on, waiting = os.pread(self._fd, 128, 0).split()[:2]
            return int(on) / 1e9, int(waiting) / 1e9
        except (OSError, ValueError):
            return math.nan, math.nan

    def restart(self) -> None:
        """Count from now (a long start is no pause)."""
        self._last = time.monotonic()
        self._base = (self._last, *self._accounted())

    def turn(self, tick: bool = False) -> float | None:
        """The loop ran again: the length of the pause that ended now, or None (no gap, or only starvation).

        ``tick``: the regular tick, which also moves the baseline the
        accounting is read against (so a message between ticks costs no read).
        """
        now = time.monotonic()
        away, self._last = now - self._last, now
        if away <= self.limit:
            if tick:
                self._base = (now, *self._accounted())
            return None
        then, on, waiting = self._base
        now_on, now_waiting = self._accounted()
        self._base = (now, now_on, now_waiting)
        idle = (now - then) - (now_on - on) - (now_waiting - waiting)
        if idle <= self.limit:  # False for NaN: not known is a pause
            self.starved = now_waiting - waiting
            return None
        self.starved = 0.0
        return away

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
