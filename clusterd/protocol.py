"""Control messages: length-prefixed JSON frames, size-limited and checked against a schema.

A frame is a 4-byte big-endian length and that many bytes of a UTF-8 JSON
object with a ``type``. The schema below is the whole protocol: each message
type and the fields it must carry. Anything else (too long, not JSON, an
unknown type, a field missing or of the wrong type) is a :class:`BadMessage`,
which the daemon logs and drops; it never ends the daemon.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Protocol

MAX_FRAME = 16 * 1024 * 1024
"""Large enough for the cluster-wide part of a 100,000-line backup sent as an edit."""

_LENGTH = struct.Struct(">I")

_int, _str, _bool, _num = int, str, bool, (int, float)
_opt_int = (int, type(None))

SCHEMA: dict[str, dict[str, Any]] = {
    # peer to peer, every heartbeat interval and on every change of view
    "heartbeat": {"id": _int, "epoch": _int, "primary": _opt_int, "uptime": _num, "sees": list,
                  "generation": _int, "digest": _str, "state": _str, "edit": _bool, "inbox": _str},
    # requests; each carries a request id ``rid`` answered by one ``reply``
    "apply": {"rid": _int, "epoch": _int, "generation": _int, "generation_epoch": _int,
              "sha256": _str, "digest": _str, "name": _str},
    "edit": {"rid": _int, "base": _int, "base_epoch": _int, "text": _str},
    "fetch": {"rid": _int},
    "reply": {"rid": _int, "ok": _bool},
    # the local socket (clusterctl-style requests from the CLI)
    "status": {},
    "reload": {},
    "sync": {},
    "diff": {"peer": _opt_int},
}


class BadMessage(ValueError):
    """A frame the protocol refuses; the message says why, for the log."""


class Reader(Protocol):
    async def readexactly(self, n: int) -> bytes: ...


def encode(message: dict[str, Any]) -> bytes:
    check(message)
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_FRAME:
        raise BadMessage(f"message of {len(body)} bytes is over the {MAX_FRAME}-byte limit")
    return _LENGTH.pack(len(body)) + body


def decode(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadMessage(f"not a JSON message ({error})") from None
    check(message)
    return message


def check(message: Any) -> None:
    if not isinstance(message, dict):
        raise BadMessage("a message is a JSON object")
    kind = message.get("type")
    fields = SCHEMA.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise BadMessage(f"unknown message type {kind!r}")
    for name, expected in fields.items():
        if name not in message:
            raise BadMessage(f"{kind} without {name!r}")
        value = message[name]
        if isinstance(value, bool) and expected is not _bool and expected != (int, float):
            raise BadMessage(f"{kind}: {name} has the wrong type")
        if not isinstance(value, expected):
            raise BadMessage(f"{kind}: {name} has the wrong type")


async def read_frame(reader: Reader, limit: int = MAX_FRAME) -> dict[str, Any]:
    """The next message; :class:`BadMessage` for a bad one (the stream stays usable), EOF as ``IncompleteReadError``.

    An oversized frame is refused by its length alone: its body is never read
    into memory, and the connection cannot be resynchronised, so the caller closes it.
    """
    header = await reader.readexactly(_LENGTH.size)
    (length,) = _LENGTH.unpack(header)
    if length > limit:
        raise OversizedFrame(f"frame of {length} bytes is over the {limit}-byte limit")
    return decode(await reader.readexactly(length))


class OversizedFrame(BadMessage):
    """A length over the limit: the rest of the stream cannot be trusted."""
