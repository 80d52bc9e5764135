"""One ``confmerge serve`` for the web tests of a session (a real process on 127.0.0.1, HTTPS, a token)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from .server import Client, Server, start


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium through Playwright (never ``playwright install``), one per module: Playwright's sync API
    holds an event loop in this thread while it runs, so two at once fail, and tests after it could not asyncio.run."""
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (/usr/bin/chromium; .ci/run installs it with apt-get)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start(tmp_path_factory.mktemp("serve"), "--max-upload-mb", "1", "--max-files", "4")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def client(server: Server) -> Client:
    return Client(server)


@pytest.fixture
def anonymous(server: Server) -> Client:
    return Client(server, bearer=False)


def read(path: Path) -> tuple[str, bytes]:
    return path.name, path.read_bytes()
