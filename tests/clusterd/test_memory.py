"""Giving a replaced tree's memory back: measured on a real process's resident set."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from clusterd import memory

SCRIPT = textwrap.dedent("""
    import sys
    from clusterd import memory

    def rss_kb():
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))

    blobs = [bytearray(4000) for _ in range(20000)]  # 80 MB from malloc's heap (too small for mmap)
    kept = blobs[15::16]  # one in 16 stays: the pages between are free but not at the heap's top
    del blobs
    before = rss_kb()
    trimmed = memory.trim() if sys.argv[1] == "trim" else False
    print(before, rss_kb(), trimmed, len(kept))
""")


def _run(mode: str) -> tuple[int, int, bool]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60, check=True)
    before, after, trimmed, _ = out.stdout.split()
    return int(before), int(after), trimmed == "True"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_trim_gives_back_the_pages_a_freed_tree_held():
    before, after, _ = _run("keep")
    assert after > before - 10_000, "without a trim the allocator keeps the freed pages"
    before, after, trimmed = _run("trim")
    assert trimmed
    assert after < before - 50_000, f"a trim returns most of the 75 MB freed (resident {before} -> {after} kB)"


def test_a_burst_of_replacements_trims_once_after_the_last(monkeypatch):
    calls: list[float] = []
    monkeypatch.setattr(memory, "trim", lambda: calls.append(asyncio.get_running_loop().time()) or True)
    monkeypatch.setattr(memory, "DELAY", 0.05)

    async def burst() -> float:
        trimmer = memory.Trimmer()
        last = 0.0
        for _ in range(3):
            last = asyncio.get_running_loop().time()
            trimmer.soon()
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        return last

    last = asyncio.run(burst())
    assert len(calls) == 1 and calls[0] >= last + 0.05


_ARENAS = """
import sys, threading
from clusterd import memory
if sys.argv[1] == "one":
    assert memory.one_arena()
def work():
    kept = [bytearray(100_000) for _ in range(50)]
    del kept
threads = [threading.Thread(target=work) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
reserved = 0  # a thread's arena is a heap reserved whole and mapped as needed: its unmapped rest is ---p, no file
for line in open("/proc/self/maps"):
    fields = line.split()
    start, end = (int(x, 16) for x in fields[0].split("-"))
    reserved += fields[1] == "---p" and len(fields) == 5 and end - start >= 1 << 20
print(reserved)
"""


def _arenas(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _ARENAS, mode], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_a_daemons_threads_allocate_from_one_arena():
    """docs: the parses in worker threads leave no arena of their own behind (glibc gives threads one each)."""
    assert max(_arenas("one") for _ in range(3)) == 0
    assert any(_arenas("default") > 0 for _ in range(8)), "the count sees a thread's arena where there is one"
