"""The ``clusterd`` command: run the daemon, show the cluster, and the guide's dialogs as subcommands.

Exit status: 0 done, 1 a check or diff found something, 2 trouble (a bad
cluster file, no daemon to ask, a refused key), with the reason on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import asyncssh

from confmerge import PrintableFormatter, printable, run_program

from . import config as config_module
from . import keys
from .config import ClusterConfig, Peer
from .links import reason
from .protocol import encode

EXIT_OK, EXIT_FOUND, EXIT_TROUBLE = 0, 1, 2
KEY_TIMEOUT = 10.0
"""Seconds to read a peer's key in add-peer."""
DEFAULT_CONFIG = Path(os.environ.get("CLUSTERD_CONFIG", "/etc/clusterd/cluster.yaml"))


class Trouble(Exception):
    """A plain one-line reason to stop with exit status 2."""


_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None] = lambda p: None):
    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        _COMMANDS[name] = (help, arguments, run)
        return run
    return register


def _config(args: argparse.Namespace) -> ClusterConfig:
    if not Path(args.config).exists():
        raise Trouble(f"no cluster file {args.config}; make one with clusterd -c {args.config} init --id N "
                      "--address A, or name another with -c FILE (or $CLUSTERD_CONFIG)")
    return config_module.load(args.config)


# ---------------------------------------------------------------------------
# Talking to the running daemon


def ask(config: ClusterConfig, message: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """One request over the daemon's local socket."""
    path = config.socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
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
        return json.loads(data)
    except json.JSONDecodeError:
        raise Trouble("clusterd gave no answer") from None


def _reload(config: ClusterConfig) -> None:
    try:
        reply = ask(config, {"type": "reload"})
    except Trouble:
        print("clusterd is not running; the change takes effect when it starts")
        return
    if not reply.get("ok"):
        raise Trouble(f"the daemon refused the new cluster file: {reply.get('error')}")
    print("the running daemon " + ("restarts with it" if reply.get("restarting") else "picked it up"))


# ---------------------------------------------------------------------------
# Commands


def _init_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--id", type=int, required=True, help="this server's BQN id, 0-255 (the lowest id up is primary)")
    p.add_argument("--address", required=True, help="this server's address in the cluster")
    p.add_argument("--ssh-port", type=int, default=22, help="SSH port peers reach this server on (default 22)")
    p.add_argument("--port-base", type=int, default=config_module.PORT_BASE, help="control port of id 0 (default 63500)")
    p.add_argument("--backup", default="bqn.conf", help="this server's live backup (default: bqn.conf beside the file)")
    p.add_argument("--state-dir", help="key, generations and socket (default: /var/lib/clusterd for a cluster file "
                   "in /etc, else state beside the file)")
    p.add_argument("--force", action="store_true", help="replace an existing cluster file")


def _default_state_dir(config: Path) -> str:
    """A system install keeps state where systemd's StateDirectory puts it; anything else keeps it beside the file."""
    return "/var/lib/clusterd" if config.absolute().is_relative_to("/etc") else "state"


@command("init", "write a cluster file for this server and make its key", _init_arguments)
def init(args: argparse.Namespace) -> int:
    from confmerge import write_atomic

    path: Path = args.config
    if path.exists() and not args.force:
        raise Trouble(f"{path} exists; use --force to replace it, or edit it with add-peer / set-id")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = config_module.TEMPLATE.format(
        id=args.id, address=args.address, ssh_port=args.ssh_port, port_base=args.port_base,
        state_dir=args.state_dir or _default_state_dir(path), backup=args.backup, user=config_module.SshSettings().user,
    )
    config = config_module._Reader(path.absolute(), config_module.parse_document(text, path)).read()
    write_atomic(path, text)
    key = keys.load_or_create(config.identity)
    print(f"wrote {path}")
    print(f"this server's key ({config.identity}):")
    print(f"  {keys.public_line(key)}")
    print(f"  fingerprint {keys.fingerprint(key)}")
    print("peers trust it with clusterd add-peer; for transfers, add it to their SSH authorized keys")
    return EXIT_OK


@command("run", "run the daemon in the foreground (logs on stderr)")
def run(args: argparse.Namespace) -> int:
    from .daemon import serve

    config = _config(args)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter(f"%(asctime)s clusterd[{config.id}] %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    logging.getLogger("asyncssh").setLevel(logging.WARNING if args.verbose else logging.ERROR)
    try:
        asyncio.run(serve(args.config))
    except OSError as error:
        raise Trouble(f"cannot listen: {error.strerror or error}") from None
    return EXIT_OK


def _status_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


@command("status", "every server's role, heartbeat and sync state; the cluster's state and status", _status_arguments)
def status(args: argparse.Namespace) -> int:
    config = _config(args)
    reply = ask(config, {"type": "status"})
    data = reply["status"]
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        print()
        return EXIT_OK
    print(f"cluster: state {data['state']}, status {data['status']}  "
          f"(epoch {data['epoch']}, generation {data['generation']['number']}"
          f"{', sha256 ' + data['generation']['sha256'][:12] if data['generation']['sha256'] else ''})")
    print(f"  {'ID':>3}  {'ADDRESS':<16} {'ROLE':<10} {'UP':<5} {'HEARTBEAT':<10} {'GEN':>4}  {'DIGEST':<12}  SYNC")
    for s in data["servers"]:
        beat = "-" if s["this"] else ("never" if s["last_heartbeat"] is None else f"{s['last_heartbeat']:.1f} s ago")
        mark = "*" if s["this"] else " "
        print(printable(f"{mark} {s['id']:>3}  {s['address']:<16} {s['role']:<10} {'up' if s['up'] else 'down':<5} "
                        f"{beat:<10} {s['generation']:>4}  {s['digest'][:12]:<12}  {s['sync']}"
                        + (f" ({s['error']})" if s.get("error") else ""), one_line=True))
    for c in data["conflicts"][-5:]:
        print(printable(f"conflict from server {c['from']}: {c['section']}"
                        f"{' / ' + c['statement'] if c['statement'] else ''}: kept {c['chosen']!r}, not {c['edit']!r}",
                        one_line=True))
    return EXIT_OK


def _add_peer_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--id", type=int, required=True, help="the peer's BQN id")
    p.add_argument("--address", required=True, help="the peer's address (public address behind NAT)")
    p.add_argument("--ssh-port", type=int, default=22, help="the peer's SSH port (default 22, or the NAT's)")
    trust = p.add_mutually_exclusive_group()
    trust.add_argument("--fingerprint", help="the peer key's expected SHA256 fingerprint (from clusterd init there)")
    trust.add_argument("--key", help="the peer's public key line, when it cannot be reached now")
    trust.add_argument("--yes", action="store_true", help="trust the keys shown without asking")
    p.add_argument("--ssh-fingerprint", help="the SSH host key's expected SHA256 fingerprint (ssh-keygen -lf on "
                   "the peer's host key); without it the key is recorded on first use, as ssh-keyscan would")


def _confirm(question: str, args: argparse.Namespace, fingerprint: str) -> None:
    if args.fingerprint:
        if args.fingerprint.strip() != fingerprint:
            raise Trouble(f"the key offered has fingerprint {fingerprint}, not {args.fingerprint}; not trusted")
        return
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise Trouble("to trust this key, pass --fingerprint (checked) or --yes")
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        raise Trouble("not trusted; nothing changed")


@command("add-peer", "trust a peer and add it (the guide's \"Add BQN to a cluster\" dialog)", _add_peer_arguments)
def add_peer(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.id == config.id:
        raise Trouble(f"{args.id} is this server's own id")
    if not 0 <= args.id <= 255:
        raise Trouble(f"a BQN id is between 0 and 255, not {args.id}")
    if args.key:
        key_line = keys.public_line(keys.parse_public_key(args.key)) if _valid_key(args.key) else None
        if key_line is None:
            raise Trouble("--key is not an SSH public key line")
    else:
        port = config.port_base + args.id
        try:
            key = asyncio.run(keys.server_host_key(args.address, port, KEY_TIMEOUT))
        except (OSError, asyncssh.Error, TimeoutError) as error:
            raise Trouble(f"cannot read the control key at {args.address}:{port} ({reason(error)}); "
                          "is clusterd running there? (or pass --key)") from None
        fingerprint = keys.fingerprint(key)
        print(f"server {args.id} at {args.address}:{port} has key {fingerprint}")
        _confirm(f"Trust server {args.id}?", args, fingerprint)
        key_line = keys.public_line(key)
    try:
        ssh_key = asyncio.run(keys.server_host_key(args.address, args.ssh_port, KEY_TIMEOUT))
    except (OSError, asyncssh.Error, TimeoutError) as error:
        ssh_key = None
        print(f"warning: cannot read the SSH host key at {args.address}:{args.ssh_port} "
              f"({reason(error)}); transfers to it fail until it is in {config.known_hosts}",
              file=sys.stderr)
    if ssh_key is not None:
        ssh_fingerprint = keys.fingerprint(ssh_key)
        if args.ssh_fingerprint and args.ssh_fingerprint.strip() != ssh_fingerprint:
            raise Trouble(f"the SSH server {args.address}:{args.ssh_port} offers host key {ssh_fingerprint}, "
                          f"not {args.ssh_fingerprint}; nothing recorded")
        keys.add_known_host(config.known_hosts, args.address, args.ssh_port, ssh_key)
        print(f"its SSH server {args.address}:{args.ssh_port} has host key {ssh_fingerprint}"
              f"{' (as given)' if args.ssh_fingerprint else ''}; recorded in {config.known_hosts}")
    config_module.edit(args.config, lambda doc: config_module.set_peer(
        doc, Peer(args.id, args.address, args.ssh_port, key_line)))
    print(f"added server {args.id} ({args.address}, ssh port {args.ssh_port}) to {args.config}")
    _reload(config)
    return EXIT_OK


def _valid_key(line: str) -> bool:
    try:
        keys.parse_public_key(line)
        return True
    except ValueError:
        return False


def _set_address_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("address", help="this server's address in the cluster")


@command("set-self-address", "this server's address in the cluster (the dialog's \"IP Address for this BQN\")",
         _set_address_arguments)
def set_self_address(args: argparse.Namespace) -> int:
    config_module.edit(args.config, lambda doc: doc.__setitem__("address", args.address))
    print(f"this server's cluster address is {args.address}")
    _reload(_config(args))
    return EXIT_OK


def _set_id_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", type=int, help="the new BQN id, 0-255, unique in the cluster")


@command("set-id", "change this server's BQN id (takes effect by reloading the daemon)", _set_id_arguments)
def set_id(args: argparse.Namespace) -> int:
    config = _config(args)
    holder = config.peer(args.id)
    if holder is not None:
        raise Trouble(f"id {args.id} belongs to a peer ({holder.address}); ids are unique in a cluster")
    config_module.edit(args.config, lambda doc: doc.__setitem__("id", args.id))
    print(f"this server's id is {args.id}; its control port is {config.port_base + args.id}")
    _reload(config)
    return EXIT_OK


def _check_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--peer", type=int, help="check this peer only")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds per probe (default 3)")


@command("check", "the guide's connectivity procedure for every peer: control port, SSH, keys, round trips",
         _check_arguments)
def check(args: argparse.Namespace) -> int:
    from .check import check_peer

    config = _config(args)
    peers = [p for p in config.peers if args.peer is None or p.id == args.peer]
    if not peers:
        raise Trouble("no such peer" if args.peer is not None else "no peers in the cluster file yet (clusterd add-peer)")
    problems = 0
    for peer in peers:
        report = asyncio.run(check_peer(config, peer, args.timeout))
        print(f"server {peer.id} ({peer.address}):")
        for line in report.lines:
            print(printable(f"  {line}", one_line=True))
        print(f"  verdict: {report.verdict}")
        problems += not report.ok
    return EXIT_FOUND if problems else EXIT_OK


def _diff_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("peer", type=int, nargs="?", help="one server's id (default: every secondary)")


@command("diff", "what each server's cluster-wide sections would gain or lose from the cluster's configuration",
         _diff_arguments)
def diff(args: argparse.Namespace) -> int:
    reply = ask(_config(args), {"type": "diff", "peer": args.peer})
    if not reply.get("ok"):
        raise Trouble(str(reply.get("error")))
    found = 0
    for item in reply["diffs"]:
        print(f"server {item['server']} against the cluster (primary {reply['primary']}):")
        sys.stdout.write("".join(f"  {printable(line, one_line=True)}\n" for line in item["text"].splitlines()))
        found += item["differences"]
    return EXIT_FOUND if found else EXIT_OK


@command("sync", "on the primary: make a new generation now and send it to every secondary")
def sync(args: argparse.Namespace) -> int:
    reply = ask(_config(args), {"type": "sync"})
    if not reply.get("ok"):
        raise Trouble(str(reply.get("error")))
    print(f"generation {reply['generation']} is on its way to every secondary (clusterd status shows it arrive)")
    return EXIT_OK


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep", type=Path, help="keep the demo's files in this directory")


@command("demo", "a three-server cluster on 127.0.0.1-3 from the fixtures: unify, edit, fail over, stop",
         _demo_arguments)
def demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.keep)


# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clusterd", description="Cluster daemon for BQN servers: membership, "
                                     "primary election and distribution of the unified configuration.")
    parser.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG,
                        help=f"the cluster file (default {DEFAULT_CONFIG}, or $CLUSTERD_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help, arguments, run_command) in _COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help)
        arguments(p)
        p.set_defaults(run=run_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_program(build_parser, argv, _run)


def _run(args: argparse.Namespace) -> int:
    try:
        return args.run(args)
    except Trouble as error:
        print(printable(f"clusterd {args.command}: {error}"), file=sys.stderr)
        return EXIT_TROUBLE
