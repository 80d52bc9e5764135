"""Every failure as a status and a message (and, for bad backups, the diagnostics), never a stack trace."""

from __future__ import annotations

from typing import Any


class Problem(Exception):
    """A request the server refuses: ``status``, a sentence for a person, and optional details as data."""

    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.headers: dict[str, str] = {}

    def data(self) -> dict[str, Any]:
        return {"error": self.message, "status": self.status, **self.details}
