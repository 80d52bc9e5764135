"""Safe changes with real daemons on 127.0.0.x: load with confirm, expiry, confirm, rollback, history, show, diff.

Confirm windows are fractional minutes (0.1 is 6 s) so that a deadline passes within the test.
"""

from __future__ import annotations

import json
import re
import time

from confmerge import cluster_part, parse

import pytest

from clusterd.changes import ChangeError, back, entries, pending, resolve
from clusterd.cli import main
from clusterd.client import ask
from clusterd.config import load as load_config
from clusterd.history import Generation, History
from clusterd.lab.checker import lost, returned
from clusterd.lab.operators import Record, exchange, policies, with_policy

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


def operate(cluster, record: Record, server: int, key: str) -> str:
    """An operator's edit as the fault lab makes it (a lab policy, swapped in), recorded; its line returned."""
    path = cluster.backup(server)
    text = path.read_text()
    value = record.value()
    new = with_policy(text, key, value)
    record.add(server, exchange(path, new), new, {key})
    return f"policy rate {key}\n  downlink {value}k\n  uplink 1M\n"


def judged(cluster, record: Record) -> tuple[list[str], list[str]]:
    """The fault lab's verdict on every edit (each acknowledged: the test waited for it on the primary and its
    own server): lost with the history's report of what rollbacks and expiries took back, and lost without it."""
    config = load_config(cluster.config(0))
    report = ask(config, {"type": "generations"})["generations"]
    reported = returned(report, lambda g: ask(config, {"type": "show", "ref": g}).get("text"))
    acked = {edit.number: edit.at for edit in record.edits}
    final = policies(cluster.backup(0).read_text())
    return lost(record, acked, final, [], reported), lost(record, acked, final, [])


def everywhere(cluster, ids, texts: dict[int, str]):
    """Every server named holds the given cluster-wide text, and says it is complete."""
    return all(cluster_text(cluster, i) == texts[i] for i in ids) and (
        len(ids) < len(cluster.ids) or cluster.complete()) or None


def made(history: History, parents: list[Generation], text: str, author: int = 0, **notes) -> Generation:
    generation = Generation.make(parents, author, 1, 1000.0 + len(history.known()), text, f"digest of {text}", **notes)
    history.add(generation, text)
    return generation


def test_the_pending_load_is_the_newest_unsettled_one_with_what_was_made_on_top(tmp_path):
    h = History(tmp_path)
    root = made(h, [], "root\n")
    load = made(h, [root], "load\n", how="load", deadline=2000.0, on=2)
    edit = made(h, [load], "edit\n", author=1, how="edit")
    side = made(h, [root], "side\n", author=2, how="edit")
    merged = made(h, [edit, side], "merged\n", how="merge")
    waiting = pending(h, merged.id)
    assert waiting is not None and waiting.load == load and waiting.before == root
    assert waiting.edits == (merged, edit), "the side branch was not made on top of the load"
    assert waiting.as_data(now=1990.0)["left"] == 10.0
    assert pending(h, side.id) is None
    confirmed = made(h, [merged], "merged\n", how="confirm", ends=load.id)
    assert pending(h, confirmed.id) is None
    assert pending(h, made(h, [merged], "root\n", how="rollback", of=root.id, ends=load.id).id) is None
    undone = made(h, [merged], "edit\n", how="rollback", of=edit.id)
    assert pending(h, undone.id).load == load, "a rollback to a generation made on top leaves the load provisional"
    entries_ = {e.generation.id: e for e in entries(h, confirmed.id)}
    assert entries_[load.id].state == "confirmed" and entries_[load.id].how.startswith("load on server 2, to confirm by")
    assert entries_[merged.id].how == "merge on heal of server 2's generation 2"


def test_a_generation_is_named_by_number_or_id_prefix_and_plainly_refused_otherwise(tmp_path):
    h = History(tmp_path)
    root = made(h, [], "root\n")
    left = made(h, [root], "left\n", author=1)
    right = made(h, [root], "right\n", author=2)
    head = made(h, [left, right], "merged\n")
    assert resolve(h, head.id, "1") == root and resolve(h, head.id, head.id[:8]) == head
    with pytest.raises(ChangeError, match="'2' is ambiguous: .*edit on server 1.*edit on server 2"):
        resolve(h, head.id, "2")
    with pytest.raises(ChangeError, match="no generation 9: the newest is 3"):
        resolve(h, head.id, "9")
    with pytest.raises(ChangeError, match="no generation with an id starting 'ffff'"):
        resolve(h, head.id, "ffff" if not head.id.startswith("ffff") else "eeee")
    with pytest.raises(ChangeError, match="neither a generation number nor an id prefix"):
        resolve(h, head.id, "latest")
    with pytest.raises(ChangeError, match="no generation with an id starting '1234567'"):
        resolve(h, head.id, "1234567")
    assert back(h, head, 1) == left and back(h, head, 2) == root
    with pytest.raises(ChangeError, match="goes back 2 generation"):
        back(h, head, 3)
    twins: dict[str, Generation] = {}
    for n in range(100_000):  # two ids with one 4-digit prefix: about 320 tries on average
        twin = Generation.make([head], 1, 1, float(n), "twin\n", "d")
        if twin.id[:4] in twins:
            break
        twins[twin.id[:4]] = twin
    h.add(twin, "twin\n")
    h.add(twins[twin.id[:4]], "twin\n")
    with pytest.raises(ChangeError, match=f"'{twin.id[:4]}' is ambiguous"):
        resolve(h, head.id, twin.id[:4])
    linear = History(tmp_path / "linear")
    first = made(linear, [], "first\n")
    second = made(linear, [first], "second\n")
    third = made(linear, [second], "third\n")
    (linear.directory / f"{second.id}.json").unlink()
    with pytest.raises(ChangeError, match="generation 2 is no longer kept here"):
        resolve(History(linear.root.parent), third.id, "2")


def test_a_provisional_load_expires_by_itself_with_the_edits_on_top_and_a_confirmed_one_stays(
        cluster_factory, tmp_path, capsys):
    cluster = unified(cluster_factory)
    ids = (0, 1, 2)
    record = Record()
    before = {i: cluster_text(cluster, i) for i in ids}
    digests = {i: cluster.digest(i) for i in ids}
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
    assert all(cluster_text(cluster, i) == before[i] for i in ids)

    # provisional, asked on a secondary; an edit made on another secondary on top of it
    code, out, _ = clusterd(cluster, 2, capsys, "load", str(loaded), "--confirm", "0.15")
    assert code == 0 and "provisional" in out and "by the primary, server 0" in out, out
    cluster.wait("the load pending everywhere", lambda: all((cluster.status(i) or {}).get("pending") for i in ids), 10)
    assert all("downlink 7M" in cluster.backup(i).read_text() for i in ids)
    status = cluster.status(1)
    assert status["pending"] is not None and 0 < status["pending"]["left"] <= 9, status["pending"]
    code, out, _ = clusterd(cluster, 1, capsys, "status")
    assert "provisional: the load of generation" in out and "unless confirmed (clusterd confirm)" in out, out
    code, _, err = clusterd(cluster, 0, capsys, "load", str(loaded))
    assert code == 2 and "is still provisional" in err, err
    on_top = operate(cluster, record, 1, "lab-on-top")
    cluster.wait("the edit on the primary", lambda: on_top in cluster.backup(0).read_text(), 10)
    cluster.wait("every server back (in normal form: blank lines between the sections added and removed may "
                 "differ)", lambda: all(cluster.digest(i) == digests[i] for i in ids) or None, 30)
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
    confirmed = operate(cluster, record, 2, "lab-confirmed")
    cluster.wait("the edit on the primary", lambda: confirmed in cluster.backup(0).read_text(), 10)
    code, out, _ = clusterd(cluster, 1, capsys, "confirm")
    assert code == 0 and "is confirmed" in out, out
    code, _, err = clusterd(cluster, 2, capsys, "confirm")
    assert code == 2 and "no load is waiting to be confirmed" in err, err
    deadline = next(e for e in history(cluster, 2, capsys) if e["made"] == "load")["deadline"]
    time.sleep(max(0.0, deadline - time.time()) + 1.0)
    cluster.wait("complete", lambda: cluster.complete() or None, 10)
    assert all("downlink 7M" in cluster_text(cluster, i) and confirmed in cluster_text(cluster, i) for i in ids)
    entries = history(cluster, 2, capsys)
    assert [e["made"] for e in entries[:3]] == ["confirm", "edit", "load"] and entries[2]["state"] == "confirmed"

    # show, diff and the text history name the same generations
    code, out, _ = clusterd(cluster, 1, capsys, "show", str(entries[2]["number"]))
    assert code == 0 and out == cluster_part(parse(loaded.read_text(), "loaded")), "the file's cluster part"
    code, out, _ = clusterd(cluster, 1, capsys, "diff", str(start[0]["number"]), entries[0]["id"][:10],
                            "--format", "json")
    data = json.loads(out)
    assert code == 1 and data["scope"] == "cluster"
    assert {(c["section"], c["op"]) for c in data["changes"]} == {
        ("policy rate sw-updates-peak", "changed"), ("policy rate gold", "added"), ("policy rate lab-confirmed", "added")}
    code, out, _ = clusterd(cluster, 0, capsys, "history")
    assert re.search(rf"\n +{entries[2]['number']} .* load on server 0, to confirm by .*\[confirmed\]: "
                     r"added policy rate gold; changed policy rate sw-updates-peak", out), out
    code, _, err = clusterd(cluster, 0, capsys, "show", "999")
    assert code == 2 and "no generation 999" in err

    # rollback --to: a new generation with the old text, on every server
    code, out, _ = clusterd(cluster, 2, capsys, "rollback", "--to", str(start[0]["number"]))
    assert code == 0, out
    cluster.wait("every server rolled back", lambda: everywhere(cluster, ids, before), 20)
    newest = history(cluster, 1, capsys)[0]
    assert newest["made"] == "rollback" and newest["of"] == start[0]["id"] and newest["on"] == 2
    assert [e["id"] for e in history(cluster, 1, capsys)[1:4]] == [e["id"] for e in entries[:3]]

    # a secondary asks the primary for a text it does not keep
    (cluster.dir(1) / "state" / "sync" / "history" / f"{entries[2]['id']}.conf").unlink()
    code, out, _ = clusterd(cluster, 1, capsys, "show", entries[2]["id"][:8])
    assert code == 0 and out == cluster_part(parse(loaded.read_text(), "loaded"))

    # a rollback to before a provisional load returns the load with it
    code, out, _ = clusterd(cluster, 1, capsys, "load", str(loaded), "--confirm", "10")
    assert code == 0 and cluster.wait("pending on server 2", lambda: (cluster.status(2) or {}).get("pending"), 10)
    code, out, _ = clusterd(cluster, 0, capsys, "rollback", "1")
    assert code == 0 and "is returned with it" in out, out
    cluster.wait("every server back again", lambda: everywhere(cluster, ids, before), 20)
    newest, load, *_ = history(cluster, 2, capsys)
    assert newest["ends"] == load["id"] and load["state"] == "returned" and cluster.status(2)["pending"] is None

    # the fault lab's judgement: nothing acknowledged lost but what the operator's own rollbacks took back, reported
    with_report, without = judged(cluster, record)
    assert with_report == [] and len(without) == 2, without
    assert "lab-on-top" in without[0] and "lab-confirmed" in without[1]


def test_the_deadline_outlives_the_primary_and_a_rollback_returns_a_merge(cluster_factory, tmp_path, capsys):
    cluster = unified(cluster_factory)
    ids = (0, 1, 2)
    before = {i: cluster_text(cluster, i) for i in ids}
    own_before = {i: own(cluster, i) for i in ids}
    loaded = tmp_path / "loaded.conf"
    loaded.write_text(LOADED)
    code, out, _ = clusterd(cluster, 1, capsys, "load", str(loaded), "--confirm", "0.15")
    assert code == 0, out
    cluster.wait("the load pending everywhere", lambda: all((cluster.status(i) or {}).get("pending") for i in ids), 10)
    cluster.kill(0)
    cluster.wait("server 1 primary", lambda: cluster.agreed_primary() == 1 or None, 10)
    assert cluster.status(1)["pending"]["left"] > 0, "the new primary knows the deadline"
    cluster.kill(2)
    cluster.start(2)
    restarted = cluster.wait("server 2 answers again", lambda: cluster.status(2), 10)
    assert restarted["pending"]["left"] > 0, "a restarted server reads the deadline from its history"
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
    record = Record()
    two = operate(cluster, record, 2, "lab-two")
    zero = operate(cluster, record, 0, "lab-zero")
    cluster.wait("the primary recorded its edit", lambda: cluster.status(0)["generation"]["digest"] == cluster.digest(0)
                 or None, 10)
    cluster.start(2)
    cluster.wait("both edits everywhere", lambda: all(two in cluster_text(cluster, i) and
                                                      zero in cluster_text(cluster, i) for i in ids)
                 and cluster.complete() or None, 30)
    merge = history(cluster, 1, capsys)[0]
    assert merge["made"] == "merge" and merge["how"].startswith("merge on heal of server 2's generation")
    code, out, _ = clusterd(cluster, 2, capsys, "rollback", "1")
    assert code == 0 and "rolled back to generation" in out, out
    cluster.wait("the merge returned everywhere", lambda: all(two not in cluster_text(cluster, i) and
                                                              zero in cluster_text(cluster, i) for i in ids)
                 and cluster.complete() or None, 20)
    rollback, kept, *_ = history(cluster, 0, capsys)
    assert rollback["made"] == "rollback" and rollback["of"] == merge["parents"][0] and rollback["on"] == 2
    assert kept["id"] == merge["id"], "nothing in the history is rewritten"
    with_report, without = judged(cluster, record)
    assert with_report == [] and len(without) == 1 and "lab-two" in without[0], without
    for i in ids:
        assert own(cluster, i) == own_before[i]
