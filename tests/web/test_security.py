"""Secure by default on a cluster (docs/web.md): API tokens, roles, the audit log, the login limit, PAM.

One real ``clusterd run`` (a lone server on 127.0.0.1) with the web GUI and
the two web groups named in its cluster file. The PAM test makes its own
system users and groups (root only) and removes them. The login-limit test
sends its failures from addresses of its own (127.0.0.8 and .9), so the
limit it reaches leaves the other tests alone.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlencode

import pytest

from clusterd.local import Cluster

from .server import Client, Server

ADMINS, VIEWERS = "cmweb-admins", "cmweb-viewers"


class Lone:
    def __init__(self, root: Path) -> None:
        self.cluster = Cluster(root, [0])
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        path = self.cluster.config(0)
        path.write_text(path.read_text() + f"web:\n  listen: 127.0.0.1:{self.port}\n  group: {ADMINS}\n"
                        f"  read-only-group: {VIEWERS}\n")
        self.state = self.cluster.dir(0) / "state"

    def client(self, token: str | None = None, bearer: bool = True) -> Client:
        server = Server(self.cluster.processes[0], f"https://127.0.0.1:{self.port}/",
                        token or (self.state / "web-token").read_text().strip(), self.state, [],
                        self.state / "web-cert.pem")
        return Client(server, bearer=bearer)

    def clusterd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "clusterd", "-c", str(self.cluster.config(0)), *args],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    def post_from(self, source: str, form: dict[str, str]) -> tuple[int, dict[str, str]]:
        """POST /login from ``source`` (another loopback address)."""
        context = ssl.create_default_context(cafile=str(self.state / "web-cert.pem"))
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=30,
                                                 source_address=(source, 0))
        try:
            connection.request("POST", "/login", body=urlencode(form),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
            reply = connection.getresponse()
            reply.read()
            return reply.status, dict(reply.headers)
        finally:
            connection.close()


@pytest.fixture(scope="module")
def lone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lone]:
    made = Lone(tmp_path_factory.mktemp("websec"))
    try:
        made.cluster.start(0)
        made.cluster.wait("the web GUI", lambda: (made.state / "web-cert.pem").exists() and _answers(made), 60, 0.2)
        yield made
    finally:
        made.cluster.stop_all()


def _answers(lone: Lone) -> bool:
    try:
        return lone.client().request("GET", "/api/v1/cluster").status == 200
    except OSError:
        return False


def test_tokens_roles_revocation_and_the_audit_log(lone: Lone) -> None:
    made = lone.clusterd("token", "create", "viewer", "--role", "read-only")
    assert made.returncode == 0, made.stderr
    viewer = made.stdout.strip()
    deploy = lone.clusterd("token", "create", "deploy").stdout.strip()
    stored = lone.state / "web-tokens.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert viewer not in stored.read_text() and deploy not in stored.read_text()  # kept hashed only
    again = lone.clusterd("token", "create", "viewer")
    assert again.returncode == 2 and "there is a token viewer already" in again.stderr
    listed = lone.clusterd("token", "list").stdout
    assert re.search(r"^viewer\tread-only\t", listed, re.M) and re.search(r"^deploy\tadmin\t", listed, re.M)

    reader = lone.client(viewer)
    for path in ("/api/v1/cluster", "/api/v1/generations", "/api/v1/audit", "/admin", "/cluster", "/backups"):
        assert reader.request("GET", path).status == 200, path
    for method, path, body in (("POST", "/api/v1/sync", {}), ("PUT", "/api/v1/self", {"id": 9}),
                               ("DELETE", "/api/v1/peers/1", None), ("POST", "/api/v1/cluster/check", {}),
                               ("POST", "/api/v1/confirm", {}), ("POST", "/api/v1/rollbacks", {"generation": 1}),
                               ("POST", "/api/v1/peers", {"id": 5, "address": "127.0.0.6"}),
                               ("POST", "/api/v1/loads", {}), ("POST", "/api/v1/updates", {}),
                               ("POST", "/api/v1/updates/abort", {})):
        refused = reader.request(method, path, body=body)
        assert refused.status == 403, (method, path, refused.status)
        assert refused.json()["error"].startswith("token viewer is read-only"), refused.json()
    assert reader.request("POST", "/api/v1/diff", fields={}).status != 403  # computing, not changing

    assert lone.client(deploy).request("PUT", "/api/v1/self", body={"id": 0}).status == 200  # admin: allowed
    assert lone.client().request("PUT", "/api/v1/self", body={"id": 0}).status == 200  # the bootstrap token

    browser = lone.client(bearer=False)
    assert browser.request("POST", "/login", form={"token": viewer}).status == 303
    page = browser.request("GET", "/cluster").text
    assert 'id="read-only"' in page and "main button:not(.look)" in page
    assert 'id="read-only"' not in lone.client().request("GET", "/cluster").text

    _read_only_in_the_browser(lone, viewer)
    revoked = lone.clusterd("token", "revoke", "viewer")
    assert revoked.returncode == 0 and "revoked token viewer" in revoked.stdout
    assert reader.request("GET", "/api/v1/cluster").status == 401  # at once
    assert browser.request("GET", "/api/v1/cluster").status == 401  # and the session it opened
    assert lone.clusterd("token", "revoke", "viewer").returncode == 2
    assert "viewer" not in lone.clusterd("token", "list").stdout

    entries = lone.client(deploy).request("GET", "/api/v1/audit").json()["entries"]
    assert [e["who"] for e in entries[:2]] == ["token web-token", "token deploy"]  # newest first
    assert entries[1] == {**entries[1], "role": "admin", "address": "127.0.0.1", "status": 200, "result": "done"}
    refusal = next(e for e in entries if e["what"] == "POST /api/v1/sync")
    assert refusal["who"] == "token viewer" and refusal["role"] == "read-only" and refusal["status"] == 403
    assert "read-only" in refusal["result"] and abs(refusal["when"] - time.time()) < 120
    assert not any(e["what"].startswith("POST /api/v1/diff") for e in entries)
    assert not any("/login" in e["what"] for e in entries)  # logins are not changes
    assert stat.S_IMODE((lone.state / "audit.log").stat().st_mode) == 0o600
    lines = (lone.state / "audit.log").read_text().splitlines()
    assert [json.loads(line)["who"] for line in lines[-2:]] == ["token deploy", "token web-token"]
    admin_page = lone.client(deploy).request("GET", "/admin").text
    assert "token viewer" in admin_page and "deploy" in admin_page and "Audit log" in admin_page


def _read_only_in_the_browser(lone: Lone, token: str) -> None:
    """The GUI shows a read-only session no change button (one short check in Debian's chromium)."""
    chromium = Path("/usr/bin/chromium")
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not chromium.exists():
        return
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        try:
            page = browser.new_context(ignore_https_errors=True).new_page()
            page.goto(f"https://127.0.0.1:{lone.port}/login?token={token}&next=/cluster")
            page.wait_for_selector("#read-only", timeout=20000)
            assert page.is_visible("#read-only") and page.is_visible("#servers")
            assert not page.is_visible("#sync-now") and not page.is_visible("#add-peer button")
            page.goto(f"https://127.0.0.1:{lone.port}/backups")
            assert [page.locator("main button:visible").get_attribute("id")] == ["compare-generations"]
        finally:
            browser.close()


def _user(name: str, group: str, password: str) -> None:
    subprocess.run(["useradd", "-M", "-N", "-g", group, "-s", "/usr/sbin/nologin", name], check=True, timeout=30)
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True, timeout=30)


@pytest.mark.skipif(os.geteuid() != 0, reason="PAM login needs root: the test makes system users (useradd)")
def test_members_of_the_web_groups_log_in_with_their_system_password(lone: Lone) -> None:
    users = {"cmweb-ann": ADMINS, "cmweb-bob": VIEWERS, "cmweb-eve": "cmweb-others"}
    try:
        for group in (ADMINS, VIEWERS, "cmweb-others"):
            subprocess.run(["groupadd", group], check=True, timeout=30)
        for name, group in users.items():
            _user(name, group, f"pw-{name}-7")
        ann = lone.client(bearer=False)
        assert ann.request("POST", "/login", form={"user": "cmweb-ann", "password": "pw-cmweb-ann-7"}).status == 303
        assert ann.request("GET", "/api/v1/cluster").status == 200
        assert 'id="read-only"' not in ann.request("GET", "/cluster").text
        bob = lone.client(bearer=False)
        assert bob.request("POST", "/login", form={"user": "cmweb-bob", "password": "pw-cmweb-bob-7"}).status == 303
        assert 'id="read-only"' in bob.request("GET", "/cluster").text
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', bob.request("GET", "/").text).group(1)  # type: ignore[union-attr]
        assert bob.request("POST", "/api/v1/sync", body={}, headers={"X-CSRF-Token": csrf}).status == 403

        # A wrong password waits seconds in PAM, in a thread: the daemon answers meanwhile.
        outcome: dict[str, Any] = {}
        wrong = threading.Thread(target=lambda: outcome.update(status=lone.client(bearer=False).request(
            "POST", "/login", form={"user": "cmweb-ann", "password": "wrong"}).status))
        started = time.monotonic()
        wrong.start()
        answered = lone.client().request("GET", "/api/v1/cluster").status
        answered_in = time.monotonic() - started
        wrong.join(timeout=30)
        assert outcome["status"] == 401 and answered == 200
        assert answered_in < 1.5 <= time.monotonic() - started
        eve = lone.client(bearer=False)  # the right password, but in neither group
        assert eve.request("POST", "/login", form={"user": "cmweb-eve", "password": "pw-cmweb-eve-7"}).status == 401
        assert lone.client().request("GET", "/api/v1/audit").json()["entries"][0]["who"] == "user cmweb-bob"
    finally:
        for name in users:
            subprocess.run(["userdel", name], capture_output=True, timeout=30)
        for group in (ADMINS, VIEWERS, "cmweb-others"):
            subprocess.run(["groupdel", group], capture_output=True, timeout=30)


def test_failed_logins_are_limited_per_address(lone: Lone) -> None:
    token = (lone.state / "web-token").read_text().strip()
    for _ in range(5):
        assert lone.post_from("127.0.0.8", {"token": "wrong-token-0123456789"})[0] == 401
    status, headers = lone.post_from("127.0.0.8", {"token": token})
    assert status == 429 and 1 <= int(headers["Retry-After"]) <= 60  # the right token too, while limited
    assert lone.post_from("127.0.0.9", {"token": token})[0] == 303  # another address is not limited

    # Guesses sent at once count while PAM checks them (seconds each): no more than 5 get through to it.
    statuses: list[int] = []
    guesses = [threading.Thread(target=lambda: statuses.append(lone.post_from(
        "127.0.0.10", {"user": "cmweb-nobody", "password": "guess"})[0])) for _ in range(8)]
    for guess in guesses:
        guess.start()
    for guess in guesses:
        guess.join(timeout=60)
    assert sorted(statuses) == [401] * 5 + [429] * 3
