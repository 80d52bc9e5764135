"""The ``clusterd`` command: run the daemon, show the cluster, and the guide's dialogs as subcommands.

Exit status: 0 done, 1 a check or diff found something, 2 trouble (a bad
cluster file, no daemon to ask, a refused key), with the reason on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import asyncssh

from confmerge import PrintableFormatter, printable, run_program

from . import __version__, keys
from . import config as config_module
from .client import Trouble, ask
from .client import exchange as _exchange
from .config import ClusterConfig, Peer
from .links import reason

EXIT_OK, EXIT_FOUND, EXIT_TROUBLE = 0, 1, 2
KEY_TIMEOUT = 10.0
"""Seconds to read a peer's key in add-peer."""
DEFAULT_CONFIG = Path(os.environ.get("CLUSTERD_CONFIG", "/etc/clusterd/cluster.yaml"))


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
    _ip(args.address, "--address")
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
    try:
        _, pid = _exchange(config, {"type": "status"}, 5.0)
    except Trouble:
        pass
    else:
        raise Trouble(f"clusterd is already running for {config.path} (pid {pid}); stop it first "
                      "(systemctl stop clusterd, or kill it), or name another cluster file with -c")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter(f"%(asctime)s clusterd[{config.id}] %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    logging.getLogger("asyncssh").setLevel(logging.WARNING if args.verbose else logging.ERROR)
    try:
        asyncio.run(serve(config))
    except OSError as error:
        raise Trouble(f"cannot listen on {config.address} (control port {config.control_port}"
                      f"{f', SSH port {config.ssh_port}' if config.ssh.serve else ''}): {error.strerror or error}") from None
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
    print("\n".join(printable(line, one_line=True) for line in render_status(data)))
    return EXIT_OK


def render_status(data: dict[str, Any]) -> list[str]:
    """``clusterd status`` as the operator reads it: the cluster line, one row per server, a legend, conflicts."""
    generation = data["generation"]
    lines = [f"cluster: state {data['state']}, status {data['status']}  (epoch {data['epoch']}, generation "
             f"{generation['number']}" + (f" of epoch {generation['epoch']}, digest {generation['digest'][:12]}, "
                                          f"text sha256 {generation['sha256'][:12]}" if generation["sha256"] else "")
             + ")",
             f"  {'ID':>3}  {'ADDRESS':<16} {'ROLE':<10} {'UP':<5} {'HEARTBEAT':<10} {'GEN':>4}  {'DIGEST':<12}  SYNC"]
    for s in data["servers"]:
        beat = "-" if s["this"] else ("never" if s["last_heartbeat"] is None else _ago(s["last_heartbeat"]))
        mark = "*" if s["this"] else " "
        reason = s.get("error") or (None if s["this"] or s.get("trusted", True) else
                                    f"not trusted here yet: clusterd add-peer --id {s['id']}")
        lines.append(f"{mark} {s['id']:>3}  {s['address']:<16} {s['role']:<10} {'up' if s['up'] else 'down':<5} "
                     f"{beat:<10} {s['generation']:>4}  {s['digest'][:12] or '-':<12}  {s['sync']}"
                     + (f" ({reason})" if reason else ""))
    lines.append("  *: this server.  DIGEST: a server's cluster-wide configuration in normal form (in sync: the "
                 "generation's)")
    if data.get("pending"):
        from .changes import span, when

        waiting = data["pending"]
        lines.append(f"provisional: the load of generation {waiting['number']} (on server {waiting['on']}) is returned "
                     f"at {when(waiting['deadline'])} UTC (in {span(waiting['left'])}) unless confirmed (clusterd "
                     "confirm)" + (f"; {len(waiting['edits'])} generation(s) made on top go with it"
                                   if waiting["edits"] else ""))
    for c in data["conflicts"][-5:]:
        lines.append(f"conflict from server {c['from']}: {c['section']}"
                     f"{' / ' + c['statement'] if c['statement'] else ''}: kept {c['chosen']!r}, not {c['edit']!r}")
    return lines


def _ago(seconds: float) -> str:
    """At most 10 characters, however long a peer has been silent."""
    if seconds < 60:
        return f"{seconds:.1f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h ago"
    return f"{min(seconds / 86400, 999):.0f} d ago"


def _ip(address: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise Trouble(f"{what} {address!r} is not an IP address (the guide's \"IP Address for this BQN in cluster\"; "
                      "behind NAT, the address peers reach it on)") from None


def _add_peer_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--id", type=int, required=True, help="the peer's BQN id")
    p.add_argument("--address", required=True, help="the peer's IP address (its public address behind NAT)")
    p.add_argument("--ssh-port", type=int, default=22, help="the peer's SSH port (default 22, or the NAT's)")
    trust = p.add_mutually_exclusive_group()
    trust.add_argument("--fingerprint", help="the peer key's expected SHA256 fingerprint (from clusterd init there)")
    trust.add_argument("--key", help="the peer's public key line, when it cannot be reached now")
    trust.add_argument("--yes", action="store_true", help="trust the keys shown without asking")
    p.add_argument("--ssh-fingerprint", help="the SSH host key's expected SHA256 fingerprint (ssh-keygen -lf on "
                   "the peer's host key); without it the key is recorded on first use, as ssh-keyscan would")
    p.add_argument("--replace-host-key", action="store_true", help="replace a recorded SSH host key that changed "
                   "(after checking the new one on the peer; best with --ssh-fingerprint)")


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


def _one_key_one_id(config: ClusterConfig, peer_id: int, key_line: str) -> None:
    """A key identifies one server: refuse this server's own key, or a key recorded under another id."""
    key = keys.parse_public_key(key_line)
    if config.identity.exists() and keys.same_key(key, keys.load_or_create(config.identity)):
        raise Trouble(f"key {keys.fingerprint(key)} is this server's own key, not server {peer_id}'s; nothing changed")
    for other in config.peers:
        if other.id != peer_id and other.key and keys.same_key(key, keys.parse_public_key(other.key)):
            raise Trouble(f"key {keys.fingerprint(key)} is already recorded for server {other.id}; one server has one "
                          f"key and one id. If server {other.id} is now server {peer_id} (set-id there), run clusterd "
                          f"remove-peer {other.id} first; if two servers share a key, run clusterd init --force on "
                          "the copy. Nothing changed")


@command("add-peer", "trust a peer and add it (the guide's \"Add BQN to a cluster\" dialog)", _add_peer_arguments)
def add_peer(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.id == config.id:
        raise Trouble(f"{args.id} is this server's own id")
    if not 0 <= args.id <= 255:
        raise Trouble(f"a BQN id is between 0 and 255, not {args.id}")
    address = _ip(args.address, "--address")
    if args.key:
        key_line = keys.public_line(keys.parse_public_key(args.key)) if _valid_key(args.key) else None
        if key_line is None:
            raise Trouble("--key is not an SSH public key line")
    else:
        port = config.port_base + args.id
        try:
            key = asyncio.run(keys.server_host_key(address, port, KEY_TIMEOUT))
        except (OSError, asyncssh.Error, TimeoutError) as error:
            raise Trouble(f"cannot read the control key at {address}:{port} ({reason(error)}); "
                          "is clusterd running there? (or pass --key)") from None
        fingerprint = keys.fingerprint(key)
        print(f"server {args.id} at {address}:{port} has key {fingerprint}")
        _confirm(f"Trust server {args.id}?", args, fingerprint)
        key_line = keys.public_line(key)
    _one_key_one_id(config, args.id, key_line)
    old = config.peer(args.id)
    if old is not None and old.key and not keys.same_key(keys.parse_public_key(old.key), keys.parse_public_key(key_line)):
        print(f"server {args.id}'s key changes from {keys.fingerprint(old.key)} to {keys.fingerprint(key_line)}")
    _record_host_key(config, args, address)
    config_module.edit(args.config, lambda doc: config_module.set_peer(
        doc, Peer(args.id, address, args.ssh_port, key_line)))
    print(f"added server {args.id} ({address}, ssh port {args.ssh_port}) to {args.config}")
    _reload(config)
    return EXIT_OK


def _record_host_key(config: ClusterConfig, args: argparse.Namespace, address: str) -> None:
    """The peer's SSH host key into known-hosts: checked when a fingerprint is given, never silently replaced."""
    where = f"{address}:{args.ssh_port}"
    try:
        ssh_key = asyncio.run(keys.server_host_key(address, args.ssh_port, KEY_TIMEOUT))
    except (OSError, asyncssh.Error, TimeoutError) as error:
        print(f"warning: cannot read the SSH host key at {where} ({reason(error)}); transfers to it fail until it "
              f"is in {config.known_hosts}", file=sys.stderr)
        return
    offered = keys.fingerprint(ssh_key)
    if args.ssh_fingerprint and args.ssh_fingerprint.strip() != offered:
        raise Trouble(f"the SSH server {where} offers host key {offered}, not {args.ssh_fingerprint}; nothing recorded")
    recorded = keys.recorded_host_keys(config.known_hosts, address, args.ssh_port)
    if any(keys.same_key(ssh_key, key) for _, key in recorded):
        print(f"its SSH server {where} has host key {offered}, as recorded in {config.known_hosts}")
        return
    if recorded and not args.replace_host_key:
        raise Trouble(f"the SSH host key of {where} has changed; nothing recorded\n"
                      + keys.host_key_changed(address, args.ssh_port, ssh_key, config.known_hosts, recorded)
                      + f"\nIf server {args.id}'s host key was changed on purpose, check the new fingerprint on it "
                      "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and run add-peer again with "
                      f"--replace-host-key --ssh-fingerprint {offered}")
    keys.add_known_host(config.known_hosts, address, args.ssh_port, ssh_key)
    print(f"its SSH server {where} has host key {offered}{' (as given)' if args.ssh_fingerprint else ''}"
          f"{' (replacing ' + keys.fingerprint(recorded[0][1]) + ')' if recorded else ''}; recorded in "
          f"{config.known_hosts}")


def _remove_peer_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", type=int, help="the peer's BQN id")


@command("remove-peer", "stop trusting a peer and take it out of the cluster file", _remove_peer_arguments)
def remove_peer(args: argparse.Namespace) -> int:
    config = _config(args)
    peer = config.peer(args.id)
    if peer is None:
        known = ", ".join(str(p.id) for p in config.peers) or "none"
        raise Trouble(f"server {args.id} is not a peer in {args.config} (peers: {known})")

    def change(document: Any) -> None:
        config_module.remove_peer(document, args.id)

    config_module.edit(args.config, change)
    if not any((p.address, p.ssh_port) == (peer.address, peer.ssh_port) for p in config.peers if p.id != peer.id):
        keys.remove_known_host(config.known_hosts, peer.address, peer.ssh_port)
    print(f"removed server {args.id} ({peer.address}) from {args.config}"
          + (f"; its key {keys.fingerprint(peer.key)} is no longer trusted" if peer.key else ""))
    print(f"if server {args.id} could copy to this server over SSH, also delete its key from the authorized_keys "
          f"of {config.ssh.user} here; on server {args.id}: clusterd remove-peer {config.id}")
    _reload(config)
    return EXIT_OK


def _valid_key(line: str) -> bool:
    try:
        keys.parse_public_key(line)
        return True
    except ValueError:
        return False


def _set_address_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("address", help="this server's IP address in the cluster")


@command("set-self-address", "this server's address in the cluster (the dialog's \"IP Address for this BQN\")",
         _set_address_arguments)
def set_self_address(args: argparse.Namespace) -> int:
    address = _ip(args.address, "the address")
    config_module.edit(args.config, lambda doc: doc.__setitem__("address", address))
    print(f"this server's cluster address is {address}")
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
    if args.id == config.id:
        print(f"this server's id is {args.id} already; nothing changed")
        return EXIT_OK
    config_module.edit(args.config, lambda doc: doc.__setitem__("id", args.id))
    print(f"this server's id is {args.id} (was {config.id}); its control port is {config.port_base + args.id}")
    key = keys.load_or_create(config.identity) if config.identity.exists() else None
    if config.peers:
        print(f"every other server learns the new id at this server's next login there (the key stays the same) and "
              f"renames server {config.id} in its cluster file; where that cannot happen (a peer that is never "
              "reached again, or runs an older clusterd), move the trust by hand on it:")
        print(f"  clusterd remove-peer {config.id}")
        print(f"  clusterd add-peer --id {args.id} --address {config.address} --ssh-port {config.ssh_port}"
              + (f" --fingerprint {keys.fingerprint(key)}" if key else ""))
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
    try:
        servers, daemon_problem = ask(config, {"type": "status"}, timeout=10)["status"]["servers"], None
    except Trouble as error:
        servers, daemon_problem = [], str(error)
    views = {s["id"]: s for s in servers}
    problems = 0
    for peer in peers:
        report = asyncio.run(check_peer(config, peer, args.timeout, views.get(peer.id), daemon_problem))
        print(f"server {peer.id} ({peer.address}):")
        for line in report.lines:
            print(printable(f"  {line}", one_line=True))
        print(f"  verdict: {report.verdict}")
        problems += not report.ok
    return EXIT_FOUND if problems else EXIT_OK


def _diff_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="*", metavar="ID | G1 G2",
                   help="one server's id (default: every secondary), or two generations (number or id prefix)")
    p.add_argument("--format", choices=["text", "json", "yaml"], default="text",
                   help="of a diff between two generations (default text)")


@command("diff", "what each server's cluster-wide sections would gain or lose from the cluster's configuration; "
         "with G1 G2, what changed between two generations", _diff_arguments)
def diff(args: argparse.Namespace) -> int:
    if len(args.targets) == 2:
        return _generation_diff(args)
    if len(args.targets) > 2 or (args.targets and not args.targets[0].isdigit()):
        raise Trouble("give one server's id, or two generations (clusterd diff G1 G2)")
    if args.format != "text":
        raise Trouble("--format is for a diff between two generations (clusterd diff G1 G2)")
    reply = ask(_config(args), {"type": "diff", "peer": int(args.targets[0]) if args.targets else None})
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


# ---------------------------------------------------------------------------
# Safe changes: history, show, load, confirm, rollback (clusterd/changes.py does them in the daemon)


def _changes(args: argparse.Namespace, request: dict[str, Any], timeout: float = 180.0) -> dict[str, Any]:
    reply = ask(_config(args), request, timeout=timeout)
    if not reply.get("ok"):
        raise Trouble(str(reply.get("error")))
    return reply


def _history_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


@command("history", "the cluster's generations, newest first: when, by whom, how made, what changed",
         _history_arguments)
def history(args: argparse.Namespace) -> int:
    from .changes import when

    reply = _changes(args, {"type": "generations"})
    if args.json:
        json.dump(reply["generations"], sys.stdout, indent=2)
        print()
        return EXIT_OK
    print(f"  {'GEN':>4}  {'TIME (UTC)':<19}  {'BY':>3}  {'ID':<12}  HOW: WHAT CHANGED")
    for entry in reply["generations"]:
        state = f" [{entry['state']}]" if entry["state"] else ""
        kept = "" if entry["kept"] else " (text not kept here)"
        line = (f"  {entry['number']:>4}  {when(entry['time']):<19}  {entry['author']:>3}  {entry['id'][:12]:<12}  "
                f"{entry['how']}{state}: {entry['summary'] or '-'}{kept}")
        print(printable(line, one_line=True))
    return EXIT_OK


def _show_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("generation", metavar="G", help="a generation's number (as clusterd history shows it) or id prefix")


@command("show", "a generation's cluster-wide text", _show_arguments)
def show(args: argparse.Namespace) -> int:
    reply = _changes(args, {"type": "show", "ref": args.generation})
    sys.stdout.write(reply["text"])
    return EXIT_OK


def _generation_diff(args: argparse.Namespace) -> int:
    from confmerge import dump

    reply = _changes(args, {"type": "compare", "old": args.targets[0], "new": args.targets[1]})
    if args.format == "text":
        sys.stdout.write(reply["text"])
    else:
        dump(reply["diff"], args.format)
    return EXIT_FOUND if reply["differences"] else EXIT_OK


def _load_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="a backup whose cluster-wide sections become the cluster's")
    p.add_argument("--confirm", type=float, metavar="MINUTES", help="provisional: returned by itself unless "
                   "clusterd confirm runs (on any server) within MINUTES (fractional: 0.5 is 30 s)")
    p.add_argument("--dry-run", action="store_true", help="check the file and show the diff; change nothing")


@command("load", "check a backup, show the cluster-scope diff, and make its cluster-wide sections the cluster's",
         _load_arguments)
def load(args: argparse.Namespace) -> int:
    from confmerge import ConfError, parse, read_text, validate

    name = str(args.file)
    text = read_text(args.file)
    problems = validate(parse(text, name))
    if problems:
        raise ConfError(problems)
    reply = _changes(args, {"type": "load", "text": text, "name": name, "confirm": args.confirm,
                            "dry_run": args.dry_run})
    sys.stdout.write("".join(printable(line, one_line=True) + "\n" for line in reply["text"].splitlines()))
    generation = reply["generation"]
    if args.dry_run:
        print("dry run: nothing loaded")
    elif generation is None:
        print("the cluster has this configuration already; nothing loaded")
    else:
        print(f"loaded as generation {generation['number']} ({generation['id'][:12]}) by the primary, server "
              f"{reply['primary']}; on its way to every server (clusterd status shows it arrive)")
        if generation.get("deadline"):
            from .changes import when
            print(f"provisional: unless clusterd confirm runs on any server by {when(generation['deadline'])} UTC, "
                  "every server returns to the configuration before the load")
    return EXIT_OK


@command("confirm", "keep the provisional load (clusterd load --confirm); on any server")
def confirm(args: argparse.Namespace) -> int:
    print(_changes(args, {"type": "confirm"})["message"])
    return EXIT_OK


def _rollback_arguments(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("steps", type=int, nargs="?", metavar="N", help="N generations back (along the primary's side)")
    which.add_argument("--to", metavar="G", help="a generation's number or id prefix")


@command("rollback", "a new generation with an older one's configuration; the history keeps both", _rollback_arguments)
def rollback(args: argparse.Namespace) -> int:
    print(_changes(args, {"type": "rollback", "steps": args.steps, "to": args.to})["message"])
    return EXIT_OK


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep", type=Path, help="keep the demo's files in this directory")
    p.add_argument("--web", action="store_true", help="keep the three servers running with the web GUI (HTTPS on "
                   "127.0.0.1-3:8443, lo as the measured interface) until Ctrl-C, instead of the narration")


@command("demo", "a three-server cluster on 127.0.0.1-3 from the fixtures: unify, edit, fail over, stop",
         _demo_arguments)
def demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.keep, web=args.web)


# -- common visibility (clusterd.throughput)


def _throughput_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default="all", help="a BQN id, or all (default)")
    p.add_argument("--seconds", type=int, default=60, help="how far back, up to 86400 (a day; per minute past an hour)")
    p.add_argument("--json", action="store_true", help="machine-readable output (the API's object)")


@command("throughput", "each server's downlink and uplink, as measured on its interfaces, from any server",
         _throughput_arguments)
def throughput(args: argparse.Namespace) -> int:
    if args.server != "all" and not args.server.isdigit():
        raise Trouble(f"--server is a BQN id or all, not {args.server!r}")
    reply = ask(_config(args), {"type": "throughput", "server": None if args.server == "all" else int(args.server),
                                "seconds": args.seconds})
    if not reply.get("ok"):
        raise Trouble(str(reply.get("error")))
    data = reply["throughput"]
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        print()
        return EXIT_OK
    for server in data["servers"]:
        known = [s for s in server["samples"] if s[1] is not None]
        average = [sum(s[1] for s in known) / len(known), sum(s[2] for s in known) / len(known)] if known else None
        print(printable(f"server {server['id']}{' (this server)' if server['this'] else ''}: now "
                        f"{_rate(server['current'], 0)} down, {_rate(server['current'], 1)} up; last "
                        f"{data['seconds']} s: {_rate(average, 0)} down, {_rate(average, 1)} up on average, "
                        f"{len(known)} of {len(server['samples'])} {'seconds' if data['step'] == 1 else 'minutes'} "
                        f"with data" + (f" ({server['problem']})" if server["problem"] else ""), one_line=True))
    return EXIT_OK


def _rate(pair: list[float] | None, index: int) -> str:
    """A rate as people read it (``12.3 Mbit/s``); ``no data`` when there is none."""
    if pair is None or pair[index] is None:
        return "no data"
    value, unit = float(pair[index]), "bit/s"
    for bigger in ("kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{value:.1f} {unit}"


def _top_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--count", type=int, default=0, help="stop after this many refreshes (default: until q or Ctrl-C)")


@command("top", "a live table of every server's role, sync state and throughput (q or Ctrl-C to leave)", _top_arguments)
def top(args: argparse.Namespace) -> int:
    import select
    import termios
    import time
    import tty

    config = _config(args)

    def table() -> list[str]:
        status = ask(config, {"type": "status"}, timeout=10)["status"]
        rates = ask(config, {"type": "throughput", "server": None, "seconds": 1}, timeout=10)["throughput"]
        now = {s["id"]: s["current"] for s in rates["servers"]}
        lines = [f"clusterd top: server {status['server']}, cluster {status['state']}, {status['status']}  "
                 f"{time.strftime('%H:%M:%S')}  (q to quit)",
                 f"  {'ID':>3}  {'ADDRESS':<16} {'ROLE':<10} {'SYNC':<22} {'DOWNLINK':>14} {'UPLINK':>14}"]
        for s in status["servers"]:
            lines.append(f"{'*' if s['this'] else ' '} {s['id']:>3}  {s['address']:<16} {s['role']:<10} "
                         f"{s['sync']:<22} {_rate(now.get(s['id']), 0):>14} {_rate(now.get(s['id']), 1):>14}")
        return [printable(line, one_line=True) for line in lines]

    if not sys.stdout.isatty() or not sys.stdin.isatty():
        print("\n".join(table()))
        return EXIT_OK
    saved = termios.tcgetattr(sys.stdin)
    shown = 0
    try:
        tty.setcbreak(sys.stdin)
        while not args.count or shown < args.count:
            sys.stdout.write("\x1b[H\x1b[2J" + "\n".join(table()) + "\n")
            sys.stdout.flush()
            shown += 1
            ready, _, _ = select.select([sys.stdin], [], [], 1.0)
            if ready and sys.stdin.read(1) in ("q", "Q"):
                break
    except KeyboardInterrupt:
        pass
    finally:
        termios.tcsetattr(sys.stdin, termios.TCSADRAIN, saved)
    return EXIT_OK


# ---------------------------------------------------------------------------
# Software updates (clusterd.updates, clusterd.package)


UPDATE_ACTIONS = ("status", "resume", "abort")


def _update_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("package", metavar="PACKAGE|status|resume|abort",
                   help="a package file (its PACKAGE.manifest beside it), or what to do with the roll-out under way")
    p.add_argument("--parallel", type=int, default=1, help="servers installing at once (default 1; the primary "
                   "always goes alone, last)")
    p.add_argument("--dry-run", action="store_true", help="check the package and show the order; change nothing")
    p.add_argument("--detach", action="store_true", help="start the roll-out and return (it goes on without the CLI)")
    p.add_argument("--json", action="store_true", help="machine-readable output (status)")


@command("update", "install a software package on every server, one at a time, the primary last", _update_arguments)
def update(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.package in UPDATE_ACTIONS:
        reply = ask(config, {"type": "update", "action": args.package})
        if not reply.get("ok"):
            raise Trouble(str(reply.get("error")))
        if args.package == "status":
            if args.json:
                json.dump(reply["update"], sys.stdout, indent=2)
                print()
            else:
                print("\n".join(printable(line, one_line=True) for line in render_update(reply["update"])))
            return EXIT_OK
        print(f"roll-out {reply['plan']['id']}: {args.package}d here" if args.package == "resume"
              else f"roll-out {reply['plan']['id']} aborted; servers not started stay as they are")
        return EXIT_OK if args.package == "abort" or args.detach else _follow(config, reply["plan"]["id"])
    path = Path(args.package).absolute()
    reply = ask(config, {"type": "update", "action": "start", "path": str(path), "parallel": args.parallel,
                         "dry_run": args.dry_run})
    if not reply.get("ok"):
        raise Trouble(str(reply.get("error")))
    plan = reply["plan"]
    print(f"package {plan['package']['name']} version {plan['package']['version']} (sha256 "
          f"{plan['package']['sha256'][:12]}, {plan['package']['size']} bytes): checked")
    print(f"order: {' -> '.join(map(str, plan['order']))} ({plan['parallel']} at a time; server {plan['primary']}, "
          "the primary, last)")
    if args.dry_run:
        versions = reply.get("versions", {})
        print("versions now: " + ", ".join(f"{k}: {v or '(unknown)'}" for k, v in versions.items()))
        print("dry run: nothing copied, nothing installed")
        return EXIT_OK
    print(f"roll-out {plan['id']} started (clusterd update status shows it from any server)")
    return EXIT_OK if args.detach else _follow(config, plan["id"])


def _follow(config: ClusterConfig, rollout: str) -> int:
    """Print each server's step as it ends, until the roll-out does; the daemon restarting on the way is waited for."""
    import time

    told: set[tuple[str, str]] = set()
    quiet_since = time.monotonic()
    while True:
        try:
            data = ask(config, {"type": "update", "action": "status"}, timeout=10)["update"]
        except (Trouble, KeyError):
            if time.monotonic() - quiet_since > config.update_timeout:
                raise Trouble("this server's daemon has not answered for the update timeout; see clusterd update "
                              "status") from None
            time.sleep(0.5)
            continue
        quiet_since = time.monotonic()
        plan = data.get("rollout") or {}
        if plan.get("id") != rollout:
            raise Trouble(f"roll-out {rollout} is no longer the one this server keeps")
        for server in plan["order"]:
            step = plan["steps"][str(server)]
            if step["state"] in ("installing", "done", "failed") and (str(server), step["state"]) not in told:
                told.add((str(server), step["state"]))
                print(f"server {server}: {step['state']}" + (f": {step['error']}" if step["error"] else ""))
                for line in step["tail"].splitlines() if step["state"] == "failed" else []:
                    print(printable(f"  | {line}", one_line=True))
        if plan["state"] not in ("copying", "installing"):
            print(f"roll-out {plan['state']}" + (f": {plan['reason']}" if plan["reason"] else ""))
            return EXIT_OK if plan["state"] == "done" else EXIT_FOUND
        if any("interrupted" in w for w in data["warnings"]):
            print(next(w for w in data["warnings"] if "interrupted" in w))
            return EXIT_FOUND
        time.sleep(0.5)


def render_update(data: dict[str, Any]) -> list[str]:
    """``clusterd update status``: the roll-out, each server's version and step, the warnings."""
    plan = data.get("rollout")
    lines = []
    if plan:
        lines.append(f"roll-out {plan['id']}: {plan['package']['name']} version {plan['package']['version']}, "
                     f"{plan['state']} ({data['progress']} servers done; coordinator server {plan['coordinator']})"
                     + (f": {plan['reason']}" if plan["reason"] else ""))
    else:
        lines.append("no roll-out yet")
    lines.append(f"  {'ID':>3}  {'VERSION':<20} STEP")
    steps = plan["steps"] if plan else {}
    for server, version in data["versions"].items():
        step = steps.get(server)
        lines.append(f"  {server:>3}  {version or '(unknown)':<20} "
                     + (f"{step['state']}" + (f": {step['error']}" if step["error"] else "") if step else "-"))
    lines += [f"warning: {w}" for w in data["warnings"]]
    return lines


def _package_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="the package file")
    p.add_argument("--version", required=True, help="the version it installs")


@command("package", "write FILE.manifest (version, size, sha256) for a package; sign it with ssh-keygen -Y sign",
         _package_arguments)
def package(args: argparse.Namespace) -> int:
    from .package import NAMESPACE, PackageError, make, manifest_path

    try:
        manifest = make(args.file, args.version)
    except (PackageError, OSError) as error:
        raise Trouble(str(error)) from None
    print(f"wrote {manifest_path(args.file)} (version {manifest.version}, sha256 {manifest.sha256[:12]})")
    print(f"to sign it: ssh-keygen -Y sign -f KEY -n {NAMESPACE} {manifest_path(args.file)}  "
          f"(makes {manifest_path(args.file)}.sig)")
    return EXIT_OK


# ---------------------------------------------------------------------------
# API tokens of the web GUI and API (clusterd.tokens)


def _token_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("create", "revoke", "list"),
                   help="create NAME: make a token and print it (once: only its hash is kept); revoke NAME: end it "
                        "now, and the sessions opened with it; list: name, role, when made")
    p.add_argument("name", nargs="?", help="the token's name (create, revoke)")
    p.add_argument("--role", choices=("admin", "read-only"), default="admin",
                   help="admin (every change) or read-only (look only); default admin")


@command("token", "API tokens of the web GUI and API: create NAME [--role read-only], revoke NAME, list",
         _token_arguments)
def token(args: argparse.Namespace) -> int:
    from .tokens import TokenError, TokenStore, tokens_path

    if (args.name is None) != (args.action == "list"):
        raise Trouble("give a NAME to create or revoke, and none to list")
    store = TokenStore(tokens_path(_config(args).state_dir))
    try:
        if args.action == "create":
            secret = store.create(args.name, args.role)
            print(secret)
            print(f"token {args.name} ({args.role}): give it as 'Authorization: Bearer TOKEN', or log in with it; "
                  "it is not shown again", file=sys.stderr)
        elif args.action == "revoke":
            gone = store.revoke(args.name)
            print(f"revoked token {gone.name} ({gone.role}); it and its sessions no longer work")
        else:
            for t in store.tokens():
                made = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t.created))
                print(f"{t.name}\t{t.role}\t{made}")
    except (TokenError, OSError) as error:
        raise Trouble(str(error)) from None
    return EXIT_OK


# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clusterd", description="Cluster daemon for BQN servers: membership, "
                                     "primary election and distribution of the unified configuration.")
    _common(parser, DEFAULT_CONFIG, False)
    parser.add_argument("--version", action="version", version=f"clusterd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help, arguments, run_command) in _COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help)
        _common(p, argparse.SUPPRESS, argparse.SUPPRESS)
        arguments(p)
        p.set_defaults(run=run_command)
    return parser


def _common(parser: argparse.ArgumentParser, config: Any, verbose: Any) -> None:
    """``-c`` and ``-v`` before the command or after it (a subcommand's copy keeps the main one's value unless given)."""
    parser.add_argument("-c", "--config", type=Path, default=config,
                        help=f"the cluster file (default {DEFAULT_CONFIG}, or $CLUSTERD_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", default=verbose, help="more log detail")


def main(argv: Sequence[str] | None = None) -> int:
    return run_program(build_parser, argv, _run)


def _run(args: argparse.Namespace) -> int:
    try:
        return args.run(args)
    except Trouble as error:
        print(printable(f"clusterd {args.command}: {error}"), file=sys.stderr)
        return EXIT_TROUBLE
