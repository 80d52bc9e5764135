"""An operator editing a live backup at a high rate, run as its own process by the tests.

``python operator_edits.py FILE COUNT MODE PAUSE [TAG]`` makes COUNT edits,
each a read-modify-write of FILE: edit i adds a static route to ``routing``
(server-specific) and every third edit also a server to ``dns``
(cluster-wide); TAG keeps two operators' edits apart. MODE says how the file
is written: ``replace`` (temp file and rename, as editors and scripts do),
``inplace`` (open with truncation and write, as ``>`` does), ``locked``
(rename under an ``flock`` of the directory, a cooperating editor) or
``careful`` (swapped in only if the file is still what was read, else read
and edited again: an operator who never overwrites the daemon's own writes).
It prints the edits it made, one a line.
"""

from __future__ import annotations

import fcntl
import os
import random
import sys
import time
from pathlib import Path

from clusterd import livefile
from confmerge.files import write_atomic


def route(i: int, tag: int = 0) -> str:
    return f"  static 10.{100 + tag}.{i // 250}.{i % 250}/32 via 192.168.0.1\n"


def dns_server(i: int, tag: int = 0) -> str:
    return f"  server 10.{90 + tag}.{i // 250}.{i % 250}\n"


def edit(text: str, i: int, tag: int = 0) -> str:
    text = text.replace("routing\n", "routing\n" + route(i, tag), 1)
    if i % 3 == 0:
        text = text.replace("dns\n", "dns\n" + dns_server(i, tag), 1)
    return text


def write(path: Path, i: int, mode: str, tag: int) -> None:
    if mode == "careful":
        while True:
            seen = livefile.read(path)
            if livefile.swap(path, seen, edit(seen.text, i, tag)) is not None:
                return
    if mode == "locked":
        fd = os.open(path.parent, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)
    text = path.read_text(encoding="utf-8")
    if mode == "inplace":
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(edit(text, i, tag))
    else:
        write_atomic(path, edit(text, i, tag))
    if mode == "locked":
        os.close(fd)


def main(path: Path, count: int, mode: str, pause: float, tag: int) -> None:
    for i in range(count):
        write(path, i, mode, tag)
        print(i, flush=True)
        time.sleep(random.uniform(0, pause))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5]) if sys.argv[5:] else 0)
