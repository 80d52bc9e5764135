"""Whole-process measurements: wall time and peak memory of one command."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_mb: float
    cpu_seconds: float = 0.0
    """User and system time of the process: what a loaded, shared machine changes least."""


def run(command: Sequence[str], repeat: int = 3) -> Run:
    """Best wall time, largest peak RSS and least CPU time of ``repeat`` runs of ``command``."""
    times, peaks, cpu = [], [], []
    for _ in range(repeat):
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        times.append(time.perf_counter() - start)
        peaks.append(usage.ru_maxrss / 1024)
        cpu.append(usage.ru_utime + usage.ru_stime)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode not in (0, 1):
            raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {process.stderr.read().decode()}")
        process.stderr.close()
    return Run(min(times), max(peaks), min(cpu))


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
