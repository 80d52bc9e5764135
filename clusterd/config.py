"""``cluster.yaml``: this server, its peers and the timing, read and edited with comments kept.

The file is the operator's: every edit the CLI makes (``add-peer``,
``set-self-address``, ``set-id``) goes through ruamel.yaml's round-trip mode,
so comments and key order survive, and is written atomically only after the
edited document validates. Relative paths are relative to the file.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any, Callable

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from confmerge import ConfError, Diagnostic, write_atomic

PORT_BASE = 63500
"""The guide's control ports: a BQN listens on 63500 + its id."""


@dataclass(frozen=True, slots=True)
class Peer:
    """Another server of the cluster as the guide's dialog defines it: id, address, SSH port; plus its trusted key."""

    id: int
    address: str
    ssh_port: int = 22
    key: str | None = None
    """The peer's control key (OpenSSH public key line), recorded by ``add-peer``; None: not trusted yet."""


@dataclass(frozen=True, slots=True)
class Timing:
    heartbeat: float = 0.5
    missed: int = 3
    hold: float = 3.0
    drift: float = 60.0

    @property
    def detection(self) -> float:
        """Silence after which a peer is down."""
        return self.heartbeat * self.missed

    @property
    def patience(self) -> float:
        """The detection time, at least a second: what a connection, a handshake, a probe or a keepalive waits."""
        return max(self.detection, 1.0)


@dataclass(frozen=True, slots=True)
class SshSettings:
    user: str = field(default_factory=getpass.getuser)
    identity: Path | None = None
    known_hosts: Path | None = None
    serve: bool = False
    """Run an embedded SFTP-only SSH server on address:ssh-port (tests and the demo; a BQN has sshd)."""


@dataclass(frozen=True, slots=True)
class WebSettings:
    """The web GUI and HTTP API served by the daemon (docs/web.md); off unless the cluster file has a ``web`` section."""

    host: str
    port: int = 8443
    token_file: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    group: str | None = None
    """Members of this local group log in with their system password (PAM) as admins."""
    read_only_group: str | None = None
    """Members of this one (and not of ``group``) log in read-only."""


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    path: Path
    id: int
    address: str
    state_dir: Path
    backup: Path
    ssh_port: int = 22
    port_base: int = PORT_BASE
    apply_command: str | None = None
    ssh: SshSettings = field(default_factory=SshSettings)
    timing: Timing = field(default_factory=Timing)
    peers: tuple[Peer, ...] = ()
    # software updates (clusterd.updates)
    update_command: str | None = None
    version_command: str | None = None
    update_signing_key: str | None = None
    update_timeout: float = 600.0
    web: WebSettings | None = None
    interfaces: tuple[str, ...] | None = None
    """``visibility.interfaces``: the interfaces whose traffic is this server's throughput (None: its wires')."""

    @property
    def control_port(self) -> int:
        return self.port_base + self.id

    def port_of(self, peer: Peer) -> int:
        return self.port_base + peer.id

    @property
    def identity(self) -> Path:
        return self.ssh.identity or self.state_dir / "node_key"

    @property
    def known_hosts(self) -> Path:
        return self.ssh.known_hosts or self.state_dir / "known_hosts"

    @property
    def socket(self) -> Path:
        return self.state_dir / "clusterd.sock"

    def peer(self, id: int) -> Peer | None:
        return next((p for p in self.peers if p.id == id), None)


# ---------------------------------------------------------------------------
# Reading


def _yaml() -> YAML:
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


class _Reader:
    """Turns the YAML document into a :class:`ClusterConfig`, collecting every problem with its line."""

    def __init__(self, path: Path, document: Any) -> None:
        self.path = path
        self.problems: list[Diagnostic] = []
        self.document = document

    def fail(self, where: tuple[int, int], message: str) -> None:
        self.problems.append(Diagnostic("error", where[0] + 1, where[1] + 1, message, str(self.path)))

    @staticmethod
    def at(mapping: Any, key: Any) -> tuple[int, int]:
        try:
            line, column = mapping.lc.key(key)
            return (line, column)
        except (AttributeError, KeyError, TypeError):
            try:
                return (mapping.lc.line, mapping.lc.col)
            except AttributeError:
                return (0, 0)

    def get(self, mapping: Any, key: str, kind: Callable[[Any], Any] | type, default: Any, what: str,
            check: Callable[[Any], str | None] | None = None) -> Any:
        if not isinstance(mapping, dict) or key not in mapping or mapping[key] is None:
            return default
        value = mapping[key]
        expected = kind if isinstance(kind, type) else None
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is not None and (not isinstance(value, expected) or isinstance(value, bool) and expected is not bool):
            self.fail(self.at(mapping, key), f"{what} must be {_names[expected]}, not {value!r}")
            return default
        problem = check(value) if check else None
        if problem:
            self.fail(self.at(mapping, key), f"{what} {problem}")
            return default
        return value

    def path_of(self, value: str | None) -> Path | None:
        if value is None:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.path.parent / path)

    def unknown(self, mapping: Any, known: set[str], where: str) -> None:
        for key in mapping:
            if key not in known:
                self.fail(self.at(mapping, key), f"unknown setting {key!r} in {where} (known: {', '.join(sorted(known))})")

    def read(self) -> ClusterConfig:
        doc = self.document
        if not isinstance(doc, dict):
            self.fail((0, 0), "a cluster file is a mapping (id, address, peers, ...); see docs/clusterd.md")
            raise ConfError(self.problems)
        self.unknown(doc, set(_TOP), "the cluster file")
        for required in ("id", "address"):
            if required not in doc:
                self.fail((0, 0), f"missing setting {required!r}")
        node_id = self.get(doc, "id", int, 0, "id", _valid_id)
        address = self.get(doc, "address", str, "", "address", _nonempty)
        ssh_port = self.get(doc, "ssh-port", int, 22, "ssh-port", _valid_port)
        port_base = self.get(doc, "port-base", int, PORT_BASE, "port-base",
                             lambda v: None if 1 <= v <= 65535 - 255 else "must leave room for 256 ids below 65536")
        state_dir = self.path_of(self.get(doc, "state-dir", str, "state", "state-dir", _nonempty))
        backup = self.path_of(self.get(doc, "backup", str, "bqn.conf", "backup", _nonempty))
        apply_command = self.get(doc, "apply-command", str, None, "apply-command") or None

        ssh_doc = doc.get("ssh") or {}
        if not isinstance(ssh_doc, dict):
            self.fail(self.at(doc, "ssh"), "ssh must be a mapping (user, identity, known-hosts, serve)")
            ssh_doc = {}
        self.unknown(ssh_doc, {"user", "identity", "known-hosts", "serve"}, "ssh")
        ssh = SshSettings(
            user=self.get(ssh_doc, "user", str, getpass.getuser(), "ssh.user", _nonempty),
            identity=self.path_of(self.get(ssh_doc, "identity", str, None, "ssh.identity")),
            known_hosts=self.path_of(self.get(ssh_doc, "known-hosts", str, None, "ssh.known-hosts")),
            serve=self.get(ssh_doc, "serve", bool, False, "ssh.serve"),
        )

        timing_doc = doc.get("timing") or {}
        if not isinstance(timing_doc, dict):
            self.fail(self.at(doc, "timing"), "timing must be a mapping (heartbeat, missed, hold, drift)")
            timing_doc = {}
        self.unknown(timing_doc, {"heartbeat", "missed", "hold", "drift"}, "timing")
        positive = (lambda v: None if v > 0 else "must be more than 0")
        timing = Timing(
            heartbeat=self.get(timing_doc, "heartbeat", float, 0.5, "timing.heartbeat (seconds)", positive),
            missed=self.get(timing_doc, "missed", int, 3, "timing.missed (heartbeats)", positive),
            hold=self.get(timing_doc, "hold", float, 3.0, "timing.hold (seconds)",
                          lambda v: None if v >= 0 else "must not be negative"),
            drift=self.get(timing_doc, "drift", float, 60.0, "timing.drift (seconds)", positive),
        )

        peers: list[Peer] = []
        peers_doc = doc.get("peers") or []
        if not isinstance(peers_doc, list):
            self.fail(self.at(doc, "peers"), "peers must be a list of {id, address, ssh-port, key}")
            peers_doc = []
        seen: dict[int, int] = {}
        for index, item in enumerate(peers_doc):
            where = _item_at(peers_doc, index)
            if not isinstance(item, dict):
                self.fail(where, "a peer is a mapping: id, address, ssh-port, key")
                continue
            self.unknown(item, {"id", "address", "ssh-port", "key"}, "a peer")
            if "id" not in item or "address" not in item:
                self.fail(where, "a peer needs an id and an address")
                continue
            peer_id = self.get(item, "id", int, None, "peer id", _valid_id)
            peer = Peer(
                id=peer_id if peer_id is not None else -1,
                address=self.get(item, "address", str, "", "peer address", _nonempty),
                ssh_port=self.get(item, "ssh-port", int, 22, "peer ssh-port", _valid_port),
                key=self.get(item, "key", str, None, "peer key", _public_key),
            )
            if peer_id is None:
                continue
            if peer_id == node_id:
                self.fail(self.at(item, "id"), f"peer id {peer_id} is this server's own id")
            elif peer_id in seen:
                self.fail(self.at(item, "id"), f"two peers have id {peer_id} (the other is on line {seen[peer_id] + 1})")
            seen.setdefault(peer_id, self.at(item, "id")[0])
            peers.append(peer)
        update_command = self.get(doc, "update-command", str, None, "update-command") or None
        version_command = self.get(doc, "version-command", str, None, "version-command") or None
        signing_key = self.get(doc, "update-signing-key", str, None, "update-signing-key", _public_key) or None
        update_timeout = self.get(doc, "update-timeout", float, 600.0, "update-timeout (seconds)",
                                  lambda v: None if v > 0 else "must be more than 0")
        web = self.web(doc, address)
        interfaces = self.interfaces(doc)
        if self.problems:
            raise ConfError(self.problems)
        assert state_dir is not None and backup is not None
        return ClusterConfig(
            path=self.path, id=node_id, address=address, ssh_port=ssh_port, port_base=port_base,
            state_dir=state_dir, backup=backup, apply_command=apply_command, ssh=ssh, timing=timing,
            peers=tuple(sorted(peers, key=lambda p: p.id)), web=web, interfaces=interfaces,
            update_command=update_command, version_command=version_command, update_signing_key=signing_key,
            update_timeout=update_timeout,
        )

    def web(self, doc: Any, address: str) -> WebSettings | None:
        """``web``: absent or ``enabled: false``, no web server; else ``listen`` (default: address:8443)."""
        if "web" not in doc:
            return None
        web_doc = doc.get("web") or {}
        if not isinstance(web_doc, dict):
            self.fail(self.at(doc, "web"), "web must be a mapping (enabled, listen, token-file, cert, key, group, "
                                           "read-only-group)")
            return None
        self.unknown(web_doc, {"enabled", "listen", "token-file", "cert", "key", "group", "read-only-group"}, "web")
        if not self.get(web_doc, "enabled", bool, True, "web.enabled"):
            return None
        listen = self.get(web_doc, "listen", str, f"{address}:8443", "web.listen", _listen)
        host, _, port = listen.rpartition(":")
        cert, key = (self.path_of(self.get(web_doc, name, str, None, f"web.{name}")) for name in ("cert", "key"))
        if (cert is None) != (key is None):
            self.fail(self.at(web_doc, "cert" if cert else "key"), "web.cert and web.key go together")
        group, read_only = (self.get(web_doc, name, str, None, f"web.{name}") for name in ("group", "read-only-group"))
        return WebSettings(host.strip("[]"), int(port), self.path_of(self.get(web_doc, "token-file", str, None,
                                                                               "web.token-file")), cert, key,
                           group, read_only)

    def interfaces(self, doc: Any) -> tuple[str, ...] | None:
        visibility = doc.get("visibility") or {}
        if not isinstance(visibility, dict):
            self.fail(self.at(doc, "visibility"), "visibility must be a mapping (interfaces)")
            return None
        self.unknown(visibility, {"interfaces"}, "visibility")
        names = visibility.get("interfaces")
        if names is None:
            return None
        if not isinstance(names, list) or not all(isinstance(n, str) and _interface_name(n) for n in names):
            self.fail(self.at(visibility, "interfaces"), "visibility.interfaces must be a list of interface names")
            return None
        return tuple(names)


_TOP = ("id", "address", "ssh-port", "port-base", "state-dir", "backup", "apply-command", "ssh", "timing", "peers",
        "web", "visibility",
        "update-command", "version-command", "update-signing-key", "update-timeout")
_names = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


def _item_at(seq: Any, index: int) -> tuple[int, int]:
    try:
        line, column = seq.lc.item(index)
        return (line, column)
    except (AttributeError, KeyError, TypeError):
        return (0, 0)


def _valid_id(value: int) -> str | None:
    return None if 0 <= value <= 255 else f"must be between 0 and 255 (the guide's ids), not {value}"


def _valid_port(value: int) -> str | None:
    return None if 1 <= value <= 65535 else f"must be a TCP port (1-65535), not {value}"


def _listen(value: str) -> str | None:
    import ipaddress

    host, _, port = value.rpartition(":")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return f"must be ADDRESS:PORT with an IP address, not {value!r}"
    return None if port.isdigit() and 1 <= int(port) <= 65535 else f"must end with a TCP port, not {value!r}"


def _interface_name(name: str) -> bool:
    """As the kernel allows: 1-15 characters, no slash, no whitespace, not . or .. (it names a /sys path)."""
    return 0 < len(name) <= 15 and name not in (".", "..") and not any(c == "/" or c.isspace() for c in name)


def _nonempty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _public_key(value: str) -> str | None:
    from .keys import parse_public_key

    try:
        parse_public_key(value)
    except ValueError as error:
        return f"is not an SSH public key ({error})"
    return None


def parse_document(text: str, path: Path) -> Any:
    try:
        return _yaml().load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfError([Diagnostic("error", line, column, f"not valid YAML: {error.problem or error}", str(path))]) from None
    except ValueError as error:
        line, column = _timestamp_at(text)
        raise ConfError([Diagnostic("error", line, column, f"not valid YAML: {error}", str(path))]) from None


def _timestamp_at(text: str) -> tuple[int, int]:
    """Where the timestamp is that the loader turns into an error without a mark (a 13th month, say)."""
    stack, seen = [_yaml().compose(text)], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:  # an alias is its anchor's node: each is looked at once
            continue
        seen.add(id(node))
        if node.tag == "tag:yaml.org,2002:timestamp":
            try:
                _yaml().load(node.value)
            except ValueError:
                return node.start_mark.line + 1, node.start_mark.column + 1
        if isinstance(node.value, list):
            stack.extend(reversed([part for item in node.value for part in (item if isinstance(item, tuple) else (item,))]))
    return 1, 1


def _plain(text: str) -> Any:
    """The document as plain values, through libyaml when ruamel.yaml.clib is there.

    A daemon reads its file at every start and reload; the round-trip loader is pure Python and
    takes 0.13 s of CPU for 256 peers, the safe one 0.02 s. It keeps no lines, so a file it
    cannot read, or that does not check, is read again the round-trip way for the diagnostics.
    """
    global _safe
    if _safe is None:
        _safe = YAML(typ="safe")
    return _safe.load(text)


_safe: YAML | None = None


def load(path: Path) -> ClusterConfig:
    """Read and check a cluster file; every problem is a :class:`ConfError` diagnostic with its line."""
    from confmerge import read_text

    path = Path(path)
    text = read_text(path)
    if "%YAML" not in text:  # a version directive: libyaml's reading may not be the round-trip loader's
        try:
            return _Reader(path.absolute(), _plain(text)).read()
        except (YAMLError, ConfError, ValueError):
            pass
    return _Reader(path.absolute(), parse_document(text, path)).read()


# ---------------------------------------------------------------------------
# Editing


def edit(path: Path, change: Callable[[CommentedMap], None]) -> ClusterConfig:
    """Apply ``change`` to the round-trip document and write it back if the result is valid; nothing else moves."""
    from confmerge import read_text

    path = Path(path)
    document = parse_document(read_text(path), path)
    if not isinstance(document, CommentedMap):
        raise ConfError([Diagnostic("error", 1, 1, "a cluster file is a mapping", str(path))])
    change(document)
    out = StringIO()
    _yaml().dump(document, out)
    text = out.getvalue()
    config = _Reader(path.absolute(), parse_document(text, path)).read()
    write_atomic(path, text)
    return config


def set_peer(document: CommentedMap, peer: Peer) -> None:
    """Add ``peer`` to ``peers``, or update the entry with its id in place (its comments stay)."""
    peers = document.get("peers")
    if not isinstance(peers, list) or not peers:
        peers = CommentedSeq()
        document["peers"] = peers
    entry = next((item for item in peers if isinstance(item, dict) and item.get("id") == peer.id), None)
    if entry is None:
        entry = CommentedMap()
        peers.append(entry)
    entry["id"] = peer.id
    entry["address"] = peer.address
    entry["ssh-port"] = peer.ssh_port
    if peer.key is not None:
        entry["key"] = peer.key


def remove_peer(document: CommentedMap, peer_id: int) -> bool:
    peers = document.get("peers")
    if not isinstance(peers, list):
        return False
    for index, item in enumerate(peers):
        if isinstance(item, dict) and item.get("id") == peer_id:
            del peers[index]
            return True
    return False


TEMPLATE = """\
# clusterd: this BQN server in a cluster (docs/clusterd.md).
# The lowest id that is up is the primary; control traffic is TCP on port-base + id.

# This server: its BQN id (0-255, unique in the cluster) and its address in the cluster
# (the guide's "IP Address for this BQN in cluster").
id: {id}
address: {address}
# The SSH port peers reach this server on (22, or what a NAT forwards).
ssh-port: {ssh_port}
port-base: {port_base}

# Where the daemon keeps its key, generations and socket; the live backup it unifies;
# and the command that loads a new backup into the server (empty: none).
state-dir: {state_dir}
backup: {backup}
apply-command: ""

ssh:
  user: {user}
  # identity: state-dir/node_key by default; known-hosts: state-dir/known_hosts.
  serve: false

timing:
  heartbeat: 0.5   # seconds between heartbeats
  missed: 3        # heartbeats missed before a peer is down
  hold: 3.0        # seconds a returning lower id waits before it takes the primary role back
  drift: 60        # seconds between full checks that every server holds the cluster's configuration

# The web GUI and HTTP API on this server (docs/web.md): HTTPS with a token (state-dir/web-token).
# Uncomment to serve it; it listens on exactly this address.
# web:
#   listen: {address}:8443
#   group: clusteradmin          # its members log in with their system password, as admins
#   read-only-group: clusterview # and these, read-only

# The interfaces whose traffic is this server's throughput (default: the access side of its wires).
# visibility:
#   interfaces: [en0o3]

# The other servers: id, address and SSH port (clusterd add-peer fills these in).
peers: []
"""
