"""Control messages: typed values sent as length-prefixed JSON frames, size-limited and checked.

A frame is a 4-byte big-endian length and that many bytes of a UTF-8 JSON
object with a ``type``. Each message type is a frozen dataclass below; its
fields (and their types) are the whole protocol. Anything else (too long,
not JSON, an unknown type, a field missing or of the wrong type) is a
:class:`BadMessage`, which the daemon logs and drops; it never ends the
daemon. Fields a peer sends that a type does not name are ignored, so a
newer peer can add some.
"""

from __future__ import annotations

import json
import struct
import types
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Protocol, Union, get_args, get_origin, get_type_hints

MAX_FRAME = 16 * 1024 * 1024
"""Large enough for the cluster-wide part of a 100,000-line backup with its base."""

_LENGTH = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Peer to peer, every heartbeat interval and on every change of view: what this server knows and holds."""

    type: ClassVar[str] = "heartbeat"
    id: int
    epoch: int
    primary: int | None
    uptime: float
    sees: list[int]
    head: str
    """The id of the generation this server holds ("" for none)."""
    generation: int
    """Its number (the height in the history), for people."""
    digest: str
    """Of the cluster-wide content of the live backup, in normal form."""
    state: str
    inbox: str
    behind: list[int] = field(default_factory=list)
    """From a primary: the servers up that do not hold its head in sync (what a sparse cluster's members know of the others)."""
    version: str = ""
    """The software version this server runs ("" unknown; ``clusterd.updates``); older servers send none."""
    both_ways: bool = False
    """This server reads heartbeats and requests on the connections it opened too (``clusterd.links``): a peer may
    answer it over them. An older server reads only replies there, and is always dialled back."""


@dataclass(frozen=True, slots=True)
class Probe:
    """Asked by a server that was away (paused): the peer's view now, answered with a heartbeat's fields."""

    type: ClassVar[str] = "probe"
    rid: int


@dataclass(frozen=True, slots=True)
class Apply:
    """The primary to a secondary: apply the generation copied to ``name`` in the inbox."""

    type: ClassVar[str] = "apply"
    rid: int
    epoch: int
    generation: dict[str, Any]
    lineage: list[dict[str, Any]]
    """Its ancestors' metadata, newest first: the secondary checks that its own head is among them."""
    name: str
    base: str = ""
    """With ``delta``: the kept generation the text is rebuilt from (nothing was copied to the inbox)."""
    delta: list[Any] = field(default_factory=list)
    """The text as an edit of ``base``'s (:func:`clusterd.transfer.delta`); empty: the text is the file ``name``."""
    live: bool = False
    """The text is the cluster-wide part of the secondary's live backup, which has the generation's digest: nothing
    was copied (a server that joins holding the unified configuration already, as the guide's procedure leaves it)."""


@dataclass(frozen=True, slots=True)
class Head:
    """The primary to a peer: send the generation you hold, its text and its lineage."""

    type: ClassVar[str] = "head"
    rid: int


@dataclass(frozen=True, slots=True)
class Text:
    """The text of one generation by id (a merge base the asker does not keep)."""

    type: ClassVar[str] = "text"
    rid: int
    id: str


@dataclass(frozen=True, slots=True)
class Fetch:
    """The whole live backup (``clusterd diff``)."""

    type: ClassVar[str] = "fetch"
    rid: int


@dataclass(frozen=True, slots=True)
class Reply:
    type: ClassVar[str] = "reply"
    rid: int
    ok: bool
    error: str = ""
    body: dict[str, Any] = field(default_factory=dict)


# the local socket (clusterctl-style requests from the CLI)

@dataclass(frozen=True, slots=True)
class Status:
    type: ClassVar[str] = "status"


@dataclass(frozen=True, slots=True)
class Reload:
    type: ClassVar[str] = "reload"


@dataclass(frozen=True, slots=True)
class Sync:
    type: ClassVar[str] = "sync"


@dataclass(frozen=True, slots=True)
class Diff:
    type: ClassVar[str] = "diff"
    peer: int | None


# safe changes (clusterd/changes.py): asked on any server, made by the primary (a peer's request over the link)

@dataclass(frozen=True, slots=True)
class Load:
    """Make a backup's cluster-wide sections the cluster's (``dry_run``: only the diff); ``confirm``: seconds to confirm."""

    type: ClassVar[str] = "load"
    text: str
    name: str
    confirm: float | None = None
    dry_run: bool = False
    on: int = -1
    """The server the operator asked on."""
    rid: int = 0


@dataclass(frozen=True, slots=True)
class Confirm:
    """Keep the provisional load."""

    type: ClassVar[str] = "confirm"
    on: int = -1
    rid: int = 0


@dataclass(frozen=True, slots=True)
class Rollback:
    """A new generation with an older one's text: ``steps`` back along first parents, or the one named ``to``."""

    type: ClassVar[str] = "rollback"
    steps: int | None = None
    to: str | None = None
    on: int = -1
    rid: int = 0


@dataclass(frozen=True, slots=True)
class Generations:
    """The local socket: the history held here, newest first."""

    type: ClassVar[str] = "generations"


@dataclass(frozen=True, slots=True)
class Show:
    """The local socket: one generation's text, by number or id prefix."""

    type: ClassVar[str] = "show"
    ref: str


@dataclass(frozen=True, slots=True)
class Compare:
    """The local socket: the cluster-scope diff between two generations."""

    type: ClassVar[str] = "compare"
    old: str
    new: str


# common visibility (clusterd.throughput)

@dataclass(frozen=True, slots=True)
class Visibility:
    """Peer to peer, once a second: the sender's throughput samples not sent yet on this connection (all on a new one)."""

    type: ClassVar[str] = "visibility"
    id: int
    hostname: str
    version: str
    web: str
    """The URL of the sender's web GUI ("" if it serves none)."""
    interfaces: list[str]
    problem: str
    """Why the sender has no samples ("" when it has)."""
    seconds: list[list[Any]]
    """[time, downlink, uplink]: wall-clock second, bits per second."""
    minutes: list[list[Any]]
    """[time, downlink, uplink]: one-minute averages older than the hour the seconds cover."""


@dataclass(frozen=True, slots=True)
class Throughput:
    """The local socket: ``clusterd throughput`` and ``clusterd top``."""

    type: ClassVar[str] = "throughput"
    server: int | None
    seconds: int


@dataclass(frozen=True, slots=True)
class Board:
    """A secondary of a sparse cluster to the primary: throughput as the primary holds it (every server sends it there)."""

    type: ClassVar[str] = "board"
    rid: int
    server: int | None
    seconds: int



# software updates (clusterd.updates)

@dataclass(frozen=True, slots=True)
class PackageArrived:
    """The coordinator to a peer: a package was copied to ``name`` in the inbox; check it and keep it."""

    type: ClassVar[str] = "package"
    rid: int
    name: str
    manifest: str
    """The manifest's text, as signed."""
    signature: str
    """The detached signature of the manifest ("" for none)."""


@dataclass(frozen=True, slots=True)
class Install:
    """The coordinator to a server: run the update command for a package it keeps, once per roll-out."""

    type: ClassVar[str] = "install"
    rid: int
    rollout: str
    sha256: str


@dataclass(frozen=True, slots=True)
class Installed:
    """How a roll-out's install went here: running, its exit status, the last lines of its output, the version now."""

    type: ClassVar[str] = "installed"
    rid: int
    rollout: str


@dataclass(frozen=True, slots=True)
class Rollout:
    """A roll-out's record, kept by every server (an empty record asks for the one the server keeps)."""

    type: ClassVar[str] = "rollout"
    rid: int
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Update:
    """Local: ``clusterd update``: ``start`` (a package at ``path``), ``status``, ``resume``, ``abort``."""

    type: ClassVar[str] = "update"
    action: str
    path: str = ""
    parallel: int = 1
    dry_run: bool = False


UpdateRequest = PackageArrived | Install | Installed | Rollout

Message = (Heartbeat | Probe | Apply | Head | Text | Fetch | Reply | Status | Reload | Sync | Diff
           | Load | Confirm | Rollback | Generations | Show | Compare
           | Visibility | Throughput | Board
           | PackageArrived | Install | Installed | Rollout | Update)
Request = Probe | Apply | Head | Text | Fetch | Load | Confirm | Rollback | Board | UpdateRequest

TYPES: dict[str, type] = {cls.type: cls for cls in (Heartbeat, Probe, Apply, Head, Text, Fetch, Reply,
                                                     Status, Reload, Sync, Diff,
                                                     Load, Confirm, Rollback, Generations, Show, Compare,
                                                     Visibility, Throughput, Board,
                                                     PackageArrived, Install, Installed, Rollout, Update)}


def _allowed(annotation: Any) -> tuple[type, ...]:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return tuple(t for a in get_args(annotation) for t in _allowed(a))
    if annotation is None or annotation is type(None):
        return (type(None),)
    if origin is not None:
        return (origin,)
    if annotation is float:
        return (int, float)
    return (annotation,)


_HINTS: dict[type, dict[str, tuple[type, ...]]] = {
    cls: {name: _allowed(hint) for name, hint in get_type_hints(cls).items() if name != "type"} for cls in TYPES.values()
}


class BadMessage(ValueError):
    """A frame the protocol refuses; the message says why, for the log."""


class Reader(Protocol):
    async def readexactly(self, n: int) -> bytes: ...


def as_data(message: Message) -> dict[str, Any]:
    return {"type": message.type, **{f.name: getattr(message, f.name) for f in fields(message)}}


def encode(message: Message | dict[str, Any]) -> bytes:
    """A frame; a plain dict (the CLI's requests) is checked as :func:`from_data` would check it."""
    if isinstance(message, dict):
        message = from_data(message)
    body = json.dumps(as_data(message), separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_FRAME:
        raise BadMessage(f"message of {len(body)} bytes is over the {MAX_FRAME}-byte limit")
    return _LENGTH.pack(len(body)) + body


def decode(body: bytes) -> Message:
    try:
        data = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as error:  # also an integer over the digit limit, or nesting too deep
        raise BadMessage(f"not a JSON message ({_shorten(str(error))})") from None
    return from_data(data)


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def from_data(data: Any) -> Message:
    if not isinstance(data, dict):
        raise BadMessage("a message is a JSON object")
    kind = data.get("type")
    cls = TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise BadMessage(f"unknown message type {kind!r}")
    values = {}
    for f in fields(cls):
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise BadMessage(f"{kind} without {f.name!r}")
            continue
        value = data[f.name]
        allowed = _HINTS[cls][f.name]
        if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
            raise BadMessage(f"{kind}: {f.name} has the wrong type")
        values[f.name] = value
    return cls(**values)


async def read_frame(reader: Reader, limit: int = MAX_FRAME) -> Message:
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
