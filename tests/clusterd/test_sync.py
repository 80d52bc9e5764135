"""Distribution of the unified configuration with real daemons and real SSH on loopback."""

from __future__ import annotations

import os
import re
import time

from confmerge.files import write_atomic

from .harness import FIXTURES

V1 = {i: (FIXTURES / f"bqn{i}-v1.conf").read_text() for i in (0, 1, 2)}
V2 = {0: (FIXTURES / "expected" / "bqn0-v2.conf").read_text(), 1: (FIXTURES / "expected" / "bqn1-v2.conf").read_text()}


def third(text: str) -> str:
    """Server 2 made from bqn1's backup, as ``fixtures/bqn2-v1.conf`` is: its own identity and interfaces."""
    text = text.replace("hostname bqn1", "hostname bqn2").replace("bqn-id 1", "bqn-id 2")
    text = text.replace("# hostname: bqn1", "# hostname: bqn2").replace("# bqn-id: 1", "# bqn-id: 2")
    text = re.sub(r"address 192\.168\.0\.\d+/24", "address 192.168.0.123/24", text)
    return text.replace('description "access side"', 'description "access side, bqn2"')


def sections(text: str, keyword: str) -> str:
    """One section's block as written (first line to the line before the next top-level line)."""
    lines = text.splitlines(keepends=True)
    out, inside = [], False
    for line in lines:
        if not line[:1].isspace() and line.strip():
            inside = line.split()[0] == keyword
        if inside:
            out.append(line)
    return "".join(out)


def all_have(cluster, ids, needle: str, present: bool = True):
    return all((needle in cluster.backup(i).read_text()) == present for i in ids) or None


def test_join_unifies_cluster_wide_sections_and_keeps_each_servers_own(cluster_factory):
    cluster = cluster_factory([0, 1, 2], backups={0: V1[0], 1: V1[1], 2: V1[2].replace(
        "  server 162.159.200.1\n", "  server 162.159.200.1\n  server 10.0.0.123\n")})
    cluster.start(0)
    cluster.start(1)
    before = {i: cluster.backup(i).read_text() for i in (1, 2)}
    cluster.wait("0 and 1 in sync", lambda: cluster.digest(1) == cluster.digest(0) or None, 20)
    after = cluster.backup(1).read_text()
    for own in ("management", "interface", "routing", "hostname", "bqn-id", "wire"):
        assert sections(after, own) == sections(before[1], own), own
    assert "216.229.0.50" not in after, "the primary's configuration wins where nobody unified first"
    assert "rule sw-updates-at-peak" in after and "policy rate sw-updates-peak" in after

    cluster.start(2)
    cluster.wait("complete with three", lambda: cluster.complete() or None, 25)
    joined = cluster.backup(2).read_text()
    assert cluster.digest(2) == cluster.digest(0)
    assert "10.0.0.123" not in joined
    for own in ("management", "interface", "hostname", "bqn-id"):
        assert sections(joined, own) == sections(before[2], own), own
    status = cluster.status(0)
    assert [s["sync"] for s in status["servers"]] == ["in sync"] * 3
    assert len({s["generation"] for s in status["servers"]}) == 1


def test_backups_unified_by_confmerge_first_are_left_byte_identical(cluster_factory):
    cluster = cluster_factory([0, 1], backups={0: V2[0], 1: V2[1]})
    cluster.start_all()
    cluster.wait("complete", lambda: cluster.complete() or None, 20)
    assert cluster.backup(0).read_text() == V2[0]
    assert cluster.backup(1).read_text() == V2[1]
    assert "the backup already held it" in cluster.log(1)


def test_a_join_holding_the_generations_text_copies_nothing(cluster_factory):
    """Servers loaded with one unified file (the guide's procedure): the secondary takes the text from its backup."""
    own = V2[0].replace("bqn0", "bqn1").replace("bqn-id 0", "bqn-id 1")
    cluster = cluster_factory([0, 1], backups={0: V2[0], 1: own})
    cluster.start_all()
    cluster.wait("complete", lambda: cluster.complete() or None, 20)
    assert re.search(r"server 1 applied generation 1 \(\w+\) \(its backup already held it\) in [\d.]+ s "
                     r"\(live [\d.]+ s, 0 bytes\)", cluster.log(0)), cluster.log(0)
    assert "sync to server 1 failed" not in cluster.log(0)


def test_a_join_with_the_same_digest_but_other_bytes_is_refused_the_live_text_and_copied(cluster_factory):
    """Same configuration, another comment in a cluster-wide section: the secondary refuses, the text is copied."""
    commented = V2[1].replace("dns\n", "dns\n  # the ISP's resolvers\n", 1)
    cluster = cluster_factory([0, 1], backups={0: V2[0], 1: commented})
    cluster.start_all()
    cluster.wait("complete", lambda: cluster.complete() or None, 20)
    log = cluster.log(0)
    assert "sync to server 1 failed: the live backup's cluster-wide part is not the generation's text" in log, log
    assert re.search(r"server 1 applied generation 1 \(\w+\) .*\(copy [\d.]+ s, [1-9]\d* bytes\)", log), log
    assert cluster.digest(1) == cluster.digest(0)


def unified_three(cluster_factory, **options):
    cluster = cluster_factory([0, 1, 2], backups={0: V2[0], 1: V2[1], 2: third(V2[1])}, **options)
    cluster.start_all()
    cluster.wait("complete", lambda: cluster.complete() or None, 25)
    return cluster


def test_edits_on_the_primary_and_on_a_secondary_reach_every_server_and_so_do_deletions(cluster_factory):
    cluster = unified_three(cluster_factory)
    generation = cluster.status(0)["generation"]["number"]

    cluster.edit(0, "  server 8.8.8.8\n", "  server 8.8.8.8\n  server 9.9.9.9\n")
    cluster.wait("the primary's edit everywhere", lambda: all_have(cluster, (1, 2), "server 9.9.9.9"), 15)

    cluster.edit(2, "  downlink 100M\n", "  downlink 200M\n")
    cluster.wait("the secondary's edit everywhere", lambda: all_have(cluster, (0, 1), "downlink 200M"), 15)

    cluster.edit(1, "  host fast.com\n", "")
    cluster.wait("the deletion everywhere", lambda: all_have(cluster, (0, 1, 2), "host fast.com", present=False), 15)
    cluster.edit(0, "  server 1.1.1.1\n", "")
    cluster.wait("the primary's deletion everywhere", lambda: all_have(cluster, (1, 2), "server 1.1.1.1", False), 15)

    cluster.wait("complete again", lambda: cluster.complete() or None, 15)
    assert cluster.status(2)["generation"]["number"] >= generation + 4
    for i in (1, 2):
        assert sections(cluster.backup(i).read_text(), "management") == sections(
            {1: V2[1], 2: third(V2[1])}[i], "management")


def test_concurrent_conflicting_edits_resolve_to_the_primarys_and_are_reported(cluster_factory):
    cluster = unified_three(cluster_factory)
    text1 = cluster.backup(1).read_text().replace("  uplink 20M\n", "  uplink 30M\n")
    text2 = cluster.backup(2).read_text().replace("  uplink 20M\n", "  uplink 40M\n")
    write_atomic(cluster.backup(1), text1)
    write_atomic(cluster.backup(2), text2)
    cluster.wait("one value everywhere", lambda: len({cluster.digest(i) for i in (0, 1, 2)}) == 1 and
                 "uplink 20M" not in cluster.backup(0).read_text() or None, 20)
    cluster.wait("complete", lambda: cluster.complete() or None, 15)
    chosen = re.search(r"policy rate plan-100M\n(?:  .*\n)*?  uplink (\d+M)", cluster.backup(0).read_text()).group(1)
    assert chosen in ("30M", "40M")
    loser = {"30M": "40M", "40M": "30M"}[chosen]
    conflicts = cluster.status(0)["conflicts"]
    assert any(f"uplink {loser}" in (c["edit"] or "") and f"uplink {chosen}" in (c["chosen"] or "")
               for c in conflicts), conflicts
    assert f"not 'uplink {loser}'" in cluster.log(0)


def test_a_file_changed_behind_the_daemons_back_is_found_by_the_drift_check(cluster_factory):
    cluster = unified_three(cluster_factory, drift=1.0)
    path = cluster.backup(2)
    before = path.stat()
    text = path.read_text().replace("  downlink 5M\n", "  downlink 7M\n")
    assert len(text) == before.st_size
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    cluster.wait("the change everywhere", lambda: all_have(cluster, (0, 1), "downlink 7M"), 15)


def test_the_apply_command_runs_and_its_failure_restores_the_previous_file(cluster_factory, tmp_path):
    marker = tmp_path / "applied"
    cluster = cluster_factory([0, 1, 2], backups={0: V1[0], 1: V1[1], 2: V1[2]}, apply_command={
        1: f'echo "$CLUSTERD_GENERATION $CLUSTERD_BACKUP" >> {marker}',
        2: "echo 'bqn: load failed' >&2; exit 3",
    })
    original = cluster.backup(2).read_text()
    cluster.start_all()
    cluster.wait("server 1 applied", lambda: marker.exists() or None, 20)
    assert marker.read_text().split()[1] == str(cluster.backup(1))
    failure = cluster.wait("the failure on the primary",
                           lambda: (s := cluster.seen(0, 2)) and s["sync"] == "sync failed" and s or None, 20)
    assert "apply command failed (exit 3): bqn: load failed" in failure["error"]
    assert cluster.backup(2).read_text() == original, "the previous file is back"
    assert cluster.status(0)["status"] == "incomplete"
    previous = cluster.dir(2) / "state" / "sync" / "previous.conf"
    assert previous.read_text() == original


def test_a_wrong_ssh_host_key_refuses_the_transfer(cluster_factory):
    import asyncssh

    from clusterd import keys

    cluster = cluster_factory([0, 1], backups={0: V1[0], 1: V1[1]})
    keys.add_known_host(cluster.dir(0) / "state" / "known_hosts", cluster.address(1), cluster.ssh_port(1),
                        asyncssh.generate_private_key("ssh-ed25519"))
    original = cluster.backup(1).read_text()
    cluster.start_all()
    failure = cluster.wait("refused", lambda: (s := cluster.seen(0, 1)) and s["sync"] == "sync failed" and s or None, 20)
    assert "host key" in failure["error"] and "refusing to send" in failure["error"]
    time.sleep(1)
    assert cluster.backup(1).read_text() == original


def test_clusterd_diff_shows_what_a_server_would_gain_or_lose_and_sync_pushes_again(cluster_factory, capsys):
    from clusterd.cli import main

    cluster = cluster_factory([0, 1], backups={0: V1[0], 1: V1[1]}, apply_command={1: "exit 1"})
    cluster.start_all()
    cluster.wait("the refusal", lambda: (s := cluster.seen(0, 1)) and "apply command" in (s["error"] or "") or None, 20)
    assert main(["-c", str(cluster.config(0)), "diff", "1"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("server 1 against the cluster (primary 0):")
    assert "rule sw-updates-at-peak" in out and "216.229.0.50" in out
    assert "interface" not in out, "cluster-wide sections only"
    assert main(["-c", str(cluster.config(1)), "diff"]) == 1, "any server can ask"
    capsys.readouterr()

    assert main(["-c", str(cluster.config(1)), "sync"]) == 2
    assert "not the primary" in capsys.readouterr().err
    generation = cluster.status(0)["generation"]["number"]
    assert main(["-c", str(cluster.config(0)), "sync"]) == 0
    assert f"generation {generation + 1}" in capsys.readouterr().out


def test_clusterd_diff_of_servers_in_sync_is_empty(cluster_factory, capsys):
    from clusterd.cli import main

    cluster = cluster_factory([0, 1], backups={0: V2[0], 1: V2[1]})
    cluster.start_all()
    cluster.wait("complete", lambda: cluster.complete() or None, 20)
    assert main(["-c", str(cluster.config(0)), "diff"]) == 0
    assert "no difference" in capsys.readouterr().out


def test_a_slow_secondary_holds_up_nobody(cluster_factory):
    cluster = cluster_factory([0, 1, 2], backups={0: V1[0], 1: V1[1], 2: V1[2]},
                              apply_command={1: "sleep 6"})
    cluster.start_all()
    cluster.wait("server 2 in sync", lambda: (s := cluster.seen(0, 2)) and s["sync"] == "in sync" or None, 20)
    slow = cluster.seen(0, 1)
    assert slow is not None and slow["sync"] in ("syncing", "awaiting initial sync"), slow
    cluster.wait("server 1 in sync after its slow apply", lambda: cluster.complete() or None, 25)
