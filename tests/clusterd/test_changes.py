"""Safe changes with real daemons on 127.0.0.x: load with confirm, expiry, confirm, rollback, history, show, diff.

Confirm windows are fractional minutes (0.1 is 6 s) so that a deadline passes within the test.
"""

from __future__ import annotations

import json
import re
import time

from confmerge import cluster_part, parse

from clusterd.cli import main

from .test_consistency import unified
from .test_sync import V2, sections

OWN = ("hostname", "bqn-id", "management", "interface", "wire", "routing")
LOADED = V2[0].replace("  downlink 5M\n", "  downlink 7M\n").replace(
    "\n# throttle software updates", "\npolicy rate gold\n  downlink 1G\n  uplink 100M\n\n# throttle software updates")


def clusterd(cluster, i, capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["-c", str(cluster.config(i)), *args])
    out, err = capsys.readouterr()
    return code, out, err


def cluster_text(cluster, i) -> str:
    return cluster_part(parse(cluster.backup(i).read_text(), str(cluster.backup(i))))


def own(cluster, i) -> dict[str, str]:
    text = cluster.backup(i).read_text()
    return {keyword: sections(text, keyword) for keyword in OWN}


def history(cluster, i, capsys) -> list[dict]:
    code, out, _ = clusterd(cluster, i, capsys, "history", "--json")
    assert code == 0
    return json.loads(out)


def everywhere(cluster, ids, texts: dict[int, str]):
    """Every server named holds the given cluster-wide text, and says it is complete."""
    return all(cluster_text(cluster, i) == texts[i] for i in ids) and (
        len(ids) < len(cluster.ids) or cluster.complete()) or None


def test_a_provisional_load_expires_by_itself_with_the_edits_on_top_and_a_confirmed_one_stays(
        cluster_factory, tmp_path, capsys):
    cluster = unified(cluster_factory)
    ids = (0, 1, 2)
    before = {i: cluster_text(cluster, i) for i in ids}
    own_before = {i: own(cluster, i) for i in ids}
    start = history(cluster, 0, capsys)
    loaded = tmp_path / "loaded.conf"
    loaded.write_text(LOADED)

    bad = tmp_path / "bad.conf"
    bad.write_text(LOADED.replace("  downlink 1G\n", "\tdownlink 1G\n"))
    code, out, err = clusterd(cluster, 2, capsys, "load", str(bad))
    assert code == 2 and re.search(r"bad\.conf:\d+:\d+: error: ", err) and "Traceback" not in err, err

    code, out, _ = clusterd(cluster, 2, capsys, "load", str(loaded), "--dry-run")
    assert code == 0 and "downlink 5M -> downlink 7M" in out and "policy rate gold" in out, out
    assert "dry run: nothing loaded" in out and history(cluster, 0, capsys) == start

    # provisional, asked on a secondary; an edit made on another secondary on top of it
    code, out, _ = clusterd(cluster, 2, capsys, "load", str(loaded), "--confirm", "0.12")
    assert code == 0 and "provisional" in out and "by the primary, server 0" in out, out
    cluster.wait("the load everywhere", lambda: all("downlink 7M" in cluster.backup(i).read_text() for i in ids), 10)
    status = cluster.status(1)
    assert status["pending"] is not None and 0 < status["pending"]["left"] <= 7.2, status["pending"]
    code, out, _ = clusterd(cluster, 1, capsys, "status")
    assert "provisional: the load of generation" in out and "unless confirmed (clusterd confirm)" in out, out
    cluster.edit(1, "  server 1.1.1.1\n", "  server 1.1.1.1\n  server 9.9.9.9\n")
    cluster.wait("the edit on the primary", lambda: "server 9.9.9.9" in cluster.backup(0).read_text(), 10)
    cluster.wait("every server back", lambda: everywhere(cluster, ids, before), 30)
    for i in ids:
        assert own(cluster, i) == own_before[i], f"server {i}'s own sections untouched"
        assert cluster.status(i)["pending"] is None
    newest, *_ = history(cluster, 0, capsys)
    edit = next(e for e in history(cluster, 0, capsys) if e["how"] == "edit on server 1")
    assert newest["made"] == "expiry" and edit["id"] in newest["returned"] and "edit on server 1" in newest["summary"]
    load = next(e for e in history(cluster, 1, capsys) if e["made"] == "load")
    assert load["state"] == "returned" and load["on"] == 2 and load["author"] == 0
    assert "returned with it: generation" in cluster.log(0) and "(edit on server 1)" in cluster.log(0)
    assert any("returned with it" in line for line in cluster.status(0)["events"])

    # confirmed from a secondary: it stays past its deadline
    code, out, _ = clusterd(cluster, 0, capsys, "load", str(loaded), "--confirm", "0.05")
    assert code == 0
    cluster.wait("the second load everywhere", lambda: all("downlink 7M" in cluster.backup(i).read_text()
                                                           for i in ids), 10)
    code, out, _ = clusterd(cluster, 1, capsys, "confirm")
    assert code == 0 and "is confirmed" in out, out
    code, _, err = clusterd(cluster, 2, capsys, "confirm")
    assert code == 2 and "no load is waiting to be confirmed" in err, err
    deadline = next(e for e in history(cluster, 2, capsys) if e["made"] == "load")["deadline"]
    time.sleep(max(0.0, deadline - time.time()) + 1.0)
    cluster.wait("complete", lambda: cluster.complete() or None, 10)
    assert all("downlink 7M" in cluster.backup(i).read_text() for i in ids)
    entries = history(cluster, 2, capsys)
    assert [e["made"] for e in entries[:2]] == ["confirm", "load"] and entries[1]["state"] == "confirmed"

    # show, diff and the text history name the same generations
    code, out, _ = clusterd(cluster, 1, capsys, "show", str(entries[1]["number"]))
    assert code == 0 and out == cluster_part(parse(LOADED, "loaded")), "the generation's text: the file's cluster part"
    code, out, _ = clusterd(cluster, 1, capsys, "diff", str(start[0]["number"]), entries[0]["id"][:10],
                            "--format", "json")
    data = json.loads(out)
    assert code == 1 and data["scope"] == "cluster"
    assert {(c["section"], c["op"]) for c in data["changes"]} == {("policy rate sw-updates-peak", "changed"),
                                                                   ("policy rate gold", "added")}
    code, out, _ = clusterd(cluster, 0, capsys, "history")
    assert re.search(rf"\n +{entries[1]['number']} .* load on server 0, to confirm by .*\[confirmed\]: "
                     r"added policy rate gold; changed policy rate sw-updates-peak", out), out
    code, _, err = clusterd(cluster, 0, capsys, "show", "999")
    assert code == 2 and "no generation 999" in err


def test_the_deadline_outlives_the_primary_and_a_rollback_returns_a_merge(cluster_factory, tmp_path, capsys):
    cluster = unified(cluster_factory)
    ids = (0, 1, 2)
    before = {i: cluster_text(cluster, i) for i in ids}
    own_before = {i: own(cluster, i) for i in ids}
    loaded = tmp_path / "loaded.conf"
    loaded.write_text(LOADED)
    code, out, _ = clusterd(cluster, 1, capsys, "load", str(loaded), "--confirm", "0.1")
    assert code == 0, out
    cluster.wait("the load everywhere", lambda: all("downlink 7M" in cluster.backup(i).read_text() for i in ids), 10)
    cluster.kill(0)
    cluster.wait("server 1 primary", lambda: cluster.agreed_primary() == 1 or None, 10)
    assert cluster.status(1)["pending"]["left"] > 0, "the new primary knows the deadline"
    cluster.wait("the survivors back", lambda: everywhere(cluster, (1, 2), before), 20)
    newest = history(cluster, 2, capsys)[0]
    assert newest["made"] == "expiry" and newest["author"] == 1
    cluster.start(0)
    cluster.wait("server 0 back, returned too", lambda: everywhere(cluster, ids, before), 30)
    for i in ids:
        assert own(cluster, i) == own_before[i]

    # a merge on heal: an edit made on server 2 while it was down, another on the primary meanwhile
    cluster.wait("server 0 primary again", lambda: cluster.agreed_primary() == 0 and cluster.complete() or None, 20)
    cluster.kill(2)
    cluster.edit(2, "  server 1.1.1.1\n", "  server 1.1.1.1\n  server 9.9.9.9\n")
    cluster.edit(0, "  server 216.229.0.50\n", "  server 216.229.0.50\n  server 10.1.1.1\n")
    cluster.wait("the primary recorded its edit", lambda: cluster.status(0)["generation"]["digest"] == cluster.digest(0)
                 or None, 10)
    cluster.start(2)
    cluster.wait("both edits everywhere", lambda: all("9.9.9.9" in cluster_text(cluster, i) and
                                                      "10.1.1.1" in cluster_text(cluster, i) for i in ids)
                 and cluster.complete() or None, 30)
    merge = history(cluster, 1, capsys)[0]
    assert merge["made"] == "merge" and merge["how"].startswith("merge on heal of server 2's generation")
    code, out, _ = clusterd(cluster, 2, capsys, "rollback", "1")
    assert code == 0 and "rolled back to generation" in out, out
    cluster.wait("the merge returned everywhere", lambda: all("9.9.9.9" not in cluster_text(cluster, i) and
                                                              "10.1.1.1" in cluster_text(cluster, i) for i in ids)
                 and cluster.complete() or None, 20)
    rollback, kept, *_ = history(cluster, 0, capsys)
    assert rollback["made"] == "rollback" and rollback["of"] == merge["parents"][0] and rollback["on"] == 2
    assert kept["id"] == merge["id"], "nothing in the history is rewritten"
    for i in ids:
        assert own(cluster, i) == own_before[i]
