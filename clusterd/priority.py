"""The primary's CPU priority, raised while it holds the role.

The primary of a large cluster does the most work of any server: it sends
its heartbeat to every secondary each interval, and takes in and sends out
every generation. When its machine is overloaded it must still send those
heartbeats on time, or the next lowest id finds it silent and claims the
role; it takes the role back, and every flap costs every server a new link.
Cluster daemons guard against this by priority: corosync and keepalived run
at realtime priority. clusterd raises only the primary, and only by
:data:`BOOST` nice steps (Linux's scheduler then gives it about nine times
the CPU share of a secondary when the CPU is contended, and nothing when it
is not; 5 steps, three times, left a 256-server primary on one machine
waiting seconds for a CPU with 64 logins queued). The event loop's thread is raised (Linux keeps a nice value per
thread): that is where the heartbeats go out. The worker threads that parse
and merge are raised with it: one that holds the interpreter's lock while
the scheduler makes it wait at a lower priority holds the loop back with it
(a priority inversion: at 256 servers a base-priority merge left the
primary's loop silent for 6 s). Stepping down lowers them all again.

Linux shares the CPU between *autogroups* first (one per session, when
``/proc/sys/kernel/sched_autogroup_enabled`` is 1) and by nice only within
one: a daemon in a session of its own (as systemd starts a service, as
``clusterd.local`` starts each server) is raised against the others only if
its autogroup is (``/proc/self/autogroup``). The daemon raises its
autogroup too when the session is its own, never an operator's shell's.
Without the privilege (``CAP_SYS_NICE``, which root has) the daemon says so
once and runs at its own priority.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger("clusterd")

BOOST = 10
"""Nice steps the primary's event loop is raised by (never past -20, the highest)."""
HIGHEST = -20
AUTOGROUP = "/proc/self/autogroup"


def _autogroup() -> int | None:
    """``/autogroup-25 nice 0``: the nice of this session's autogroup; None without autogroups."""
    try:
        return int(Path(AUTOGROUP).read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


class Priority:
    """Follows the role: the calling thread's nice value, and its executor's threads', is the base less
    :data:`BOOST` while primary."""

    def __init__(self) -> None:
        self.base = os.getpriority(os.PRIO_PROCESS, 0)
        self.raised = False
        self.refused: str | None = None
        """Why the priority could not be raised (None: it could, or was never tried)."""
        self._workers: set[int] = set()
        self._group = _autogroup() if os.getsid(0) == os.getpid() else None
        """This session's autogroup nice at start, when the session is this process's own (None: leave it)."""
        self._group_refused = False

    @property
    def level(self) -> int:
        return max(self.base - BOOST, HIGHEST) if self.raised else self.base

    def follow(self, primary: bool) -> None:
        if primary == self.raised:
            return
        self.raised = primary
        try:
            os.setpriority(os.PRIO_PROCESS, 0, self.level)
            for worker in list(self._workers):
                try:
                    os.setpriority(os.PRIO_PROCESS, worker, self.level)
                except ProcessLookupError:
                    self._workers.discard(worker)
            self._follow_group(primary)
        except OSError as error:
            if self.refused is None:
                log.info("cannot raise the primary's CPU priority (%s); it runs at nice %d like a secondary",
                         error.strerror, self.base)
            self.refused = error.strerror or str(error)

    def _follow_group(self, primary: bool) -> None:
        """The session's autogroup with the threads; a refusal (EAGAIN: Linux allows one change per 100 ms without
        CAP_SYS_ADMIN) leaves it as it was and is said once: the threads' priority stands either way."""
        if self._group is None:
            return
        try:
            Path(AUTOGROUP).write_text(str(max(self._group - BOOST, HIGHEST) if primary else self._group))
        except OSError as error:
            if not self._group_refused:
                self._group_refused = True
                log.info("cannot change this session's autogroup priority (%s)", error.strerror)

    def group(self) -> int | None:
        """The session's autogroup nice now (None: no autogroups here)."""
        return _autogroup()

    def executor(self) -> ThreadPoolExecutor:
        """Worker threads that follow the loop's priority."""
        return ThreadPoolExecutor(thread_name_prefix="clusterd", initializer=self._enlist)

    def _enlist(self) -> None:
        self._workers.add(threading.get_native_id())
        try:
            os.setpriority(os.PRIO_PROCESS, 0, self.level)
        except OSError:
            pass

    def now(self) -> int:
        """The calling thread's nice value."""
        return os.getpriority(os.PRIO_PROCESS, 0)
