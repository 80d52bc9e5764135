"""Errors and warnings as the format page, section 6, prints them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Literal

Severity = Literal["error", "warning"]

# C0 but tab and newline, DEL, C1, the bidirectional overrides that reorder what a terminal shows, the
# invisible ones (zero-width space, joiners, word joiner, BOM) and the Unicode line and paragraph separators.
_CONTROLS = (r"\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff"
             r"\u2028\u2029")
_UNPRINTABLE = re.compile(f"[{_CONTROLS}]")
_UNPRINTABLE_IN_A_LINE = re.compile(f"[{_CONTROLS}\\t\\n]")


def printable(text: str, one_line: bool = False) -> str:
    """``text`` safe for a terminal: each control character escaped as git and ls quote names (``\\x1b``);
    with ``one_line`` also newline and tab, so that quoted text cannot forge a line of a log.

    Every message and report that quotes a backup or a file name goes through
    this at its output edge; data (JSON, YAML) keeps the characters exactly.
    """
    return (_UNPRINTABLE_IN_A_LINE if one_line else _UNPRINTABLE).sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding at a 1-based line and column of a file; line 0 is the file as a whole (it cannot be read,
    or is no backup at all), which has no position to point at."""

    severity: Severity
    line: int
    column: int
    message: str
    file: str = "<input>"

    def __str__(self) -> str:
        return printable(self.formatted, one_line=True)

    @property
    def formatted(self) -> str:
        """``FILE:LINE:COLUMN: error: MESSAGE``, or ``FILE: error: MESSAGE`` for a whole file (line 0), exactly
        (``str()`` is the same, safe for a terminal)."""
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.severity}: {self.message}"

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
