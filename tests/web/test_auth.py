"""Secure by default: HTTPS, the token, the session cookie, CSRF, plain HTTP only on loopback."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import ssl
import stat
from pathlib import Path

import pytest

from confmerge.web import create_app
from confmerge.web.tls import fingerprint

from ..conftest import FIXTURES, run_confmerge
from .conftest import read
from .server import Client, Server, raw, start


def every_route() -> list[tuple[str, str]]:
    app = create_app("t" * 32)
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or re.sub(r"\{(\w+)\}", "x", info.get("formatter", ""))
        if route.method != "HEAD" and path:
            found.append((route.method, path))
    return found


def test_every_route_but_the_login_is_401_without_the_token(anonymous: Client, server: Server) -> None:
    routes = every_route()
    assert len(routes) > 15
    for method, path in routes:
        response = anonymous.request(method, path)
        if path == "/login":
            assert response.status in (200, 401) and (method == "POST" or response.status == 200)
            continue
        assert response.status == 401, (method, path)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = Client(server, bearer=False).request("GET", "/api/v1/openapi.json", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401 and wrong.json()["error"] == "the token is not valid"


def test_the_login_sets_a_secure_httponly_samesite_cookie_and_logout_ends_it(anonymous: Client, server: Server) -> None:
    assert anonymous.request("POST", "/login", form={"token": "wrong"}).status == 401
    response = anonymous.request("POST", "/login", form={"token": server.token})
    assert response.status == 303 and response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Strict" in cookie
    home = anonymous.request("GET", "/")
    assert home.status == 200
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', home.text)
    assert csrf is not None
    anonymous.request("POST", "/logout", form={"csrf": csrf.group(1)})
    assert anonymous.request("GET", "/").status == 401
    one_time = Client(server, bearer=False)
    assert one_time.request("GET", f"/login?token={server.token}").status == 303
    assert one_time.request("GET", "/api/v1/openapi.json").status == 200


def test_state_changing_requests_with_the_cookie_need_the_csrf_token(anonymous: Client, server: Server) -> None:
    anonymous.request("POST", "/login", form={"token": server.token})
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', anonymous.request("GET", "/").text).group(1)  # type: ignore[union-attr]
    backups = {"backups": [read(FIXTURES / "bqn0-v1.conf"), read(FIXTURES / "bqn1-v1.conf")]}
    refused = anonymous.request("POST", "/api/v1/merges", files=backups)
    assert refused.status == 403 and "CSRF" in refused.json()["error"]
    assert anonymous.request("POST", "/api/v1/merges", files=backups, headers={"X-CSRF-Token": "x" * 43}).status == 403
    foreign = anonymous.request("POST", "/api/v1/merges", files=backups,
                                headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"})
    assert foreign.status == 403
    assert anonymous.request("POST", "/api/v1/merges", files=backups, headers={"X-CSRF-Token": csrf}).status == 201
    assert anonymous.request("POST", "/merge", files=backups, fields={"csrf": csrf}).status == 303


def test_https_by_default_with_a_self_signed_certificate_kept_across_restarts(server: Server, tmp_path: Path) -> None:
    assert server.url.startswith("https://127.0.0.1:")
    assert server.cert is not None
    printed = next(line for line in server.lines if line.startswith("certificate: ")).split()[-1]
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    presented = ssl.get_server_certificate(("127.0.0.1", port))
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(presented)).hexdigest().upper()
    assert printed == "SHA256:" + ":".join(digest[k:k + 2] for k in range(0, len(digest), 2)) == fingerprint(server.cert)
    key = server.state / "serve-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    certificate = x509.load_pem_x509_certificate(server.cert.read_bytes())
    public = certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    again = start(server.state)
    try:
        assert next(line for line in again.lines if line.startswith("certificate: ")).split()[-1] == printed
        assert again.token == server.token
    finally:
        again.stop()


def test_the_token_file_is_read_or_made_0600(tmp_path: Path) -> None:
    made = tmp_path / "made" / "token"
    running = start(tmp_path / "state", "--token-file", str(made), "--insecure-http")
    try:
        assert stat.S_IMODE(made.stat().st_mode) == 0o600 and made.read_text().strip() == running.token
        assert len(running.token) >= 32
        assert running.url.startswith("http://127.0.0.1:")
        response = Client(running, bearer=False).request("POST", "/login", form={"token": running.token})
        assert "Secure" not in response.headers["Set-Cookie"] and "HttpOnly" in response.headers["Set-Cookie"]
    finally:
        running.stop()
    assert running.process.returncode == 0  # SIGTERM ends it cleanly
    given = tmp_path / "given"
    given.write_text("a-token-an-operator-chose-0123456789\n")
    given.chmod(0o600)
    running = start(tmp_path / "state", "--token-file", str(given))
    try:
        assert running.token == "a-token-an-operator-chose-0123456789"
        assert Client(running).request("GET", "/api/v1/openapi.json").status == 200
    finally:
        running.stop()


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "192.0.2.1:0"])
def test_plain_http_only_on_loopback(listen: str, tmp_path: Path) -> None:
    result = run_confmerge("serve", "--listen", listen, "--insecure-http", "--state-dir", tmp_path, timeout=30)
    assert result.returncode == 2 and "only on a loopback address" in result.stderr
    assert "Traceback" not in result.stderr and not os.listdir(tmp_path)


def test_a_real_certificate_is_served_with_cert_and_key(tmp_path: Path) -> None:
    from confmerge.web.tls import self_signed
    cert, key = tmp_path / "real.pem", tmp_path / "real.key"
    self_signed(cert, key, "127.0.0.1")
    running = start(tmp_path / "state", "--cert", str(cert), "--key", str(key))
    try:
        assert f"certificate: {cert} {fingerprint(cert)}" in running.lines
        assert not (tmp_path / "state" / "serve-cert.pem").exists()
        assert Client(running).request("GET", "/api/v1/openapi.json").status == 200
        running.process.send_signal(signal.SIGINT)  # Ctrl-C
        assert running.process.wait(timeout=20) == 0
    finally:
        running.stop()
    alone = run_confmerge("serve", "--cert", cert, "--state-dir", tmp_path / "s2", timeout=30)
    assert alone.returncode == 2 and "--cert and --key go together" in alone.stderr


def test_backups_named_at_start_open_as_a_merge_behind_the_printed_url(tmp_path: Path) -> None:
    # README's one command: confmerge serve fixtures/merge/three-servers/*.conf
    running = start(tmp_path / "state", *sorted(str(p) for p in (FIXTURES / "merge" / "three-servers").glob("*.conf")))
    try:
        printed = next(line for line in running.lines if line.startswith("open: "))
        path = "/" + printed.split("/", 3)[3]
        assert "&next=/merges/" in path
        browser = Client(running, bearer=False)
        response = browser.request("GET", path)
        assert response.status == 303 and response.headers["Location"].startswith("/merges/")
        page = browser.request("GET", response.headers["Location"])
        assert page.status == 200 and "bqn2-v2.conf" in page.text and "0 of 4 resolved" in page.text
        elsewhere = browser.request("GET", f"/login?token={running.token}&next=//evil.example/")
        assert elsewhere.headers["Location"] == "/"
    finally:
        running.stop()
    bad = tmp_path / "bad.conf"
    bad.write_text("ntp\n\tserver 1.1.1.1\n")
    refused = run_confmerge("serve", "--state-dir", tmp_path / "s2", str(FIXTURES / "bqn0-v1.conf"), bad, timeout=30)
    assert refused.returncode == 2 and f"{bad}:2:" in refused.stderr and not (tmp_path / "s2").exists()


def test_the_defaults_loopback_8443_and_the_limits() -> None:
    from confmerge.cli import build_parser
    args = build_parser().parse_args(["serve"])
    assert (args.listen, args.insecure_http) == ("127.0.0.1:8443", False)
    assert (args.max_upload_mb, args.max_files, args.draft_minutes) == (16, 16, 60)


def test_every_answer_carries_the_security_headers(anonymous: Client, client: Client) -> None:
    answers = [anonymous.request("GET", "/login"), anonymous.request("GET", "/"), client.request("GET", "/"),
               client.request("GET", "/static/app.js"), client.request("GET", "/api/v1/merges/nope"),
               anonymous.request("GET", f"/login?token={client.server.token}")]
    for response in answers:
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Referrer-Policy"] == "same-origin"


def test_a_token_that_is_not_utf8_is_refused_not_an_error(anonymous: Client, server: Server) -> None:
    answer = raw(server, b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n"
                         b"Connection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 401 ") and b"the token is not valid" in answer
    anonymous.request("POST", "/login", form={"token": server.token})
    cookie = "; ".join(f"{k}={v}" for k, v in anonymous.cookies.items()).encode()
    answer = raw(server, b"POST /api/v1/merges/x/confirm HTTP/1.1\r\nHost: x\r\nCookie: " + cookie +
                 b"\r\nX-CSRF-Token: \xff\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 403 ") and b"CSRF" in answer


@pytest.mark.parametrize("follow", ["//evil.example", "/\t/evil.example", "/\n/evil.example", "/\\evil.example",
                                    "https://evil.example", " //evil.example"])
def test_the_login_url_leads_only_to_a_page_of_this_server(server: Server, follow: str) -> None:
    from urllib.parse import quote
    response = Client(server, bearer=False).request("GET", f"/login?token={server.token}&next={quote(follow)}")
    assert response.status == 303 and response.headers["Location"] == "/"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_token_file_others_can_read_or_change_is_refused(tmp_path: Path, mode: int) -> None:
    given = tmp_path / "token"
    given.write_text("a-token-an-operator-chose-0123456789\n")
    given.chmod(mode)
    link = tmp_path / "link"
    link.symlink_to(given)
    for path in (given, link):
        result = run_confmerge("serve", "--listen", "127.0.0.1:0", "--token-file", path, "--state-dir",
                               tmp_path / "state", timeout=30)
        assert result.returncode == 2 and "others can read or change the token" in result.stderr
        assert "chmod 600" in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "state").exists()


def test_a_token_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a file of another user needs root")
    given = tmp_path / "token"
    given.write_text("a-token-an-operator-chose-0123456789\n")
    given.chmod(0o600)
    os.chown(given, 65534, 65534)
    result = run_confmerge("serve", "--listen", "127.0.0.1:0", "--token-file", given, "--state-dir",
                           tmp_path / "state", timeout=30)
    assert result.returncode == 2 and "owner uid 65534" in result.stderr


def test_after_log_out_the_old_cookie_is_refused(anonymous: Client, server: Server) -> None:
    anonymous.request("POST", "/login", form={"token": server.token})
    kept = dict(anonymous.cookies)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', anonymous.request("GET", "/").text).group(1)  # type: ignore[union-attr]
    assert anonymous.request("POST", "/logout", form={"csrf": csrf}).status == 303
    replayed = Client(server, bearer=False, cookies=kept)  # a copy of the cookie the browser threw away
    assert replayed.request("GET", "/").status == 401
    assert replayed.request("POST", "/api/v1/merges", headers={"X-CSRF-Token": csrf}).status == 401
