"""Errors and warnings as the format page, section 6, prints them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding at a 1-based line and column of a file."""

    severity: Severity
    line: int
    column: int
    message: str
    file: str = "<input>"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}"

    def at(self, file: str) -> "Diagnostic":
        return Diagnostic(self.severity, self.line, self.column, self.message, file)


class ConfError(Exception):
    """Input the engine refuses; carries every error found, not only the first."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(map(str, self.diagnostics)))

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")
