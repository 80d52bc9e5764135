"""Nothing acknowledged is lost: the defects of issue 10, each as a scenario with real daemons on 127.0.0.x.

Each test is named after the defect it pins down; the faults are real
(SIGSTOP/SIGCONT, kill -9) and the edits are an operator's (an atomic replace
of a live backup while the fault lasts).
"""

from __future__ import annotations

import time

import pytest

from .test_sync import V2, all_have, third

TIMING = {"heartbeat": 0.2, "missed": 3, "hold": 1.0}


def unified(cluster_factory, ids=(0, 1, 2), **options):
    texts = {0: V2[0], 1: V2[1], 2: third(V2[1])}
    cluster = cluster_factory(list(ids), backups={i: texts[i] for i in ids}, **{**TIMING, **options})
    cluster.start_all()
    cluster.wait("complete", lambda: cluster.agreed_primary() == 0 and cluster.complete() or None, 30)
    return cluster


def converged(cluster, ids, needles):
    """Every server named holds every needle and one digest; with all of them running, all say complete."""
    if not all(all_have(cluster, ids, needle) for needle in needles):
        return None
    if len({cluster.digest(i) for i in ids}) != 1:
        return None
    return len(ids) < len(cluster.ids) or cluster.complete() or None


@pytest.mark.parametrize("edited", [1, 2], ids=["edit-on-the-interim-primary", "edit-on-a-secondary"])
def test_stale_primary_does_not_overwrite_edit(cluster_factory, edited):
    """Defect 1: a primary frozen past the detection time comes back and must not push its old configuration."""
    cluster = unified(cluster_factory)
    cluster.pause(0)
    cluster.wait("server 1 primary", lambda: cluster.agreed_primary() == 1 or None, 10)
    cluster.edit(edited, "  server 8.8.8.8\n", "  server 8.8.8.8\n  server 9.9.9.9\n")
    cluster.wait("the edit on 1 and 2", lambda: all_have(cluster, (1, 2), "server 9.9.9.9"), 15)
    cluster.resume(0)
    cluster.wait("server 0 primary again", lambda: cluster.agreed_primary() == 0 or None, 20)
    cluster.wait("the edit everywhere", lambda: converged(cluster, (0, 1, 2), ["server 9.9.9.9"]), 20)
    time.sleep(1.0)
    assert all_have(cluster, (0, 1, 2), "server 9.9.9.9"), "the returned primary must not undo the edit later"


def test_histories_made_apart_merge_when_the_servers_meet(cluster_factory):
    """Two primaries each made a generation in their own epoch (here one after the other, by restarts; the fault
    lab's defect 2 scenario makes them at once, in a partition); when they meet, both changes are kept."""
    cluster = unified(cluster_factory)
    cluster.kill(1)
    cluster.edit(0, "  server 8.8.8.8\n", "  server 8.8.8.8\n  server 9.9.9.9\n")
    cluster.wait("server 2 holds server 0's edit", lambda: all_have(cluster, (2,), "server 9.9.9.9"), 15)
    cluster.kill(0)
    cluster.kill(2)
    cluster.start(1)
    cluster.wait("server 1 primary on its own", lambda: (s := cluster.status(1)) and s["primary"] == 1 or None, 20)
    cluster.edit(1, "  downlink 100M\n", "  downlink 200M\n")
    cluster.wait("server 1 took its edit", lambda: (s := cluster.status(1)) and
                 s["generation"]["digest"] == cluster.digest(1) or None, 10)
    cluster.start(0)
    cluster.start(2)
    cluster.wait("both changes everywhere", lambda: converged(cluster, (0, 1, 2), ["server 9.9.9.9", "downlink 200M"]),
                 40)
    cluster.wait("server 0 primary again", lambda: cluster.agreed_primary() == 0 or None, 20)
    cluster.wait("still both changes", lambda: converged(cluster, (0, 1, 2), ["server 9.9.9.9", "downlink 200M"]), 20)


def test_acknowledged_secondary_edit_survives_primary_death(cluster_factory):
    """Defect 4: the primary took a secondary's edit and died before distributing it; the edit stays.

    The primary's copies fail from the moment of the edit (its known-hosts
    file names other host keys), and it keeps no text to send a delta of, so
    it can take the edit in and answer, but not send it on.
    """
    import asyncssh

    from clusterd import keys

    cluster = unified(cluster_factory)
    known_hosts = cluster.dir(0) / "state" / "known_hosts"
    known_hosts.write_text("")
    for j in (1, 2):
        keys.add_known_host(known_hosts, cluster.address(j), cluster.ssh_port(j),
                            asyncssh.generate_private_key("ssh-ed25519"))
    for kept in (cluster.dir(0) / "state" / "sync" / "history").glob("*.conf"):
        kept.unlink()
    cluster.edit(2, "  downlink 100M\n", "  downlink 200M\n")
    cluster.wait("the primary took the edit", lambda: all_have(cluster, (0,), "downlink 200M"), 15)
    cluster.wait("the primary tried to send it on", lambda: (s := cluster.seen(0, 1)) and s["sync"] == "sync failed"
                 or None, 15)
    cluster.kill(0)
    cluster.wait("server 1 primary", lambda: cluster.agreed_primary() == 1 or None, 10)
    cluster.wait("the edit on both survivors", lambda: converged(cluster, (1, 2), ["downlink 200M"]), 20)
    time.sleep(1.0)
    assert all_have(cluster, (1, 2), "downlink 200M"), "the new primary must not push the older generation over it"


def test_a_paused_secondary_does_not_force_elections(cluster_factory):
    """Defect 7: a secondary frozen past the detection time resumes as a secondary; nobody changes epoch."""
    cluster = unified(cluster_factory)
    epoch = cluster.status(0)["epoch"]
    cluster.pause(2)
    cluster.wait("server 2 down on the primary", lambda: (s := cluster.seen(0, 2)) and not s["up"] or None, 10)
    time.sleep(1.0)
    cluster.resume(2)
    cluster.wait("server 2 back", lambda: (s := cluster.seen(0, 2)) and s["up"] or None, 10)
    cluster.wait("complete", lambda: cluster.complete() or None, 15)
    time.sleep(1.5)
    for i in (0, 1, 2):
        status = cluster.status(i)
        assert (status["epoch"], status["primary"]) == (epoch, 0), (i, status["epoch"], status["primary"])
    assert "is primary in epoch" not in cluster.log(2)


def test_set_id_on_a_running_member_is_learned_by_its_peers(cluster_factory, capsys):
    """Defect 9: after set-id the peers know the server by its new id (same key), with no stale row and no loss."""
    from clusterd.cli import main

    cluster = unified(cluster_factory)
    assert main(["-c", str(cluster.config(2)), "set-id", "5"]) == 0
    capsys.readouterr()
    cluster.edit(2, "  downlink 100M\n", "  downlink 200M\n")

    def renamed():
        views = [cluster.status(i) for i in (0, 1, 2)]
        if not all(views) or views[2]["server"] != 5:
            return None
        return all([s["id"] for s in v["servers"]] == [0, 1, 5] for v in views) or None
    cluster.wait("every server knows server 5 and none server 2", renamed, 20)
    cluster.wait("the edit everywhere", lambda: converged(cluster, (0, 1, 2), ["downlink 200M"]), 20)
    for i in (0, 1):
        assert "id: 5" in cluster.config(i).read_text() and "id: 2" not in cluster.config(i).read_text()
    assert cluster.agreed_primary() == 0
    assert "primary in epoch" not in cluster.log(2).split("restarting the daemon")[-1], "it did not elect itself"
