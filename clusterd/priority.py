"""The primary's CPU priority, raised while it holds the role.

The primary of a large cluster does the most work of any server: it sends
its heartbeat to every secondary each interval, and takes in and sends out
every generation. When its machine is overloaded it must still send those
heartbeats on time, or the next lowest id finds it silent and claims the
role; it takes the role back, and every flap costs every server a new link.
Cluster daemons guard against this by priority: corosync and keepalived run
at realtime priority. clusterd raises only the primary, and only by
:data:`BOOST` nice steps (Linux's scheduler then gives it about three times
the CPU share of a secondary when the CPU is contended, and nothing when it
is not). The event loop's thread is raised (Linux keeps a nice value per
thread): that is where the heartbeats go out; the worker threads that parse
and apply run at the base priority. Stepping down lowers it again.
Without the privilege (``CAP_SYS_NICE``, which root has) the daemon says so
once and runs at its own priority.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("clusterd")

BOOST = 5
"""Nice steps the primary's event loop is raised by."""


class Priority:
    """Follows the role: the calling thread's nice value is the base less :data:`BOOST` while primary."""

    def __init__(self) -> None:
        self.base = os.getpriority(os.PRIO_PROCESS, 0)
        self.raised = False
        self.refused: str | None = None
        """Why the priority could not be raised (None: it could, or was never tried)."""

    def follow(self, primary: bool) -> None:
        if primary == self.raised:
            return
        self.raised = primary
        try:
            os.setpriority(os.PRIO_PROCESS, 0, self.base - BOOST if primary else self.base)
        except OSError as error:
            if self.refused is None:
                log.info("cannot raise the primary's CPU priority (%s); it runs at nice %d like a secondary",
                         error.strerror, self.base)
            self.refused = error.strerror or str(error)

    def executor(self) -> ThreadPoolExecutor:
        """Worker threads at the base priority (a thread inherits its creator's nice: the raised loop's)."""
        return ThreadPoolExecutor(thread_name_prefix="clusterd", initializer=self._at_base)

    def _at_base(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, self.base)
        except OSError:
            pass

    def now(self) -> int:
        """The calling thread's nice value."""
        return os.getpriority(os.PRIO_PROCESS, 0)
