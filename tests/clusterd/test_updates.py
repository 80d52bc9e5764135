"""``clusterd update``: packages checked, copied and installed one server at a time on real daemons.

The packages are shell scripts the tests make (:mod:`.packages`): installing
one writes the server's version file and stops its daemon, which the
supervisor starts again as systemd would. Operators of the fault lab edit the
live backups during a roll-out, and its checker judges that no edit was lost.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from clusterd.cli import main
from clusterd import config as cluster_config
from clusterd.client import ask
from clusterd.lab.checker import Sampler, judge
from clusterd.lab.operators import Operator, Record, exchange, policies, seeded, with_policy
from clusterd.lab.world import unified_backup
from clusterd.package import PackageError, check_package, load, make

from ..web.server import Client, Server
from .harness import Supervised
from .packages import UPDATE_SETTINGS, installs, make_package, sign, signing_key

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="signatures are checked by ssh-keygen")


@pytest.fixture
def supervised(tmp_path: Path):
    made: list[Supervised] = []

    def make_cluster(ids: list[int], extra: str = UPDATE_SETTINGS, web: tuple[int, ...] = ()) -> Supervised:
        cluster = Supervised(tmp_path / f"cluster{len(made)}", ids, extra=extra, missed=5,
                             backups={i: seeded(unified_backup(i)) for i in ids})
        made.append(cluster)
        for i in ids:
            (cluster.dir(i) / "version").write_text("1.0\n")
        for i in web:
            with socket.socket() as probe:
                probe.bind((cluster.address(i), 0))
                port = probe.getsockname()[1]
            with open(cluster.config(i), "a") as handle:
                handle.write(f"web:\n  listen: {cluster.address(i)}:{port}\n")
            cluster.web[i] = f"https://{cluster.address(i)}:{port}/"
        cluster.start_all()
        cluster.wait("the cluster complete", lambda: cluster.complete() and all(
            (cluster.dir(i) / "state" / "web-token").exists() for i in web) or None, 90)
        return cluster

    yield make_cluster
    for cluster in made:
        cluster.stop_all()


def update(cluster: Supervised, i: int, *args: str, capsys: Any) -> tuple[int, str, str]:
    code = main(["-c", str(cluster.config(i)), "update", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def status_data(cluster: Supervised, i: int, capsys: Any) -> dict[str, Any]:
    code, out, err = update(cluster, i, "status", "--json", capsys=capsys)
    assert code == 0, err
    return json.loads(out)


def api(cluster: Supervised, i: int, bearer: bool = True) -> Client:
    """Server i's web API (HTTPS, its certificate, its token)."""
    state = cluster.dir(i) / "state"
    return Client(Server(cluster.processes[i], cluster.web[i], (state / "web-token").read_text().strip(), state, [],
                         state / "web-cert.pem"), bearer=bearer)


def versions(cluster: Supervised) -> dict[int, str]:
    return {i: (cluster.dir(i) / "version").read_text().strip() for i in cluster.ids}


def starts(cluster: Supervised, version: str) -> list[int]:
    return [server for server, v, what in installs(cluster.root) if v == version and what == "start"]


def test_a_package_is_what_its_manifest_says_and_signed_by_the_key_when_one_is_named(tmp_path, capsys):
    package = make_package(tmp_path, "2.0")
    key, public = signing_key(tmp_path)
    (tmp_path / "other").mkdir()
    _, other_public = signing_key(tmp_path / "other")
    check_package(load(package), None)
    with pytest.raises(PackageError, match="not signed"):
        check_package(load(package), public)
    sign(package, key)
    check_package(load(package), public)
    with pytest.raises(PackageError, match="signature is not valid"):
        check_package(load(package), other_public)

    manifest = package.with_name(package.name + ".manifest")
    signed = manifest.read_text()
    manifest.write_text(signed.replace('"2.0"', '"2.1"'))
    with pytest.raises(PackageError, match="signature is not valid"):
        check_package(load(package), public)
    manifest.write_text(signed)
    package.write_text(package.read_text().replace("set -e", "set -e; rm -rf /opt/bqn"))
    with pytest.raises(PackageError, match="not the package it describes"):
        check_package(load(package), public)
    with pytest.raises(PackageError, match="not the package it describes"):
        check_package(load(package), None)

    lone = tmp_path / "lone.tar"
    lone.write_bytes(b"x" * 10)
    with pytest.raises(PackageError, match="no manifest"):
        load(lone)
    assert main(["package", str(lone), "--version", "3.0"]) == 0
    assert "ssh-keygen -Y sign" in capsys.readouterr().out
    assert load(lone).manifest.version == "3.0" and load(lone).manifest.size == 10
    assert make(lone, "3.0").sha256 == load(lone).manifest.sha256


def test_rolling_update_three_servers_checks_stops_at_a_failure_and_loses_no_edit(supervised, tmp_path, capsys):
    key, public = signing_key(tmp_path)
    cluster = supervised([0, 1, 2], extra=UPDATE_SETTINGS + f"update-signing-key: '{public}'\n")
    packages = tmp_path / "packages"

    # refused before anything moves: unsigned, then signed but tampered with
    unsigned = make_package(packages / "unsigned", "2.0")
    code, out, err = update(cluster, 0, str(unsigned), capsys=capsys)
    assert code == 2 and "not signed" in err, err
    tampered = make_package(packages / "tampered", "2.0")
    sign(tampered, key)
    tampered.write_text(tampered.read_text() + "echo owned\n")
    code, out, err = update(cluster, 0, str(tampered), capsys=capsys)
    assert code == 2 and "not the package it describes" in err, err
    assert installs(cluster.root) == [] and all(
        not any((cluster.dir(i) / "state" / "updates" / "packages").iterdir()) for i in cluster.ids)

    # each server checks the package again on arrival, with its own key: one that trusts another key refuses it,
    # and the roll-out ends before anything is installed
    (tmp_path / "other").mkdir()
    _, other_public = signing_key(tmp_path / "other")
    config_2 = cluster.config(2).read_text()
    cluster.config(2).write_text(config_2.replace(public, other_public))
    assert ask(cluster_config.load(cluster.config(2)), {"type": "reload"})["ok"]
    signed = make_package(packages / "signed", "2.0")
    sign(signed, key)
    code, out, err = update(cluster, 0, str(signed), capsys=capsys)
    assert code == 1 and "roll-out failed: server 2: the package's signature is not valid" in out, out + err
    assert installs(cluster.root) == []
    cluster.config(2).write_text(config_2)
    assert ask(cluster_config.load(cluster.config(2)), {"type": "reload"})["ok"]

    # a dry run: the order, nothing done
    failing = make_package(packages / "failing", "2.0", fail_on=1)
    sign(failing, key)
    code, out, err = update(cluster, 0, str(failing), "--dry-run", capsys=capsys)
    assert code == 0 and "order: 2 -> 1 -> 0" in out and "nothing copied" in out, out + err
    assert installs(cluster.root) == []

    # a package that fails on server 1: server 2 updated, server 1 reported with the reason, server 0 untouched
    code, out, err = update(cluster, 0, str(failing), capsys=capsys)
    assert code == 1, out + err
    assert "server 1: failed: update-command exited with status 3" in out, out
    assert "No space left on device" in out, "the command's last lines"
    assert versions(cluster) == {0: "1.0", 1: "1.0", 2: "2.0"}
    assert starts(cluster, "2.0") == [2, 1], "server 0, not reached, was not touched"
    seen = status_data(cluster, 2, capsys)
    assert seen["rollout"]["state"] == "failed" and "server 1" in seen["rollout"]["reason"]
    assert seen["versions"] == {"0": "1.0", "1": "1.0", "2": "2.0"}
    assert any("different versions" in w for w in seen["warnings"])
    code, out, err = update(cluster, 2, "status", capsys=capsys)
    assert code == 0 and "failed (1 of 3 servers done" in out and "warning: servers run different versions: 1.0 on 0, 1; " \
        "2.0 on 2" in out, out

    # mixed versions stay usable, and what only the newer server knows is neither sent by the older primary nor
    # replaced in the newer server's backup (unclassified: format page, section 5): it stays there byte for byte
    cluster.edit(2, "policy rate plan-100M\n", "policy rate plan-100M\n  burst-buffer 64k adaptive\n")
    with open(cluster.backup(2), "a") as handle:
        handle.write("\nbqn-telemetry-v9\n  exporter 10.0.0.9 port 4317\n")
    exchange(cluster.backup(0), with_policy(cluster.backup(0).read_text(), "lab-mixed-versions", 4242))
    cluster.wait("the older primary's edit on every server", lambda: all(
        policies(cluster.backup(i).read_text()).get("lab-mixed-versions") == 4242 for i in cluster.ids) or None, 20)
    cluster.wait("the cluster complete in mixed versions", lambda: cluster.complete() or None, 20)
    newer = cluster.backup(2).read_text()
    assert "  burst-buffer 64k adaptive\n" in newer and "bqn-telemetry-v9\n  exporter 10.0.0.9 port 4317\n" in newer
    assert all("burst-buffer" not in cluster.backup(i).read_text() for i in (0, 1))
    assert all("bqn-telemetry-v9" not in cluster.backup(i).read_text() for i in (0, 1))

    # a roll-out aborted from another server while its first install runs: that install ends by itself, the
    # servers not started are not touched, and the coordinator stops
    aborted = make_package(packages / "aborted", "2.5", pause=1.0)
    sign(aborted, key)
    code, out, err = update(cluster, 0, str(aborted), "--detach", capsys=capsys)
    assert code == 0, out + err
    cluster.wait("server 2 installing 2.5", lambda: 2 in starts(cluster, "2.5") or None, 30)
    code, out, err = update(cluster, 1, "abort", capsys=capsys)
    assert code == 0 and "aborted" in out, out + err
    cluster.wait("server 2 back on 2.5", lambda: versions(cluster)[2] == "2.5" and cluster.complete() or None, 60)
    seen = status_data(cluster, 0, capsys)
    assert seen["rollout"]["state"] == "aborted" and not seen["coordinating"], seen
    assert starts(cluster, "2.5") == [2] and versions(cluster) == {0: "1.0", 1: "1.0", 2: "2.5"}

    # the next release, two at a time, with operators editing every server meanwhile: the primary last, alone
    good = make_package(packages / "good", "3.0", pause=0.3)
    sign(good, key)
    record = Record()
    operators = [Operator(i, cluster.backup(i), record, seed=15, rate=1.5) for i in cluster.ids]
    sampler = Sampler(cluster)  # type: ignore[arg-type]
    sampler.start()
    for operator in operators:
        operator.start()
    try:
        code, out, err = update(cluster, 1, str(good), "--parallel", "2", capsys=capsys)
    finally:
        for operator in operators:
            operator.stop()
    try:
        assert code == 0, out + err + cluster.logs()
        assert versions(cluster) == {0: "3.0", 1: "3.0", 2: "3.0"}
        order = [(s, what) for s, v, what in installs(cluster.root) if v == "3.0"]
        assert order[-2:] == [(0, "start"), (0, "end")] and sorted(order[:4]) == [
            (1, "end"), (1, "start"), (2, "end"), (2, "start")], f"the primary last and alone: {order}"
        steps = status_data(cluster, 1, capsys)["rollout"]["steps"]
        assert steps["1"]["started"] < steps["2"]["finished"], "two at a time: server 1 started while 2 installed"
        assert cluster.agreed_primary() == 0, "the primary's role came back after its update"
        verdict = judge(cluster, record, sampler.seen, settle=30)  # type: ignore[arg-type]
    finally:
        sampler.stop()
    assert verdict.ok and verdict.edits > 0, verdict.summary()
    seen = status_data(cluster, 0, capsys)
    assert seen["rollout"]["state"] == "done" and seen["progress"] == "3 of 3" and seen["warnings"] == []
    assert seen["versions"] == {"0": "3.0", "1": "3.0", "2": "3.0"}
    assert "bqn-telemetry-v9\n  exporter" in cluster.backup(2).read_text(), "the newer section outlived the roll-out"
    assert "  burst-buffer 64k adaptive\n" in cluster.backup(2).read_text()
    assert cluster.restarts == {0: 1, 1: 1, 2: 3}, "each install that succeeded restarted its daemon once"


def test_a_roll_out_survives_its_coordinator_and_is_resumed_from_another_server(supervised, tmp_path, capsys):
    cluster = supervised([0, 1, 2, 3, 4], web=(0, 1))
    package = make_package(tmp_path / "packages", "2.0", pause=0.5, like_systemd=True)
    assert api(cluster, 0, bearer=False).request("POST", "/api/v1/updates", body={"package": str(package)}).status == 401
    missing = api(cluster, 0).request("POST", "/api/v1/updates", body={"package": str(tmp_path / "nothing.tar")})
    assert missing.status == 400 and "no package file" in missing.json()["error"]
    dry = api(cluster, 0).request("POST", "/api/v1/updates", body={"package": str(package), "dry_run": True})
    assert dry.status == 200 and dry.json()["plan"]["order"] == [4, 3, 2, 1, 0] and installs(cluster.root) == []
    started = api(cluster, 0).request("POST", "/api/v1/updates", body={"package": str(package)})
    assert started.status == 202 and started.json()["plan"]["order"] == [4, 3, 2, 1, 0], started.json()
    cluster.wait("server 3 installing", lambda: 3 in starts(cluster, "2.0") or None, 30)
    cluster.kill(0)  # the coordinator (and primary) dies for good, mid-way
    code, out, err = update(cluster, 2, str(package), capsys=capsys)
    assert code == 2 and "under way" in err, "one roll-out at a time"

    def interrupted() -> bool:
        seen = api(cluster, 1).request("GET", "/api/v1/updates").json()
        return any("interrupted" in w for w in seen["warnings"])

    cluster.wait("the roll-out shown interrupted on server 1", interrupted, 20)
    page = api(cluster, 1).request("GET", "/updates")
    assert page.status == 200 and "interrupted" in page.text and 'id="update-start"' in page.text
    assert "/api/v1/updates/resume" in api(cluster, 1).request("GET", "/static/updates.js").text
    resumed = api(cluster, 1).request("POST", "/api/v1/updates/resume")
    assert resumed.status == 200 and resumed.json()["plan"]["coordinator"] == 1, resumed.json()
    assert any("web: software update" in line and "resume (by token web-token" in line
               for line in cluster.status(1)["events"]), "who resumed it, in the events"
    code, out, err = update(cluster, 2, "resume", capsys=capsys)
    assert code == 2 and "coordinates roll-out" in err, "one coordinator at a time"

    def steps() -> dict[str, str]:
        seen = cluster.status(2)
        return {k: s["state"] for k, s in seen["update"]["rollout"]["steps"].items()} if seen else {}

    cluster.wait("servers 4 to 1 updated", lambda: all(steps().get(k) == "done" for k in "4321") or None, 120)
    assert steps()["0"] in ("pending", "installing")
    cluster.start(0)  # back, still on the old version: it is updated last, and takes its role back
    cluster.wait("the roll-out done", lambda: (cluster.status(2) or {}).get("update", {}).get("rollout", {})
                 .get("state") == "done" or None, 120)
    assert versions(cluster) == {i: "2.0" for i in cluster.ids}
    assert [(s, what) for s, v, what in installs(cluster.root)] == [
        (s, what) for s in (4, 3, 2, 1, 0) for what in ("start", "end")], "one at a time, in order, no server twice"
    cluster.wait("server 0 primary again", lambda: cluster.agreed_primary() == 0 or None, 20)
    assert not list(cluster.root.glob("server*/state/updates/install-*.status")), \
        "no exit status written (the process group was killed): each daemon's restart counted as the end"
    cluster.kill(4)
    refused = api(cluster, 1).request("POST", "/api/v1/updates", body={"package": str(package), "dry_run": True})
    assert refused.status == 409 and "server(s) 4 down" in refused.json()["error"], "a roll-out starts with every server up"
