"""Talking to a running daemon over its local socket: what ``clusterd`` commands, the demo and the tests use."""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

from .config import ClusterConfig
from .protocol import encode


class Trouble(Exception):
    """A plain one-line reason to stop with exit status 2."""


def ask(config: ClusterConfig, message: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """One request over the daemon's local socket."""
    return exchange(config, message, timeout)[0]


def exchange(config: ClusterConfig, message: dict[str, Any], timeout: float) -> tuple[dict[str, Any], int]:
    """The reply and the answering daemon's pid (from the socket's peer credentials)."""
    path = config.socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            pid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[0]
            sock.sendall(encode(message))
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except FileNotFoundError:
        raise Trouble(f"clusterd is not running for {config.path} (no socket {path}); start it with clusterd run") from None
    except ConnectionRefusedError:
        raise Trouble(f"clusterd is not running for {config.path} (stale socket {path})") from None
    except PermissionError:
        raise Trouble(f"permission denied on {path}: run as the daemon's user") from None
    except (socket.timeout, TimeoutError):
        raise Trouble(f"clusterd did not answer in {timeout:.0f} s") from None
    except OSError as error:
        raise Trouble(f"lost the connection to clusterd ({error.strerror or error}); is it restarting?") from None
    try:
        return json.loads(data), pid
    except json.JSONDecodeError:
        raise Trouble("clusterd gave no answer") from None
