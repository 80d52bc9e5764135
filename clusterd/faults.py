"""Failed writes to the state directory (a full disk, a read-only mount): reported, never fatal.

Each kind of write has at most one open fault. It is logged once with its
reason (again only if the reason changes), shown in ``clusterd status`` as
this server's ``error``, and closed, with a log line, when that write next
succeeds. The daemon goes on meanwhile: a channel never dies of it, and the
election never hears of it.
"""

from __future__ import annotations

from typing import Callable


class StateFaults:
    def __init__(self, report: Callable[[str], None]) -> None:
        self._report = report
        self._open: dict[str, str] = {}

    def failed(self, what: str, error: OSError) -> None:
        text = f"cannot write the state directory ({what}): {error.strerror or error}; running on, will retry"
        if self._open.get(what) != text:
            self._report(text)
        self._open[what] = text

    def succeeded(self, what: str) -> None:
        if self._open.pop(what, None) is not None:
            self._report(f"the state directory is writable again ({what})")

    def text(self) -> str | None:
        return "; ".join(self._open.values()) or None
