"""``clusterd check``: the guide's manual connectivity procedure (ping, telnet to 63500+id, ssh), done for the operator.

For each peer, each way a link is used, tried for real: TCP to its control
port and the control key it offers against the one recorded; a control
login as this server (accepted only if the peer trusts this server's key);
the peer's own link to this server, as the running daemon sees it; TCP and
an SSH handshake on its SSH port with the host key against known-hosts; and
a real SFTP transfer of a probe file to the transfer area the peer
announced, removed after. Each with its round-trip time, and one plain
verdict with the fix. ICMP ping needs privileges a daemon should not have;
the TCP round trips measure the same path.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import asyncssh

from . import keys, transfer
from .config import ClusterConfig, Peer
from .links import reason


@dataclass(slots=True)
class Report:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def verdict(self) -> str:
        return "OK" if self.ok else "; ".join(self.problems)


async def _tcp(address: str, port: int, timeout: float) -> float:
    started = time.monotonic()
    async with asyncio.timeout(timeout):
        _, writer = await asyncio.open_connection(address, port)
    writer.close()
    return (time.monotonic() - started) * 1000


async def _host_key(address: str, port: int, timeout: float) -> tuple[asyncssh.SSHKey, float]:
    started = time.monotonic()
    key = await keys.server_host_key(address, port, timeout)
    return key, (time.monotonic() - started) * 1000


def _add_me(config: ClusterConfig) -> str:
    """The command that makes a peer trust this server."""
    line = (f"clusterd add-peer --id {config.id} --address {config.address} --ssh-port {config.ssh_port}")
    if config.identity.exists():
        line += f" --fingerprint {keys.fingerprint(keys.load_or_create(config.identity))}"
    return line


async def _control_login(config: ClusterConfig, peer: Peer, recorded: asyncssh.SSHKey, timeout: float,
                         report: Report) -> None:
    """Log in to the peer's control port as this server: the peer accepts only a key it trusts for this id."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            async with asyncssh.connect(
                peer.address, config.port_of(peer), username=str(config.id),
                client_keys=[keys.load_or_create(config.identity)], known_hosts=([recorded], [], []),
                agent_path=None, config=None, password=None, kbdint_auth=False, gss_host=None,
            ):
                pass
    except asyncssh.PermissionDenied:
        report.lines.append(f"control login as server {config.id}: refused")
        report.problems.append(f"server {peer.id} does not trust this server's key yet: on server {peer.id} run "
                               f"{_add_me(config)}")
        return
    except (OSError, TimeoutError, asyncssh.Error) as error:
        report.lines.append(f"control login as server {config.id}: failed ({reason(error)})")
        report.problems.append(f"cannot log in to server {peer.id}'s control port ({reason(error)})")
        return
    report.lines.append(f"control login as server {config.id}: accepted, server {peer.id} trusts this server's key "
                        f"({(time.monotonic() - started) * 1000:.1f} ms)")


def _inbound(peer: Peer, view: dict[str, Any] | None, daemon_problem: str | None, report: Report) -> None:
    """The peer's own link to this server, as this server's daemon sees it."""
    if view is None:
        report.lines.append(f"server {peer.id}'s link to this server: unknown "
                            f"({daemon_problem or 'the running daemon does not list it yet'})")
        report.problems.append("start clusterd here and check again: the peer's link to this server and its "
                               "transfer area are seen by the running daemon")
    elif view["up"]:
        report.lines.append(f"server {peer.id}'s link to this server: up (heartbeat {view['last_heartbeat']} s ago)")
    else:
        report.lines.append(f"server {peer.id}'s link to this server: down")
        report.problems.append(f"server {peer.id} is not connected to this server: start clusterd there, check that "
                               f"it can reach {peer.address} -> this server's control port, and run clusterd check "
                               "there too")


async def _transfer(config: ClusterConfig, peer: Peer, view: dict[str, Any] | None, timeout: float,
                    report: Report) -> None:
    inbox = (view or {}).get("inbox")
    if not inbox:
        why = ("this server's daemon does not report peers' transfer areas" if view is not None and "inbox" not in view
               else f"server {peer.id} has not told this server's daemon where its transfer area is")
        report.lines.append(f"SFTP transfer: not tried ({why})")
        if view is not None and view["up"]:
            report.problems.append(f"the transfer to server {peer.id} could not be tried: {why}")
        return
    target = transfer.Target(peer.address, peer.ssh_port, config.ssh.user, config.identity, config.known_hosts)
    try:
        elapsed = await transfer.probe(target, inbox, max(timeout, transfer.CONNECT_TIMEOUT))
    except transfer.TransferError as error:
        report.lines.append(f"SFTP transfer to {inbox} as {config.ssh.user}: failed")
        report.problems.append(f"transfers to server {peer.id} fail: {error.reason}")
        return
    report.lines.append(f"SFTP transfer to {inbox} as {config.ssh.user}: a probe file written, renamed and "
                        f"removed ({elapsed:.1f} ms)")


async def check_peer(config: ClusterConfig, peer: Peer, timeout: float = 3.0, view: dict[str, Any] | None = None,
                     daemon_problem: str | None = None) -> Report:
    """``view``: the peer as this server's running daemon shows it (None with ``daemon_problem`` when it does not run)."""
    report = Report()
    control = config.port_of(peer)
    where = f"{peer.address}:{control}"
    try:
        rtt = await _tcp(peer.address, control, timeout)
        report.lines.append(f"control port {where}: open ({rtt:.1f} ms)")
        key, rtt = await _host_key(peer.address, control, timeout)
        offered = keys.fingerprint(key)
        if peer.key is None:
            report.lines.append(f"control key {offered}: not trusted yet")
            report.problems.append(f"not trusted: run clusterd add-peer --id {peer.id} --address {peer.address}")
        elif keys.same_key(key, keys.parse_public_key(peer.key)):
            report.lines.append(f"control key {offered}: the recorded one ({rtt:.1f} ms handshake)")
            await _control_login(config, peer, keys.parse_public_key(peer.key), timeout, report)
        else:
            report.lines.append(f"control key {offered}: NOT the recorded {keys.fingerprint(peer.key)}")
            report.problems.append(f"wrong control key on {where}: if server {peer.id} was reinstalled, "
                                   f"check its fingerprint (clusterd init prints it) and run clusterd add-peer again; "
                                   "otherwise something else answers on that address")
    except (OSError, TimeoutError, asyncssh.Error) as error:
        report.lines.append(f"control port {where}: closed ({reason(error)})")
        report.problems.append(f"control port {where} is closed: start clusterd on server {peer.id}, and open TCP "
                               f"{control} from here to {peer.address} (the guide's 63500-63755; behind NAT, forward it)")
    _inbound(peer, view, daemon_problem, report)
    ssh = f"{peer.address}:{peer.ssh_port}"
    try:
        rtt = await _tcp(peer.address, peer.ssh_port, timeout)
        key, handshake = await _host_key(peer.address, peer.ssh_port, timeout)
        offered = keys.fingerprint(key)
        known = [k for _, k in keys.recorded_host_keys(config.known_hosts, peer.address, peer.ssh_port)]
        if any(keys.same_key(key, k) for k in known):
            report.lines.append(f"SSH {ssh}: open ({rtt:.1f} ms), host key {offered} known ({handshake:.1f} ms handshake)")
            await _transfer(config, peer, view, timeout, report)
        elif known:
            report.lines.append(f"SSH {ssh}: host key {offered} is NOT the one in {config.known_hosts}")
            report.problems.append(f"wrong SSH host key on {ssh}: transfers are refused until it is checked and "
                                   f"recorded again (clusterd add-peer --id {peer.id} --replace-host-key)")
        else:
            report.lines.append(f"SSH {ssh}: open ({rtt:.1f} ms), host key {offered} not in {config.known_hosts}")
            report.problems.append(f"unknown SSH host key on {ssh}: record it with clusterd add-peer --id {peer.id}")
    except (OSError, TimeoutError, asyncssh.Error) as error:
        report.lines.append(f"SSH {ssh}: closed ({reason(error)})")
        report.problems.append(f"SSH {ssh} is closed: transfers need it (port 22, or the port a NAT forwards)")
    return report
