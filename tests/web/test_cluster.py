"""The cluster in the browser and its API, served by real ``clusterd run`` daemons on 127.0.0.x (issue 14).

One cluster for the module: servers 0, 1 and 2 run with the web GUI on their
own addresses and ``lo`` as the measured interface, and a fourth (id 3) that
they do not trust yet stands by to be added through the dialog. The API test
runs first; the browser test then adds server 3, kills the primary and
watches the failover, so it runs last. Real traffic goes through ``lo``.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from clusterd import config as config_module
from clusterd import keys
from clusterd.local import Cluster, wait_for

from .server import Client, Server

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
FAST = 40e6
"""bits/s: the traffic the tests make on lo is well over this; the daemons' own chatter well under."""


class Traffic:
    """Real traffic through lo while it runs: a TCP stream on 127.0.0.1 at about 30 MB/s (bounded: stopped at exit)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.threads = [threading.Thread(target=self._drain, daemon=True), threading.Thread(target=self._send, daemon=True)]
        for thread in self.threads:
            thread.start()

    def _drain(self) -> None:
        connection, _ = self.server.accept()
        with connection:
            while connection.recv(1 << 20):
                pass

    def _send(self) -> None:
        with socket.create_connection(self.server.getsockname(), timeout=10) as client:
            chunk = b"x" * (1 << 20)
            while not self.stop.is_set():
                for _ in range(3):
                    client.sendall(chunk)
                time.sleep(0.1)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)
        self.server.close()


def _without_server_3(document: Any) -> None:
    config_module.remove_peer(document, 3)


class WebCluster:
    def __init__(self, root: Path) -> None:
        self.cluster = Cluster(root, [0, 1, 2, 3])
        self.ports: dict[int, int] = {}
        for i in self.cluster.ids:
            with socket.socket() as probe:
                probe.bind((self.cluster.address(i), 0))
                self.ports[i] = probe.getsockname()[1]
            path = self.cluster.config(i)
            path.write_text(path.read_text() + f"web:\n  listen: {self.cluster.address(i)}:{self.ports[i]}\n"
                            "visibility:\n  interfaces: [lo]\n")
            if i != 3:  # servers 0-2 do not know server 3 yet: it is added through the dialog
                config_module.edit(path, _without_server_3)

    def url(self, i: int) -> str:
        return f"https://{self.cluster.address(i)}:{self.ports[i]}/"

    def server(self, i: int) -> Server:
        state = self.cluster.dir(i) / "state"
        return Server(self.cluster.processes.get(i), self.url(i), (state / "web-token").read_text().strip(),  # type: ignore[arg-type]
                      state, [], state / "web-cert.pem")

    def client(self, i: int, bearer: bool = True) -> Client:
        return Client(self.server(i), bearer=bearer)

    def clusterd(self, i: int, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "clusterd", "-c", str(self.cluster.config(i)), *args],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def web_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebCluster]:
    made = WebCluster(tmp_path_factory.mktemp("web-cluster"))
    traffic = Traffic()
    try:
        for i in (0, 1, 2):
            made.cluster.start(i)
        made.cluster.wait("the cluster to be complete", lambda: made.cluster.complete() and len(made.cluster.running()) == 3
                          and all((made.cluster.dir(i) / "state" / "web-token").exists() for i in (0, 1, 2)), 60, 0.2)
        yield made
    finally:
        traffic.close()
        made.cluster.stop_all()


def _fast_everywhere(client: Client) -> dict[str, Any] | None:
    data = client.request("GET", "/api/v1/throughput?server=all&seconds=5").json()
    return data if all(s["current"] and s["current"][0] > FAST for s in data["servers"]) else None


def test_the_api_of_any_server_shows_the_whole_cluster_and_its_throughput(web_cluster: WebCluster) -> None:
    one = web_cluster.client(1)
    assert web_cluster.client(1, bearer=False).request("GET", "/api/v1/cluster").status == 401
    with pytest.raises(OSError):  # it listens on its configured address only
        socket.create_connection(("127.0.0.1", web_cluster.ports[1]), timeout=5).close()

    cluster = one.request("GET", "/api/v1/cluster").json()
    assert any(f"web GUI on {web_cluster.url(1)} (certificate SHA256:" in line for line in cluster["events"])
    tools = one.request("GET", "/tools", headers={"Accept": "text/html"})
    assert tools.status == 200 and 'id="compare-form"' in tools.text
    cli = json.loads(web_cluster.clusterd(1, "status", "--json").stdout)
    steady = ("server", "epoch", "primary", "state", "status", "generation")
    assert {k: cluster[k] for k in steady} == {k: cli[k] for k in steady}
    assert [(s["id"], s["role"], s["sync"]) for s in cluster["servers"]] == [
        (s["id"], s["role"], s["sync"]) for s in cli["servers"]] == [
        (0, "primary", "in sync"), (1, "secondary", "in sync"), (2, "secondary", "in sync")]
    assert set(cluster) == set(cli)

    # every server measures lo once a second; server 1 answers for all three, over the control channel
    data = wait_for("every server's throughput at server 1", lambda: _fast_everywhere(one), 20, 0.5)
    assert data["step"] == 1 and data["unit"] == "bit/s"
    assert [(s["id"], s["this"], s["interfaces"]) for s in data["servers"]] == [
        (0, False, ["lo"]), (1, True, ["lo"]), (2, False, ["lo"])]
    assert all(len(s["samples"]) == 5 for s in data["servers"])
    day = one.request("GET", "/api/v1/throughput?server=2&seconds=86400").json()
    assert day["step"] == 60 and len(day["servers"][0]["samples"]) == 1440 and day["servers"][0]["samples"][0][1] is None
    thin = one.request("GET", "/api/v1/throughput?server=2&seconds=3600&points=100").json()
    assert thin["step"] == 36 and len(thin["servers"][0]["samples"]) == 100
    assert one.request("GET", "/api/v1/throughput?server=2&seconds=60&points=few").status == 400
    assert one.request("GET", "/api/v1/throughput?server=9&seconds=5").status == 404
    assert one.request("GET", "/api/v1/throughput?seconds=0").status == 400
    assert one.request("GET", "/api/v1/throughput?seconds=many").status == 400

    shown = web_cluster.clusterd(1, "throughput", "--server", "0", "--seconds", "10", "--json")
    assert shown.returncode == 0 and [s["id"] for s in json.loads(shown.stdout)["servers"]] == [0]
    text = web_cluster.clusterd(1, "throughput", "--seconds", "10")
    assert text.returncode == 0 and text.stdout.count("Mbit/s") >= 6 and "server 1 (this server)" in text.stdout
    assert web_cluster.clusterd(1, "throughput", "--server", "x").returncode == 2
    top = web_cluster.clusterd(1, "top")  # not a terminal: the table once, then exit
    assert top.returncode == 0 and top.stdout.startswith("clusterd top: server 1, cluster ready, complete")
    assert [line[2:].split()[0] for line in top.stdout.splitlines()[2:]] == ["0", "1", "2"]
    assert "Mbit/s" in top.stdout.splitlines()[3]
    _top_in_a_terminal(web_cluster)

    # the live stream: the cluster and the boxes, once a second
    server = web_cluster.server(1)
    connection = http.client.HTTPSConnection("127.0.0.2", web_cluster.ports[1], timeout=10,
                                             context=ssl.create_default_context(cafile=str(server.cert)))
    try:
        connection.request("GET", "/api/v1/events", headers={"Authorization": f"Bearer {server.token}"})
        reply = connection.getresponse()
        assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/event-stream")
        assert reply.headers["Content-Security-Policy"].startswith("default-src 'none'")
        first = json.loads(reply.readline().decode().removeprefix("data: "))
        assert first["cluster"]["primary"] == 0 and set(first["boxes"]) == {"0", "1", "2"}
        assert first["boxes"]["2"]["web"] == web_cluster.url(2) and first["boxes"]["0"]["version"]
    finally:
        connection.close()

    # the actions: refusals first, then the real ones
    assert one.request("POST", "/api/v1/peers", body={"id": 2, "address": "127.0.0.3"}).status == 409
    assert one.request("POST", "/api/v1/peers", body={"id": 1, "address": "127.0.0.2"}).json()["error"] == (
        "id 1 is used by this server; ids are unique in a cluster")
    assert one.request("POST", "/api/v1/peers", body={"id": 300, "address": "127.0.0.5"}).status == 400
    assert one.request("PUT", "/api/v1/self", body={"id": 0}).status == 409
    assert one.request("DELETE", "/api/v1/peers/7").status == 404
    assert one.request("PUT", "/api/v1/self", body={"id": 7, "address": "127.0.0.2"}).status == 400
    refused = one.request("POST", "/api/v1/sync")
    assert refused.status == 409 and "not the primary" in refused.json()["error"]
    synced = web_cluster.client(0).request("POST", "/api/v1/sync")
    assert synced.status == 200 and synced.json()["generation"] >= 2
    assert any("web: sync now" in line and "by token web-token from 127.0.0.1" in line
               for line in web_cluster.client(0).request("GET", "/api/v1/cluster").json()["events"])
    checked = one.request("POST", "/api/v1/cluster/check", body={})
    assert checked.status == 200 and [(p["id"], p["verdict"]) for p in checked.json()["peers"]] == [(0, "OK"), (2, "OK")]
    assert any(line.startswith("control port 127.0.0.1:") for line in checked.json()["peers"][0]["lines"])
    web_cluster.cluster.edit(2, "  server 162.159.200.1\n", "  server 162.159.200.1\n  server 192.0.2.77\n")
    differs = wait_for("server 2's edit to reach the primary", lambda: (
        "server 192.0.2.77" in web_cluster.cluster.backup(0).read_text()), 30, 0.2)
    assert differs
    assert one.request("GET", "/api/v1/servers/2/diff").json()["differences"] == 0
    assert one.request("GET", "/api/v1/servers/5/diff").status == 404


def test_backups_load_confirm_restore_and_roll_back_in_the_browser(web_cluster: WebCluster, browser: Any,
                                                                   tmp_path: Path) -> None:
    """Issue 17's web side, on a secondary (server 1): the primary makes every generation, every server gets it."""
    from playwright.sync_api import expect
    expect.set_options(timeout=20_000)
    cluster = web_cluster.cluster
    one = web_cluster.client(1)
    cluster.wait("the API test's edit settled: one head everywhere", lambda: cluster.complete() and len(
        {cluster.status(i)["generation"]["id"] for i in (0, 1, 2)}) == 1, 30, 0.2)  # type: ignore[index]
    live = one.request("GET", "/api/v1/backup")
    assert live.status == 200 and live.text == cluster.backup(1).read_text()
    assert live.headers["Content-Disposition"] == 'attachment; filename="bqn.conf"'
    before = one.request("GET", "/api/v1/generations").json()
    assert before["generations"][0]["number"] == one.request("GET", "/api/v1/cluster").json()["generation"]["number"]
    bad = one.request("POST", "/api/v1/loads", files={"file": [("bad.conf", b"hostname a\nntp\n  server 1.1.1.1\n server 2\n")]})
    assert bad.status == 400 and bad.json()["diagnostics"][0]["file"] == "bad.conf"
    assert one.request("GET", "/api/v1/generations").json()["generations"][0]["id"] == before["generations"][0]["id"]
    assert one.request("POST", "/api/v1/rollbacks", body={}).status == 400
    assert one.request("POST", "/api/v1/confirm").status == 409  # nothing is waiting
    assert one.request("GET", "/api/v1/generations/zzzz").status == 404

    upload = tmp_path / "bqn-new.conf"
    upload.write_text(cluster.backup(1).read_text().replace("  server 162.159.200.1\n",
                                                            "  server 162.159.200.1\n  server 192.0.2.200\n"))
    everywhere = (lambda line, present: all((line in cluster.backup(i).read_text()) == present for i in (0, 1, 2)))
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900}, accept_downloads=True)
    try:
        page = context.new_page()
        server = web_cluster.server(1)
        page.goto(f"{server.url}login?token={server.token}&next=/backups")
        expect(page.locator("#history tr.generation").first).to_be_visible()
        with page.expect_download() as download:
            page.click("#save-live")
        assert Path(download.value.path()).read_text() == cluster.backup(1).read_text()

        page.set_input_files("#load-form input[name=file]", str(upload))
        page.fill("#load-form input[name=confirm_minutes]", "5")
        page.click("#load-form button[type=submit]")
        expect(page.locator("#load-diff")).to_contain_text("192.0.2.200")
        assert not any("192.0.2.200" in cluster.backup(i).read_text() for i in (0, 1, 2))  # nothing before confirming
        page.click("#load-confirm")
        expect(page.locator("#pending")).to_be_visible()  # the page reloads with the countdown
        expect(page.locator("#countdown")).to_have_text(re.compile(r"^[45]:\d\d$"))
        cluster.wait("the load on every server", lambda: everywhere("server 192.0.2.200", True), 30, 0.2)
        expect(page.locator("#history tr.generation").first.locator(".how")).to_contain_text("load on server 1")
        _shot(page, "cluster-backups", full=True)
        page.click("#confirm-load")
        expect(page.locator("#history tr.generation").first.locator(".how")).to_contain_text("confirm", timeout=30_000)
        expect(page.locator("#pending")).to_have_count(0)

        # restore the generation before the load: a new generation, on every server
        target = page.locator(f'#history tr.generation[data-id="{before["generations"][0]["id"]}"]')
        target.locator("button.restore").click()
        cluster.wait("the restore on every server", lambda: everywhere("server 192.0.2.200", False), 30, 0.2)
        expect(page.locator("#history tr.generation").first.locator(".how")).to_contain_text("rollback", timeout=30_000)

        # the difference between two generations
        page.locator("#history tr.generation").nth(1).locator("input[name=new]").check()
        page.locator("#history tr.generation").nth(3).locator("input[name=old]").check()
        page.click("#compare-generations")
        expect(page.locator("main")).to_contain_text("192.0.2.200")

        # another provisional load (through the API), rolled back from the countdown at once
        loaded = one.request("POST", "/api/v1/loads", files={"file": [("bqn-new.conf", upload.read_bytes())]},
                             fields={"confirm_minutes": "5"})
        assert loaded.status == 201 and loaded.json()["generation"]["deadline"]
        cluster.wait("the second load on every server", lambda: everywhere("server 192.0.2.200", True), 30, 0.2)
        page.goto(server.url)
        expect(page.locator("#pending-banner")).to_contain_text("is provisional")
        page.goto(server.url + "backups")
        page.click("#rollback-now")
        cluster.wait("the roll back on every server", lambda: everywhere("server 192.0.2.200", False), 30, 0.2)
        expect(page.locator("#pending")).to_have_count(0, timeout=30_000)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{cluster.logs()}") from None
    finally:
        context.close()


def test_the_cluster_in_the_browser(web_cluster: WebCluster, browser: Any) -> None:
    from playwright.sync_api import expect
    expect.set_options(timeout=20_000)
    cluster = web_cluster.cluster
    try:
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 860})
        context.set_default_timeout(20_000)
        page = context.new_page()
        server = web_cluster.server(1)
        page.goto(server.url)
        expect(page.locator("#token")).to_be_visible()
        expect(page.locator("main")).to_contain_text("web-token")
        page.fill("#token", server.token)
        page.click("#login")

        # Home: one box per server, live, the primary and this server marked, the cluster ready and complete
        boxes = page.locator("#boxes .box")
        expect(boxes).to_have_count(3)
        expect(page.locator("#cluster-state")).to_have_text("ready")
        expect(page.locator("#cluster-status")).to_have_text("complete")
        expect(page.locator('.box[data-id="0"] .badge.primary')).to_have_text("primary")
        expect(page.locator('.box[data-id="1"] .badge.here')).to_be_visible()
        expect(page.locator('.box[data-id="2"]')).to_have_attribute("href", web_cluster.url(2))
        for i in (0, 1, 2):
            expect(page.locator(f'.box[data-id="{i}"] .dl')).to_contain_text("Mbit/s")
            expect(page.locator(f'.box[data-id="{i}"] .sync.ok')).to_have_text("in sync")
        page.evaluate("window.notReloaded = true")
        time.sleep(1.5)  # a few seconds of sparkline for the screenshot
        _shot(page, "cluster-home")

        # Status -> Throughput: the chart, all servers or one, this server marked
        page.click("header nav >> text=Throughput")
        expect(page.locator("#legend tr.legend-row")).to_have_count(3)
        expect(page.locator("#legend tr.here")).to_contain_text("BQN 1 ★")
        expect(page.locator("#server option[value='1']")).to_have_text("BQN 1 ★ (this server)")
        expect(page.locator("#chart path.series")).to_have_count(6)
        expect(page.locator("#chart .scale").first).to_contain_text("averages of 3 s")  # an hour in 1,440 points
        _shot(page, "cluster-throughput")
        page.select_option("#server", "2")
        expect(page.locator("#legend tr.legend-row")).to_have_count(1)
        expect(page.locator("#legend tr.legend-row")).to_contain_text("BQN 2")
        page.select_option("#range", "86400")
        expect(page.locator("#chart .scale").first).to_contain_text("per minute")

        # Administration -> Cluster: sync states, what is never synced, check, add a server with its key
        page.click("header nav >> text=Cluster")
        expect(page.locator("#servers tr.server")).to_have_count(3)
        expect(page.locator('#servers tr[data-id="2"] .sync.ok')).to_have_text("in sync")
        expect(page.locator("#own-sections")).to_contain_text("hostname")
        expect(page.locator("#own-sections")).to_contain_text("wire wire0")
        page.click("#check")
        expect(page.locator("#result .verdict")).to_have_count(2)
        expect(page.locator("#result .verdict.ok")).to_have_count(2)
        add = page.locator("#add-peer")
        add.locator("[name=id]").fill("2")
        add.locator("[name=address]").fill("127.0.0.3")
        add.locator("button[type=submit]").click()
        expect(page.locator("#result .error")).to_have_text("id 2 is used by server 2 (127.0.0.3); ids are unique in a cluster")
        cluster.start(3)
        cluster.wait("server 3 to run", lambda: cluster.status(3) is not None, 30, 0.1)
        add.locator("[name=id]").fill("3")
        add.locator("[name=address]").fill(cluster.address(3))
        add.locator("[name=ssh_port]").fill(str(cluster.ssh_port(3)))
        add.locator("button[type=submit]").click()
        expect(page.locator("#peer-fingerprint")).to_have_text(keys.fingerprint(cluster.node_keys[3]))
        _shot(page, "cluster-add")
        page.click("#trust")
        expect(page.locator("#add-confirm .done")).to_have_text("server 3 added")
        expect(page.locator("#servers tr.server")).to_have_count(4)  # the page reloads with it
        expect(page.locator('#servers tr[data-id="3"]')).to_contain_text("up")
        assert config_module.load(cluster.config(1)).peer(3) is not None
        _shot(page, "cluster-admin", full=True)
        page.goto(server.url + "cluster/servers/2/diff")
        expect(page.locator("main")).to_contain_text("Server 2's cluster-wide sections against the cluster's")

        # remove server 3 again, through the page
        page.goto(server.url + "cluster")
        page.locator('#servers tr[data-id="3"] button.remove').click()
        page.click("#remove-3")
        expect(page.locator("#result .done")).to_have_text("server 3 removed; its key is no longer trusted")
        expect(page.locator("#servers tr.server")).to_have_count(3)
        assert config_module.load(cluster.config(1)).peer(3) is None

        # Software update: every server's version, and a refused start shown with its reason
        page.goto(server.url + "updates")
        expect(page.locator("#versions tbody tr")).to_have_count(3)
        expect(page.locator("#rollout-line")).to_have_text("No roll-out yet.")
        page.fill("#update-start [name=package]", "/nonexistent/bqn-9.9.tar.gz")
        page.check("#update-start [name=dry_run]")
        page.click("#update-start button[type=submit]")
        expect(page.locator("#update-result")).to_have_class("result bad")
        expect(page.locator("#update-result")).to_contain_text("nonexistent")

        # kill the primary: the home page shows the failover without a reload
        page.goto(server.url)
        expect(page.locator("#boxes .box")).to_have_count(3)
        page.evaluate("window.notReloaded = true")
        cluster.kill(0)
        expect(page.locator('.box[data-id="0"]')).to_have_class("box down down", timeout=30_000)
        expect(page.locator('.box[data-id="1"] .badge.primary')).to_have_text("primary", timeout=30_000)
        expect(page.locator('.box[data-id="0"] .dl')).to_have_text("↓ no data")
        assert page.evaluate("window.notReloaded") is True
        _shot(page, "cluster-failover")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{cluster.logs()}") from None
    finally:
        context.close()

    # Modify BQN ID in a session on server 2: the daemon restarts in place as server 5, its GUI with it, and the
    # session stays logged in
    two = web_cluster.client(2, bearer=False)
    assert two.request("GET", f"/login?token={two.server.token}").status == 303
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', two.request("GET", "/").text)
    assert csrf is not None
    changed = two.request("PUT", "/api/v1/self", body={"id": 5}, headers={"X-CSRF-Token": csrf.group(1)})
    assert changed.status == 200 and changed.json()["restarting"] is True
    wait_for("server 2 to be server 5", lambda: _server_id(two) == 5, 30, 0.3)
    wait_for("server 1 to know server 5", lambda: 5 in [s["id"] for s in web_cluster.client(1).request(
        "GET", "/api/v1/cluster").json()["servers"]], 30, 0.3)


def _top_in_a_terminal(web_cluster: WebCluster) -> None:
    """``clusterd top`` on a terminal: refreshed every second until q, the terminal's mode put back."""
    import os
    import pty
    import select
    import termios

    leader, follower = pty.openpty()
    before = termios.tcgetattr(follower)
    process = subprocess.Popen([sys.executable, "-m", "clusterd", "-c", str(web_cluster.cluster.config(1)), "top"],
                               stdin=follower, stdout=follower, stderr=follower)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while seen.count(b"clusterd top:") < 2 and time.monotonic() < deadline:
            if select.select([leader], [], [], 1.0)[0]:
                seen += os.read(leader, 65536)
        assert seen.count(b"clusterd top:") >= 2, seen  # refreshed
        os.write(leader, b"q")
        assert process.wait(timeout=15) == 0
        assert termios.tcgetattr(follower) == before
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        os.close(leader)
        os.close(follower)


def test_a_web_port_in_use_stops_the_daemon_with_the_reason(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, [0])
    with socket.create_server((cluster.address(0), 0)) as taken:
        port = taken.getsockname()[1]
        cluster.config(0).write_text(cluster.config(0).read_text() + f"web:\n  listen: {cluster.address(0)}:{port}\n")
        ran = subprocess.run(cluster.command(0), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert ran.returncode == 2
    assert f"(the web GUI on {cluster.address(0)}:{port})" in ran.stderr and "Traceback" not in ran.stderr


def _server_id(client: Client) -> int | None:
    try:
        return int(client.request("GET", "/api/v1/cluster").json()["server"])
    except (OSError, ValueError, KeyError, http.client.HTTPException):
        return None


def _shot(page: Any, name: str, full: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)
