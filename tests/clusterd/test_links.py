"""Links: either end's connection carries a pair's heartbeats and requests both ways.

The server that cannot dial its peer (a NAT, a wrong address, a primary busy
opening 255 links) is heard over the connection the peer opened, and asks
its questions over it; nothing waits for a second key exchange.
"""

from __future__ import annotations

import re
import time

from clusterd.cli import main

from .test_sync import V2

TIMING = {"heartbeat": 0.2, "missed": 3, "hold": 1.0}
NOWHERE = "127.0.0.250"
"""A loopback address nothing listens on: a dial there is refused at once."""


def cannot_dial(cluster, i: int, j: int) -> None:
    """Server i's cluster file sends it to an address where server j is not."""
    path = cluster.config(i)
    text = path.read_text()
    entry = f"  - id: {j}\n    address: {cluster.address(j)}\n"
    assert entry in text
    path.write_text(text.replace(entry, f"  - id: {j}\n    address: {NOWHERE}\n"))


def test_a_secondary_that_cannot_dial_its_primary_is_heard_and_asks_over_the_primarys_connection(
        cluster_factory, tmp_path, capsys):
    cluster = cluster_factory([0, 1], backups={0: V2[0], 1: V2[1]}, **TIMING)
    cannot_dial(cluster, 1, 0)
    cluster.start_all()
    cluster.wait("complete, server 1 heard by the primary over no link of its own",
                 lambda: cluster.agreed_primary() == 0 and cluster.complete() or None, 30)
    assert cluster.seen(0, 1)["up"] and cluster.seen(1, 0)["up"]
    log = cluster.log(1)
    assert f"cannot connect to {NOWHERE}" in log and "link to server 0 up" not in log, log

    # a request from server 1 to the primary: a load asked on the secondary goes to server 0 over 0's connection
    loaded = tmp_path / "loaded.conf"
    loaded.write_text(V2[1].replace("  downlink 100M\n", "  downlink 90M\n", 1))
    capsys.readouterr()
    code = main(["-c", str(cluster.config(1)), "load", str(loaded)])
    out, err = capsys.readouterr()
    assert code == 0 and "by the primary, server 0" in out, out + err
    cluster.wait("the load everywhere", lambda: all("downlink 90M" in cluster.backup(i).read_text() for i in (0, 1))
                 and cluster.complete() or None, 20)

    # the primary killed: the one connection closes, and server 1 knows at once, without a silence to wait out
    cluster.kill(0)
    started = time.monotonic()
    cluster.wait("server 1 primary", lambda: (cluster.status(1) or {}).get("primary") == 1 or None, 10)
    assert re.search(r"server 0 is down \((?!no heartbeat)", cluster.log(1)), cluster.log(1)[-2000:]
    assert time.monotonic() - started < 10


def test_a_server_that_dials_no_one_is_heard_by_everyone_over_their_connections(cluster_factory):
    """Server 2 reaches no peer's control port; each peer's connection to it carries the pair both ways."""
    cluster = cluster_factory([0, 1, 2], backups={0: V2[0], 1: V2[1], 2: V2[1].replace("bqn-id 1", "bqn-id 2")},
                              **TIMING)
    cannot_dial(cluster, 2, 0)
    cannot_dial(cluster, 2, 1)
    cluster.start_all()
    cluster.wait("complete", lambda: cluster.agreed_primary() == 0 and cluster.complete() or None, 30)
    time.sleep(2)  # ten heartbeat intervals: a pair carried by one connection stays up
    for i, j in ((0, 2), (2, 0), (1, 2), (2, 1)):
        assert cluster.seen(i, j)["up"], (i, j, cluster.logs())
    assert "is down" not in cluster.log(2) and "server 2 is down" not in cluster.log(0) + cluster.log(1), cluster.logs()


def test_links_the_topology_lets_go_linger_so_a_flap_of_the_role_costs_no_new_connections(cluster_factory):
    """Sparse (7 servers): server 4 links to the primary and to 2, 3, 5, 6. Server 1 primary for a moment, then 0
    again: 4's link to 1 (and 1's to 4) stay up a minute, as a link opened on demand does."""
    cluster = cluster_factory(list(range(7)), **TIMING)
    cluster.start_all()
    cluster.wait("complete", lambda: cluster.agreed_primary() == 0 and cluster.complete() or None, 60)
    assert "via" in cluster.seen(4, 1), "server 4 does not link to server 1 while 0 is primary"
    cluster.pause(0)
    cluster.wait("server 1 primary for server 4", lambda: (cluster.status(4) or {}).get("primary") == 1 or None, 10)
    cluster.wait("server 4 linked to server 1", lambda: "via" not in cluster.seen(4, 1) or None, 10)
    cluster.resume(0)
    cluster.wait("server 0 primary again", lambda: cluster.agreed_primary() == 0 or None, 20)
    time.sleep(3)  # past any close a let-go link would make
    seen = cluster.seen(4, 1)
    assert "via" not in seen and seen["up"] and seen["last_heartbeat"] < 1.5, seen


def test_a_peer_that_does_not_say_both_ways_gets_only_replies_on_its_connection(cluster_factory):
    """An older clusterd reads only replies on the connections it opens: it is never ridden, always dialled back."""
    import asyncio

    from clusterd.protocol import Fetch, Heartbeat, encode, read_frame

    from .test_trust import login

    cluster = cluster_factory([0, 1], **TIMING)
    cluster.start(0)
    cluster.wait("the daemon", lambda: cluster.status(0))

    async def first_back(both_ways: bool) -> str:
        async with await login(cluster, 0, 1, cluster.node_keys[1]) as connection:
            process = await connection.create_process(encoding=None)
            process.stdin.write(encode(Heartbeat(id=1, epoch=0, primary=None, uptime=0.1, sees=[1], head="",
                                                 generation=0, digest="", state="awaiting initial sync",
                                                 inbox="/nonexistent", both_ways=both_ways)))
            await asyncio.sleep(1.0)  # five heartbeat intervals: a ridden channel would carry server 0's beats
            process.stdin.write(encode(Fetch(rid=5)))
            async with asyncio.timeout(10):
                return (await read_frame(process.stdout)).type

    assert asyncio.run(first_back(False)) == "reply"
    assert asyncio.run(first_back(True)) == "heartbeat"


def control_connections(cluster) -> dict[tuple[int, int], int]:
    """(dialler, dialled) -> established TCP connections to the dialled server's control port, from /proc/net/tcp."""
    def endpoint(text: str) -> tuple[str, int]:
        address, port = text.split(":")
        return ".".join(str(b) for b in reversed(bytes.fromhex(address))), int(port, 16)

    servers = {(cluster.address(i), cluster.base + i): i for i in cluster.ids}
    addresses = {cluster.address(i): i for i in cluster.ids}
    counts: dict[tuple[int, int], int] = {}
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        local, remote, state = endpoint(fields[1]), endpoint(fields[2]), fields[3]
        if state == "01" and local in servers and remote[0] in addresses:
            key = (addresses[remote[0]], servers[local])
            counts[key] = counts.get(key, 0) + 1
    return counts


def test_a_pair_that_dialled_each_other_at_once_keeps_one_connection(cluster_factory, tmp_path, capsys):
    """Four servers started together dial each other at once; the higher id of a pair closes its own connection
    once it rides the lower id's, so each pair holds one connection, and heartbeats and requests still go both
    ways over it."""
    cluster = cluster_factory([0, 1, 2, 3], **TIMING)
    cluster.start_all()
    cluster.wait("complete", lambda: cluster.agreed_primary() == 0 and cluster.complete() or None, 30)

    def pairs() -> dict[tuple[int, int], int]:
        counts = control_connections(cluster)
        return {(i, j): counts.get((i, j), 0) + counts.get((j, i), 0) for i in cluster.ids for j in cluster.ids if i < j}

    cluster.wait("one connection per pair", lambda: set(pairs().values()) == {1} or None, 20)
    time.sleep(1)  # five heartbeat intervals over the one connection
    for i in cluster.ids:
        for j in cluster.ids:
            if i != j:
                assert cluster.seen(i, j)["up"], (i, j, cluster.logs())
    assert set(pairs().values()) == {1}, pairs()
    assert "is down" not in "".join(cluster.log(i) for i in cluster.ids), cluster.logs()

    # a request from the highest id to the primary, over the one connection the pair kept
    loaded = tmp_path / "loaded.conf"
    loaded.write_text(cluster.backup(3).read_text().replace("  downlink 100M\n", "  downlink 90M\n", 1))
    capsys.readouterr()
    code = main(["-c", str(cluster.config(3)), "load", str(loaded)])
    out, err = capsys.readouterr()
    assert code == 0 and "by the primary, server 0" in out, out + err
    cluster.wait("the load everywhere", lambda: all("downlink 90M" in cluster.backup(i).read_text() for i in cluster.ids)
                 and cluster.complete() or None, 20)
    assert set(pairs().values()) == {1}, pairs()
