"""The web GUI's compare on large backups: what the page adds to the engine, measured against the engine alone.

Generates two backups of about 100,000 lines differing in 0.1% and in 1% of
their sections (``generate.pair``), serves ``confmerge.web.create_app`` on
127.0.0.1 (plain HTTP in this process, aiohttp), and times, best of N: the
engine alone (parse both, ``diff``); ``POST /api/v1/diff`` (upload, parse,
diff, JSON); ``POST /compare`` (the same, rendered as the HTML page). Prints the
HTML page's size against the inputs' (only the changes and their context are
rendered). Run ``python bench/web.py``; it prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Awaitable, Callable

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).parent))

from generate import pair  # noqa: E402
from measure import table  # noqa: E402

from confmerge import diff, parse  # noqa: E402
from confmerge.web import Limits, create_app  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"


async def best(repeat: int, function: Callable[[], Awaitable[int]]) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        size = await function()
        times.append(time.perf_counter() - start)
    return min(times), size


async def measure(lines: int, fraction: float, repeat: int) -> list[list[object]]:
    old, new = pair(lines, fraction)
    app = create_app(TOKEN, secure=False, limits=Limits(file_bytes=64 << 20, total_bytes=256 << 20))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rows: list[list[object]] = []
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
            async def post(path: str) -> int:
                form = aiohttp.FormData()
                form.add_field("old", old.encode(), filename="a.conf")
                form.add_field("new", new.encode(), filename="b.conf")
                async with session.post(f"http://127.0.0.1:{port}{path}", data=form) as response:
                    assert response.status == 200, await response.text()
                    return len(await response.read())

            async def engine() -> int:
                return len(diff(parse(old, "a.conf"), parse(new, "b.conf")).changes)

            engine_time, changes = await best(repeat, engine)
            api_time, api_size = await best(repeat, lambda: post("/api/v1/diff"))
            page_time, page_size = await best(repeat, lambda: post("/compare"))
    finally:
        await runner.cleanup()
    size = len(old) + len(new)
    label = f"{old.count(chr(10)):,} lines, {fraction:.1%} changed ({changes} changes)"
    rows.append([label, "engine: parse both + diff", f"{engine_time:.2f} s", "1.00", "-"])
    rows.append([label, "POST /api/v1/diff (JSON)", f"{api_time:.2f} s", f"{api_time / engine_time:.2f}",
                 f"{api_size / 1024:.0f} kB"])
    rows.append([label, "POST /compare (HTML page)", f"{page_time:.2f} s", f"{page_time / engine_time:.2f}",
                 f"{page_size / 1024:.0f} kB ({page_size / size:.1%} of the inputs)"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for fraction in (0.001, 0.01):
        rows += asyncio.run(measure(args.lines, fraction, args.repeat))
    print(table(["backups", "what", "best time", "× engine", "response"], rows))


if __name__ == "__main__":
    main()
