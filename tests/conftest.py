"""Shared test helpers: the fixtures folder and the real console scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

# CI runs the same examples every time (set by .ci/run): a red build is reproducible, and the
# random exploration that finds new cases happens where somebody can shrink and keep them.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak-seconds", type=float, default=None,
                     help="length of the fault lab's random soak (default: CLUSTERD_SOAK_SECONDS or 60)")


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


def run_confmerge(*args: str | os.PathLike[str], cwd: Path | None = None, env: dict[str, str] | None = None,
                  timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m confmerge`` as a user would, in a real process."""
    return subprocess.run(
        [sys.executable, "-m", "confmerge", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=timeout,
        env={**os.environ, **(env or {})},
    )
