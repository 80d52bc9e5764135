"""The tests' clusters are the demo's (:mod:`clusterd.local`); :class:`Supervised` restarts a daemon that exits."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from clusterd.client import Trouble, ask
from clusterd.config import load
from clusterd.local import FIXTURES, Cluster, free_base, status_of, wait_for

__all__ = ["FIXTURES", "Cluster", "Supervised", "free_base", "status_of", "wait_for"]


class Supervised(Cluster):
    """A local cluster whose daemons are started again when they exit, as systemd's ``Restart=`` would.

    ``kill`` (kill -9) stops a server for good: the supervisor restarts only
    processes it still holds. ``extra`` is appended to every server's cluster
    file (``{dir}`` is that server's directory). The fault lab's checker reads
    it as it reads a lab (``status(i, timeout)``, ``detection``).
    """

    def __init__(self, root: Path, ids: list[int], extra: str = "", **options: Any) -> None:
        super().__init__(root, ids, **options)
        self.detection: float = options.get("heartbeat", 0.2) * options.get("missed", 3)
        self.restarts: dict[int, int] = {i: 0 for i in ids}
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        for i in ids:
            with open(self.config(i), "a") as handle:
                handle.write(extra.replace("{dir}", str(self.dir(i))))
        self._thread = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        self._thread.start()

    def _supervise(self) -> None:
        while not self._stopping.wait(0.1):
            with self._lock:
                for i, process in list(self.processes.items()):
                    if process.poll() is not None and not self._stopping.is_set():
                        self.restarts[i] += 1
                        self.start(i)

    def kill(self, i: int) -> None:
        with self._lock:
            super().kill(i)

    def start(self, i: int) -> None:
        with self._lock:
            super().start(i)

    def stop_all(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)
        super().stop_all()

    def status(self, i: int, timeout: float = 5.0) -> dict[str, Any] | None:
        if i not in self.processes or i in self.paused:
            return None
        try:
            return ask(load(self.config(i)), {"type": "status"}, timeout=timeout)["status"]
        except (Trouble, KeyError, TypeError):
            return None
