"""The HTTP API of ``confmerge serve``: what docs/web.md promises, against a real server process."""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
import zipfile
from pathlib import Path

from confmerge.web import create_app
from confmerge.web import runner as make_runner
from confmerge.web.app import LINGER
from confmerge.web.openapi import openapi

from ..conftest import FIXTURES, run_confmerge
from .conftest import read
from .server import Client, Server, raw

THREE = FIXTURES / "merge" / "three-servers"
GUIDE = [FIXTURES / "bqn0-v1.conf", FIXTURES / "bqn1-v1.conf"]


def api_routes() -> set[tuple[str, str]]:
    app = create_app("t" * 32)
    return {(route.method.lower(), route.resource.canonical) for route in app.router.routes()
            if route.resource is not None and route.resource.canonical.startswith("/api/v1/") and route.method != "HEAD"}


def test_the_openapi_document_describes_exactly_the_routes(client: Client) -> None:
    document = client.request("GET", "/api/v1/openapi.json").json()
    assert document == openapi() and document["openapi"].startswith("3.")
    described = {(method, path) for path, item in document["paths"].items() for method in item if method != "parameters"}
    assert described == api_routes()
    for path, item in document["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for method, operation in item.items():
            if method == "parameters":
                continue
            given = {p["name"] for p in [*item.get("parameters", []), *operation.get("parameters", [])] if p["in"] == "path"}
            assert given == names, (method, path)
            assert "401" in operation["responses"]


def test_diff_is_the_document_of_confmerge_diff_format_json(client: Client) -> None:
    for scope in ("all", "cluster", "server"):
        response = client.request("POST", f"/api/v1/diff?scope={scope}", files={"old": [read(GUIDE[0])], "new": [read(GUIDE[1])]})
        assert response.status == 200
        cli = run_confmerge("diff", "--scope", scope, "--format", "json", "bqn0-v1.conf", "bqn1-v1.conf", cwd=FIXTURES)
        assert response.json() == json.loads(cli.stdout)
    assert client.request("POST", "/api/v1/diff?scope=cluster", files={"old": [read(GUIDE[0])], "new": [read(GUIDE[1])]}
                          ).json()["counts"]["cluster"] == 6


def test_check_gives_each_diagnostic_with_its_line_column_and_source(client: Client) -> None:
    bad = b"hostname a\nntp\n  server 1.1.1.1\n server 2.2.2.2\n"
    response = client.request("POST", "/api/v1/check", files={"file": [("bad.conf", bad), read(GUIDE[0])]})
    assert response.status == 200
    result = response.json()
    assert result["ok"] is False
    first, second = result["files"]
    assert second == {"file": "bqn0-v1.conf", "ok": True, "diagnostics": []}
    [diagnostic] = first["diagnostics"]
    assert (diagnostic["line"], diagnostic["column"], diagnostic["source"]) == (4, 2, " server 2.2.2.2")
    assert diagnostic["text"].startswith("bad.conf:4:2: error: ")


def test_a_bad_backup_is_400_with_the_diagnostics_never_a_trace(client: Client) -> None:
    response = client.request("POST", "/api/v1/diff", files={"old": [("x.conf", b"ntp\n\tserver 1.1.1.1\n")],
                                                               "new": [read(GUIDE[1])]})
    assert response.status == 400
    problem = response.json()
    assert problem["status"] == 400 and problem["diagnostics"][0]["file"] == "x.conf"
    assert problem["diagnostics"][0]["line"] == 2
    not_text = client.request("POST", "/api/v1/merges", files={"backups": [("a.conf", b"\xff\xfe"), read(GUIDE[1])]})
    assert not_text.status == 400 and "not UTF-8" in not_text.json()["diagnostics"][0]["message"]
    for response in (client.request("POST", "/api/v1/diff?scope=nope", files={"old": [read(GUIDE[0])], "new": [read(GUIDE[1])]}),
                     client.request("GET", "/api/v1/merges/nope"), client.request("GET", "/api/v1/nothing"),
                     client.request("DELETE", "/api/v1/merges"),
                     client.request("POST", "/api/v1/merges", body={"backups": []})):
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.status in (400, 404, 405, 415) and "Traceback" not in response.text
        assert set(response.json()) >= {"error", "status"}


def test_uploads_are_bounded_in_size_and_count(client: Client) -> None:
    # this session's server: --max-upload-mb 1 --max-files 4
    big = b"hostname a\n" + b"# padding\n" * 110_000
    response = client.request("POST", "/api/v1/check", files={"file": [("big.conf", big)]})
    assert response.status == 413 and "larger than" in response.json()["error"]
    many = client.request("POST", "/api/v1/check", files={"file": [read(GUIDE[0])] * 5})
    assert many.status == 413 and "at most 4" in many.json()["error"]
    huge = client.request("POST", "/api/v1/check", files={"file": [("a.conf", big)] * 4})
    assert huge.status == 413


def merge_of_three(client: Client) -> dict:
    response = client.request("POST", "/api/v1/merges", files={"backups": [read(p) for p in sorted(THREE.glob("*.conf"))]})
    assert response.status == 201
    draft = response.json()
    assert response.headers["Location"] == f"/api/v1/merges/{draft['id']}"
    return draft


def test_a_merge_is_a_draft_until_confirmed_and_then_gives_what_confmerge_merge_writes(client: Client, tmp_path: Path) -> None:
    draft = merge_of_three(client)
    assert draft["primary"] == "bqn0-v1.conf" and (draft["resolved"], draft["total"]) == (0, 4)
    assert all(c["automatic"] and c["take"] is None for c in draft["conflicts"])
    assert {(u["file"], u["section"]) for u in draft["unclassified"]} == {
        ("bqn0-v1.conf", "snmp"), ("bqn2-v1.conf", "ntp"), ("bqn2-v1.conf", "license key ABC-123-XYZ")}
    assert [o["file"] for o in draft["outputs"]] == ["bqn0-v2.conf", "bqn1-v2.conf", "bqn2-v2.conf"]
    base = f"/api/v1/merges/{draft['id']}"
    assert client.request("GET", f"{base}/outputs/bqn0-v2.conf").status == 409
    chosen = client.request("PATCH", f"{base}/conflicts/2", body={"take": "bqn1-v1.conf"}).json()
    row = chosen["conflicts"][1]
    assert (row["take"], row["chosen"], row["automatic"], chosen["resolved"]) == ("bqn1-v1.conf", "downlink 90M", False, 1)
    assert client.request("PATCH", f"{base}/conflicts/1", body={"take": "both"}).status == 422
    assert client.request("PATCH", f"{base}/conflicts/1", body={"take": "base"}).status == 400
    assert client.request("PATCH", f"{base}/conflicts/9", body={"take": "primary"}).status == 404
    client.request("PATCH", f"{base}/conflicts/1", body={"take": "bqn2-v1.conf"})
    rest = client.request("POST", f"{base}/take-primary").json()
    assert (rest["resolved"], rest["total"]) == (4, 4)
    assert client.request("POST", f"{base}/confirm").json()["confirmed"] is True
    assert client.request("PATCH", f"{base}/conflicts/1", body={"take": "primary"}).status == 409

    choices = client.request("GET", f"{base}/resolutions")
    (tmp_path / "resolutions.json").write_bytes(choices.body)
    out = tmp_path / "cli"
    cli = run_confmerge("merge", *sorted(p.name for p in THREE.glob("*.conf")), "-o", out,
                        "--resolve", tmp_path / "resolutions.json", cwd=THREE)
    assert cli.returncode == 0, cli.stderr
    for output in ("bqn0-v2.conf", "bqn1-v2.conf", "bqn2-v2.conf"):
        response = client.request("GET", f"{base}/outputs/{output}")
        assert response.status == 200 and response.headers["Content-Disposition"] == f'attachment; filename="{output}"'
        assert response.body == (out / output).read_bytes()
    assert b"timezone UTC" in (out / "bqn0-v2.conf").read_bytes() and b"downlink 90M" in (out / "bqn2-v2.conf").read_bytes()
    report = client.request("GET", f"{base}/report").json()
    assert report["conflicts"] == json.loads((out / "merge-report.json").read_text())["conflicts"]
    archive = zipfile.ZipFile(io.BytesIO(client.request("GET", f"{base}/archive").body))
    assert sorted(archive.namelist()) == ["bqn0-v2.conf", "bqn1-v2.conf", "bqn2-v2.conf", "merge-report.json",
                                          "resolutions.json"]
    assert archive.read("bqn1-v2.conf") == (out / "bqn1-v2.conf").read_bytes()


def test_a_merge_takes_a_primary_by_name_and_a_base(client: Client) -> None:
    three_way = FIXTURES / "merge" / "three-way"
    response = client.request("POST", "/api/v1/merges", fields={"primary": "bqn2-v2.conf"}, files={
        "backups": [read(three_way / f"bqn{i}-v2.conf") for i in range(3)], "base": [read(three_way / "base-bqn0-v1.conf")]})
    assert response.status == 201
    draft = response.json()
    assert (draft["primary"], draft["base"]) == ("bqn2-v2.conf", "base-bqn0-v1.conf")
    downlink = next(c for c in draft["conflicts"] if c["statement"] == "downlink")
    assert downlink["chosen"] == "downlink 35M" and downlink["base"] == "downlink 30M"
    taken = client.request("PATCH", f"/api/v1/merges/{draft['id']}/conflicts/{downlink['n']}", body={"take": "base"}).json()
    assert next(c for c in taken["conflicts"] if c["statement"] == "downlink")["chosen"] == "downlink 30M"
    moved = client.request("PATCH", f"/api/v1/merges/{draft['id']}", body={"primary": "bqn0-v2.conf"}).json()
    assert moved["primary"] == "bqn0-v2.conf" and moved["resolved"] == 0
    wrong = client.request("POST", "/api/v1/merges", fields={"primary": "nobody.conf"},
                           files={"backups": [read(GUIDE[0]), read(GUIDE[1])]})
    assert wrong.status == 400 and "nobody.conf" in wrong.json()["error"]


def test_an_uploaded_name_keeps_only_its_file_name(client: Client) -> None:
    response = client.request("POST", "/api/v1/check", files={"file": [("../../etc/bqn0 v1.conf", GUIDE[0].read_bytes()),
                                                                      ("/tmp/x/bqn1.conf", GUIDE[1].read_bytes())]})
    assert [f["file"] for f in response.json()["files"]] == ["bqn0 v1.conf", "bqn1.conf"]
    odd = client.request("POST", "/api/v1/check", files={"file": [("x\u202egnoc.exe", b"hostname a\n"),
                                                                  ('a"b.conf', b"hostname a\n"), ("...", b"hostname a\n")]})
    assert [f["file"] for f in odd.json()["files"]] == ["x_gnoc.exe", "a_b.conf", "file-3.conf"]


def test_names_with_spaces_and_letters_give_what_confmerge_merge_resolve_writes(client: Client, tmp_path: Path) -> None:
    names = ["bqn0 v1.conf", "bqn1 – réseau.conf", "bqn2#v1.conf"]
    for name, source in zip(names, sorted(THREE.glob("*.conf"))):
        (tmp_path / name).write_bytes(source.read_bytes())
    draft = client.request("POST", "/api/v1/merges", files={"backups": [read(tmp_path / n) for n in names]}).json()
    assert draft["inputs"] == names
    base = f"/api/v1/merges/{draft['id']}"
    client.request("PATCH", f"{base}/conflicts/1", body={"take": names[2]})
    client.request("POST", f"{base}/confirm")
    (tmp_path / "resolutions.json").write_bytes(client.request("GET", f"{base}/resolutions").body)
    cli = run_confmerge("merge", *names, "-o", tmp_path / "out", "--resolve", tmp_path / "resolutions.json", cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    from urllib.parse import quote
    for output in (o["file"] for o in draft["outputs"]):
        response = client.request("GET", f"{base}/outputs/{quote(output)}")
        assert response.status == 200 and response.body == (tmp_path / "out" / output).read_bytes()
        disposition = response.headers["Content-Disposition"]
        assert disposition.isascii() and (output in disposition or f"filename*=UTF-8''{quote(output)}" in disposition)


def test_the_server_keeps_answering_while_it_compares_large_backups(client: Client, server) -> None:  # type: ignore[no-untyped-def]
    import threading
    blocks = [f"policy rate p{k}\n  downlink {k % 900 + 1}M\n  uplink 1M\n  congestion-management yes\n"
              for k in range(9_000)]
    old = "".join(blocks).encode()
    new = old.replace(b"policy rate p4500\n  downlink 1M", b"policy rate p4500\n  downlink 2M")
    assert len(new) < 1 << 20 and old != new
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(Client(server).request(
        "POST", "/compare", files={"old": [("a.conf", old)], "new": [("b.conf", new)]}).status))
    worker.start()
    answered = 0
    while worker.is_alive() and answered < 3:
        assert client.request("GET", "/api/v1/openapi.json").status == 200
        answered += 1 if worker.is_alive() else 0
    worker.join(timeout=120)
    assert done == [200] and answered == 3


def test_a_malformed_form_is_400_never_an_internal_error(client: Client, server: Server) -> None:
    auth = f"Authorization: Bearer {server.token}\r\nConnection: close\r\n".encode()
    for content_type, body in [(b"multipart/form-data", b"hello"),
                               (b"multipart/form-data; boundary=abc", b"--abc\r\nnonsense\r\n\r\n")]:
        answer = raw(server, b"POST /api/v1/check HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Type: " + content_type +
                     b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        assert answer.startswith(b"HTTP/1.1 400 ") and b"malformed" in answer, answer
    for name in ("a\x00b.conf", "a\x01\x1bb.conf"):
        response = client.request("POST", "/api/v1/check", files={"file": [(name, GUIDE[0].read_bytes())]})
        assert response.status == 400 and "malformed" in response.json()["error"]


def test_a_request_body_that_arrives_too_slowly_is_408_and_the_connection_closed() -> None:
    from aiohttp import web

    async def scenario() -> bytes:
        runner = make_runner(create_app("t" * 32, secure=False, body_seconds=1.0))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /api/v1/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"t" * 32 +
                         b"\r\nContent-Type: multipart/form-data; boundary=abc\r\nContent-Length: 1000\r\n\r\n--abc\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 30)  # the server answers, then closes
            writer.close()
            return answer
        finally:
            await runner.cleanup()
    started = time.monotonic()
    answer = asyncio.run(scenario())
    assert answer.startswith(b"HTTP/1.1 408 ") and b"longer than 1 seconds" in answer
    assert time.monotonic() - started < 1.0 + LINGER + 2.0, "closed after the short linger, not aiohttp's 10 s"


def test_a_json_body_nested_too_deep_or_with_a_huge_number_is_400_not_an_error(client: Client) -> None:
    base = f"/api/v1/merges/{merge_of_three(client)['id']}"
    for raw in (b"[" * 100_000 + b"]" * 100_000, b'{"take": ' + b"9" * 5_000 + b"}"):
        response = client.request("PATCH", f"{base}/conflicts/1", raw=raw)
        assert response.status == 400, response.status
