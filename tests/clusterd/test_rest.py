"""``Rest``: a sleep that a wake ends early and a postponement makes longer."""

from __future__ import annotations

import asyncio
import time

from clusterd.rest import Rest


def test_a_wake_ends_the_rest_at_once_and_says_so():
    async def run() -> tuple[bool, float]:
        rest = Rest()
        asyncio.get_running_loop().call_later(0.05, rest.wake)
        started = time.monotonic()
        early = await rest(5.0)
        return early, time.monotonic() - started

    early, took = asyncio.run(run())
    assert early and took < 1.0


def test_a_postponement_moves_the_end_later_never_sooner():
    async def run() -> tuple[bool, float, bool, float]:
        rest = Rest()
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, rest.postpone, 0.4)  # ends at 0.5 s, not 0.2 s
        loop.call_later(0.2, rest.postpone, 0.05)  # sooner than the end: no change
        started = time.monotonic()
        early = await rest(0.2)
        first = time.monotonic() - started
        rest.postpone(10.0)  # no rest under way: nothing to do
        started = time.monotonic()
        loop.call_later(0.05, rest.postpone, 0.3)
        loop.call_later(0.1, rest.wake)  # a wake still ends a postponed rest at once
        woken = await rest(0.1)
        return early, first, woken, time.monotonic() - started

    early, first, woken, second = asyncio.run(run())
    assert not early and 0.45 <= first < 2.0, first
    assert woken and second < 0.3, second
