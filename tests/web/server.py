"""A real ``confmerge serve`` process on 127.0.0.1 and a small HTTPS client that verifies its certificate."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import select
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    token: str
    state: Path
    lines: list[str]
    cert: Path | None = None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start(state: Path, *args: str, timeout: float = 30) -> Server:
    """Start ``confmerge serve --listen 127.0.0.1:0`` and wait (bounded) for the lines it prints at start."""
    process = subprocess.Popen(
        [sys.executable, "-m", "confmerge", "serve", "--listen", "127.0.0.1:0", "--state-dir", str(state), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    received = b""
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while b"\nopen: " not in b"\n" + received or not received.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, left))
        if not ready or left <= 0:
            process.kill()
            process.wait(timeout=10)
            raise AssertionError(f"confmerge serve did not start: {received!r}")
        chunk = os.read(process.stdout.fileno(), 65536)
        if not chunk:
            process.wait(timeout=10)
            raise AssertionError(f"confmerge serve exited {process.returncode}: {received!r} {process.stderr.read()!r}")  # type: ignore[union-attr]
        received += chunk
    lines = received.decode().splitlines()
    url = next(line.split()[-1] for line in lines if " listening on " in line)
    token = next(line for line in lines if line.startswith("open: ")).split("token=", 1)[1].split("&", 1)[0]
    cert = next((Path(line.split()[1]) for line in lines if line.startswith("certificate: ")), None)
    return Server(process, url, token, state, lines, cert)


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass
class Client:
    """Requests to one server; by default with its Bearer token. Cookies are kept when ``cookies`` is used."""

    server: Server
    bearer: bool = True
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, *, files: dict[str, list[tuple[str, bytes]]] | None = None,
                fields: dict[str, str] | None = None, body: Any = None, headers: dict[str, str] | None = None,
                form: dict[str, str] | None = None, raw: bytes | None = None) -> Response:
        parts = urlsplit(self.server.url)
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=str(self.server.cert))
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname, parts.port, context=context, timeout=30)
        else:
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        sent = dict(headers or {})
        if self.bearer:
            sent.setdefault("Authorization", f"Bearer {self.server.token}")
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data: bytes | None = None
        if files is not None or fields is not None:
            data, sent["Content-Type"] = multipart(files or {}, fields or {})
        elif form is not None:
            from urllib.parse import urlencode
            data, sent["Content-Type"] = urlencode(form).encode(), "application/x-www-form-urlencoded"
        elif body is not None:
            data, sent["Content-Type"] = json.dumps(body).encode(), "application/json"
        elif raw is not None:
            data, sent["Content-Type"] = raw, "application/json"
        try:
            connection.request(method, path, body=data, headers=sent)
            reply = connection.getresponse()
            response = Response(reply.status, reply.headers, reply.read())
        finally:
            connection.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if value in ("", '""'):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return response


def multipart(files: dict[str, list[tuple[str, bytes]]], fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = secrets.token_hex(16)
    out = bytearray()
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for name, items in files.items():
        for filename, content in items:
            out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    f'Content-Type: application/octet-stream\r\n\r\n').encode() + content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def raw(server: Server, data: bytes, timeout: float = 30) -> bytes:
    """Send ``data`` as it is (a request no well-behaved client would make) and return the whole answer."""
    import socket
    parts = urlsplit(server.url)
    sock: socket.socket = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    if parts.scheme == "https":
        sock = ssl.create_default_context(cafile=str(server.cert)).wrap_socket(sock, server_hostname=parts.hostname)
    with sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out
