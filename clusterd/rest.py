"""A sleep that can be cut short: the tick, the heartbeat timer and the update watch rest this way."""

from __future__ import annotations

import asyncio


class Rest:
    """``await rest(seconds)`` sleeps; :meth:`wake` ends the sleep under way at once (a no-op when none is);
    :meth:`postpone` makes it longer."""

    def __init__(self) -> None:
        self._future: asyncio.Future[bool] | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def __call__(self, seconds: float) -> bool:
        """Sleep ``seconds``; True if woken before they passed."""
        loop = asyncio.get_running_loop()
        future = self._future = loop.create_future()
        self._timer = loop.call_later(seconds, _end, future, False)
        try:
            return await future
        finally:
            self._timer.cancel()
            self._future = self._timer = None

    def wake(self) -> None:
        if self._future is not None:
            _end(self._future, True)

    def postpone(self, seconds: float) -> None:
        """The sleep under way ends no sooner than ``seconds`` from now (no wake-up is spent on it)."""
        future, timer = self._future, self._timer
        if future is None or timer is None or future.done():
            return
        loop = asyncio.get_running_loop()
        if timer.when() < loop.time() + seconds:
            timer.cancel()
            self._timer = loop.call_later(seconds, _end, future, False)


def _end(future: asyncio.Future[bool], early: bool) -> None:
    if not future.done():
        future.set_result(early)
