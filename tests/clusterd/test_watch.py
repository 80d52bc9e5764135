"""The live backup's watch: inotify wakes the daemon for an edit however it is written, and nothing else."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from confmerge import write_atomic

from clusterd.watch import watch


async def _woken_by(path: Path, act, wait: float = 2.0) -> int:
    calls = 0
    woken = asyncio.Event()

    def changed() -> None:
        nonlocal calls
        calls += 1
        woken.set()

    w = watch(path, changed)
    assert w is not None, "inotify is there on Linux"
    try:
        act()
        try:
            await asyncio.wait_for(woken.wait(), wait)
        except TimeoutError:
            pass
        await asyncio.sleep(0.05)
    finally:
        w.close()
    return calls


def test_an_atomic_replace_an_in_place_write_and_a_removal_each_wake_it(tmp_path: Path) -> None:
    backup = tmp_path / "bqn.conf"
    backup.write_text("hostname a\n")
    assert asyncio.run(_woken_by(backup, lambda: write_atomic(backup, "hostname b\n"))) >= 1
    assert asyncio.run(_woken_by(backup, lambda: backup.write_text("hostname c\n"))) >= 1
    assert asyncio.run(_woken_by(backup, lambda: os.utime(backup, (1, 1)))) >= 1
    assert asyncio.run(_woken_by(backup, backup.unlink)) >= 1


def test_other_files_in_the_directory_do_not_wake_it(tmp_path: Path) -> None:
    backup = tmp_path / "bqn.conf"
    backup.write_text("hostname a\n")
    assert asyncio.run(_woken_by(backup, lambda: (tmp_path / "bqn-v2.conf").write_text("x\n"), wait=0.3)) == 0


def test_no_watch_where_the_directory_cannot_be_watched(tmp_path: Path) -> None:
    async def attempt() -> object:
        return watch(tmp_path / "missing" / "bqn.conf", lambda: None)

    assert asyncio.run(attempt()) is None


def test_a_watch_whose_directory_goes_says_so_and_is_no_longer_alive(tmp_path: Path) -> None:
    directory = tmp_path / "etc"
    directory.mkdir()
    backup = directory / "bqn.conf"
    backup.write_text("hostname a\n")

    async def scenario() -> bool:
        woken = asyncio.Event()
        w = watch(backup, woken.set)
        assert w is not None and w.alive
        backup.unlink()
        directory.rmdir()
        await asyncio.wait_for(woken.wait(), 2.0)
        for _ in range(40):
            if not w.alive:
                break
            await asyncio.sleep(0.05)
        alive = w.alive
        w.close()
        return alive

    assert asyncio.run(scenario()) is False, "a dead watch is not trusted: the tick polls again"
