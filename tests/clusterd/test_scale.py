"""A cluster past every other test's size: 32 real daemons on 127.0.0.1-32 with sparse links.

Not timed (``bench/scale.py`` measures): it proves that at this size the
membership holds without a mesh (a secondary links to the primary and its
neighbours, and knows the others from the primary's announcement), that edits
on the primary and on a far secondary reach every server (as deltas), and
that a killed primary is replaced by the next lowest id with every server agreeing.
"""

from __future__ import annotations

import re

import pytest

from clusterd.client import ask
from clusterd.config import load
from clusterd.membership import NEIGHBOURS

IDS = list(range(32))
FAR = 20
"""A secondary that is no neighbour of server 0 or 1."""

pytestmark = pytest.mark.timeout(240)


def holds_everywhere(cluster, primary: int, needle: str, after: int) -> bool | None:
    status = cluster.status(primary)
    if status is None or status["generation"]["number"] <= after:
        return None
    head = status["generation"]["id"]
    in_sync = all(s["up"] and s["head"] == head and s["sync"] == "in sync" for s in status["servers"])
    return in_sync and all(needle in cluster.backup(i).read_text() for i in cluster.running()) or None


def test_32_servers_sparse_membership_distribution_and_failover(cluster_factory):
    cluster = cluster_factory(IDS, heartbeat=0.3, hold=1.0)
    cluster.start_all()
    status = cluster.wait("server 0 complete", lambda: (cluster.status(0) or {}).get("status") == "complete"
                          and cluster.status(0), 150, every=0.5)
    assert status["primary"] == 0 and len(status["servers"]) == 32
    assert not any("via" in s for s in status["servers"]), "the primary links to everyone"

    far = cluster.wait("a far secondary complete", lambda: (cluster.status(FAR) or {}).get("status") == "complete"
                       and cluster.status(FAR), 30, every=0.5)
    assert far["primary"] == 0 and far["state"] == "ready"
    direct = {s["id"] for s in far["servers"] if not s["this"] and "via" not in s}
    assert direct == {0} | {FAR + k for k in range(-NEIGHBOURS, NEIGHBOURS + 1) if k}, \
        "a secondary links to the primary and its neighbours only"
    assert all(s["up"] and s["sync"] == "in sync" for s in far["servers"]), "it knows the rest from the primary"

    unlinked = max(set(IDS) - direct - {FAR})
    seen = cluster.wait("the far secondary answering for a server it does not link to", lambda: next(
        (s for s in ask(load(cluster.config(FAR)), {"type": "throughput", "server": None, "seconds": 60},
                        timeout=5)["throughput"]["servers"] if s["id"] == unlinked and s["hostname"]), None), 20)
    assert seen["up"] and not seen["this"], "its samples come from the primary, which hears from every server"

    number = status["generation"]["number"]
    cluster.edit(0, "  uplink 20M\n", "  uplink 21M\n")
    cluster.wait("the primary's edit everywhere", lambda: holds_everywhere(cluster, 0, "  uplink 21M\n", number), 90)
    assert re.search(r"server \d+ applied generation \d+ \(\w+\) in [\d.]+ s \(delta", cluster.log(0)), \
        "a change of one line travels as a delta"

    number = cluster.status(0)["generation"]["number"]
    cluster.edit(FAR, "  downlink 100M\n", "  downlink 101M\n")
    cluster.wait("a far secondary's edit everywhere",
                 lambda: holds_everywhere(cluster, 0, "  downlink 101M\n", number), 90)

    def claims() -> dict[int, int]:
        return {i: len(re.findall(rf"server {i} is primary in epoch", cluster.log(i))) for i in cluster.running()}

    before = claims()
    cluster.kill(0)
    cluster.wait("server 1 primary for every server", lambda: all(
        (cluster.status(i) or {}).get("primary") == 1 for i in (1, 2, FAR, 31)) or None, 60, every=0.2)
    claimed = {i for i, count in claims().items() if count > before.get(i, 0)}
    assert claimed == {1}, f"only the next lowest id claimed: {claimed}"
    cluster.wait("server 1 complete but for server 0", lambda: all(
        s["up"] == (s["id"] != 0) for s in (cluster.status(1) or {"servers": [{"id": 0, "up": True}]})["servers"])
        or None, 60, every=0.5)
