"""``clusterd check``: the guide's manual connectivity procedure (ping, telnet to 63500+id, ssh), done for the operator.

For each peer: TCP to its control port, the control key it offers against
the one recorded, TCP and an SSH handshake on its SSH port with the host key
against known-hosts, each with its round-trip time, and one plain verdict
with the fix. ICMP ping needs privileges a daemon should not have; the TCP
round trips measure the same path.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import asyncssh

from . import keys
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


def _known(config: ClusterConfig, address: str, port: int) -> list[asyncssh.SSHKey]:
    try:
        known = asyncssh.read_known_hosts(str(config.known_hosts))
    except (OSError, ValueError):
        return []
    trusted, *_ = known.match(address, "", port)
    return list(trusted)


async def check_peer(config: ClusterConfig, peer: Peer, timeout: float = 3.0) -> Report:
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
        else:
            report.lines.append(f"control key {offered}: NOT the recorded {keys.fingerprint(peer.key)}")
            report.problems.append(f"wrong control key on {where}: if server {peer.id} was reinstalled, "
                                   f"check its fingerprint (clusterd init prints it) and run clusterd add-peer again; "
                                   "otherwise something else answers on that address")
    except (OSError, TimeoutError, asyncssh.Error) as error:
        report.lines.append(f"control port {where}: closed ({reason(error)})")
        report.problems.append(f"control port {where} is closed: start clusterd on server {peer.id}, and open TCP "
                               f"{control} from here to {peer.address} (the guide's 63500-63755; behind NAT, forward it)")
    ssh = f"{peer.address}:{peer.ssh_port}"
    try:
        rtt = await _tcp(peer.address, peer.ssh_port, timeout)
        key, handshake = await _host_key(peer.address, peer.ssh_port, timeout)
        offered = keys.fingerprint(key)
        known = _known(config, peer.address, peer.ssh_port)
        if any(keys.same_key(key, k) for k in known):
            report.lines.append(f"SSH {ssh}: open ({rtt:.1f} ms), host key {offered} known ({handshake:.1f} ms handshake)")
        elif known:
            report.lines.append(f"SSH {ssh}: host key {offered} is NOT the one in {config.known_hosts}")
            report.problems.append(f"wrong SSH host key on {ssh}: transfers are refused until it is checked and "
                                   f"recorded again (clusterd add-peer --id {peer.id})")
        else:
            report.lines.append(f"SSH {ssh}: open ({rtt:.1f} ms), host key {offered} not in {config.known_hosts}")
            report.problems.append(f"unknown SSH host key on {ssh}: record it with clusterd add-peer --id {peer.id}")
    except (OSError, TimeoutError, asyncssh.Error) as error:
        report.lines.append(f"SSH {ssh}: closed ({reason(error)})")
        report.problems.append(f"SSH {ssh} is closed: transfers need it (port 22, or the port a NAT forwards)")
    return report
