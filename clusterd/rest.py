"""A sleep that can be cut short: the tick, the heartbeat timer and the update watch rest this way."""

from __future__ import annotations

import asyncio


class Rest:
    """``await rest(seconds)`` sleeps; :meth:`wake` ends the sleep under way at once (a no-op when none is)."""

    def __init__(self) -> None:
        self._future: asyncio.Future[bool] | None = None

    async def __call__(self, seconds: float) -> bool:
        """Sleep ``seconds``; True if woken before they passed."""
        loop = asyncio.get_running_loop()
        future = self._future = loop.create_future()
        timer = loop.call_later(seconds, _end, future, False)
        try:
            return await future
        finally:
            timer.cancel()
            self._future = None

    def wake(self) -> None:
        if self._future is not None:
            _end(self._future, True)


def _end(future: asyncio.Future[bool], early: bool) -> None:
    if not future.done():
        future.set_result(early)
