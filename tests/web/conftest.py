"""One ``confmerge serve`` for the web tests of a session (a real process on 127.0.0.1, HTTPS, a token)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from .server import Client, Server, start


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
