"""The cluster in the browser: ``clusterd`` serves part 1's web application with the cluster's pages and API added.

The application is :func:`confmerge.web.create_app` (HTTPS, the token, the
session cookie, CSRF, the security headers), run in the daemon's own event
loop on the cluster file's ``web.listen`` address only. What it adds reads
the daemon's state directly (:mod:`clusterd.status`, the throughput
:class:`~clusterd.throughput.Board`, :class:`~clusterd.admin.Admin`), and
every change to the cluster file runs the ``clusterd`` command that makes it
from the shell (``add-peer --fingerprint``, ``remove-peer``, ``set-id``,
``set-self-address``), so the browser and the CLI share one code path, its
checks and its reload. Each change is an event in status and a line of the
audit log (:mod:`clusterd.audit`): who, their role, from where, what, the result.
Who may log in, and as what, is :class:`clusterd.webauth.ClusterAuthority`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncssh
from aiohttp import web

from confmerge import ConfError, MergeClass, Scope, diff, diff_data, parse
from confmerge.web import (
    SESSIONS, Problem, Sessions, create_app, escape, fingerprint, json_body, self_signed, server_context,
    token_from_file,
)
from confmerge.web import runner as serve_app

from . import keys
from .check import check_peer
from .links import LinkDown, reason
from .sync import SyncState
from .audit import AuditLog
from .gui_common import AUDIT, DAEMON, Daemon, audit, daemon_of, frame, record, titled_compare
from .tokens import TokenError, TokenStore, tokens_path
from .webauth import ClusterAuthority


log = logging.getLogger("clusterd")
STREAMS = web.AppKey("event streams", dict)
MAX_STREAMS = 32
"""Live pages open at once (each holds a connection); past it, 429."""
KEY_TIMEOUT = 10.0
COMMAND_TIMEOUT = 90.0
SYNC_COLOURS = {SyncState.IN_SYNC: "ok", SyncState.CHANGES_PENDING: "warn", SyncState.AWAITING_INITIAL_SYNC: "wait",
                SyncState.SYNCING: "busy", SyncState.SYNC_FAILED: "bad", SyncState.DISCONNECTED: "down"}
routes = web.RouteTableDef()
_kept: dict[Path, Sessions] = {}
"""Sessions by token file, kept across the daemon's restart in place (set-id): a reload logs nobody out."""


async def start_web(daemon: Daemon) -> tuple[web.AppRunner, str]:
    """Listen on ``web.listen`` (HTTPS; the self-signed certificate made in the state directory when none is named)."""
    config = daemon.config
    settings = config.web
    assert settings is not None
    token_file = settings.token_file or config.state_dir / "web-token"
    cert = settings.cert or config.state_dir / "web-cert.pem"
    key = settings.key or config.state_dir / "web-key.pem"
    try:
        token = token_from_file(token_file)
        if settings.cert is None and not (cert.exists() and key.exists()):
            self_signed(cert, key, settings.host)
        context = server_context(cert, key)
    except (OSError, ValueError) as error:
        raise OSError(f"the web GUI cannot start: {error}") from None
    authority = ClusterAuthority(token, TokenStore(tokens_path(config.state_dir)), settings.group,
                                 settings.read_only_group)
    app = create_app(token, secure=True, home=home, login_hint=f"in <code>{escape(token_file)}</code> "
                     f"(<code>cat</code> it as the daemon's user), or one made by <code>clusterd token create</code>",
                     authority=authority, middlewares=(record,))
    app[AUDIT] = AuditLog(config.state_dir / "audit.log")
    kept = _kept.get(token_file)
    if kept is not None and kept.token == token:
        kept.authority = authority
        app[SESSIONS] = kept
    _kept[token_file] = app[SESSIONS]
    app[DAEMON] = daemon
    app[STREAMS] = {"open": 0}
    app.add_routes(routes)
    from .gui_changes import routes as backups
    app.add_routes(backups)
    from .gui_updates import routes as updates
    app.add_routes(updates)
    runner = serve_app(app, shutdown_timeout=3.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port, ssl_context=context).start()
    except OSError as error:
        await runner.cleanup()
        raise OSError(error.errno, f"{error.strerror} (the web GUI on {settings.host}:{settings.port})") from None
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"https://{host}:{settings.port}/"
    daemon.core.events.add(f"web GUI on {url} (certificate {fingerprint(cert)}; token in {token_file})")
    return runner, url


# ---------------------------------------------------------------------------
# What the pages show, as data


async def visibility(daemon: Daemon) -> dict[str, Any]:
    """The live stream's object: the cluster (``clusterd status --json``) and each server's box beside it."""
    status = daemon.admin.status()
    held = await daemon.admin.boxes()
    empty = {"hostname": "", "version": "", "web": "", "problem": None, "throughput": None}
    boxes = {str(server["id"]): held.get(server["id"], empty) | ({} if server["up"] else {"throughput": None})
             for server in status["servers"]}
    return {"time": int(time.time()), "cluster": status, "boxes": boxes}


def server_sections(daemon: Daemon) -> list[str]:
    """This server's server-specific sections: never synced, each server keeps its own."""
    live = daemon.core.live
    if live is None or live.config is None:
        return []
    return [str(s.identity) for s in live.config.sections if s.merge_class is MergeClass.SERVER]


# ---------------------------------------------------------------------------
# Pages


async def home(request: web.Request) -> web.StreamResponse:
    daemon = daemon_of(request)
    body = (f'<section class="card cluster-head" id="cluster-head" data-this="{daemon.config.id}">'
            '<h1>Cluster: state <span id="cluster-state" class="state">…</span>, status '
            '<span id="cluster-status" class="state">…</span></h1>'
            f'<p class="muted">Logged in on server {daemon.config.id} ({escape(daemon.config.address)}). '
            'Each box is a server; open one to go to its own GUI. <span id="live" class="live">connecting…</span></p>'
            '<p id="pending-banner" class="warn-note" role="alert" hidden></p>'
            '</section><div id="boxes" class="boxes"></div>')
    return frame(request, "Home", body)


@routes.get("/throughput")
async def throughput_page(request: web.Request) -> web.StreamResponse:
    daemon = daemon_of(request)
    own = daemon.config.id
    ids = sorted([own, *(p.id for p in daemon.config.peers)])
    options = "".join(f'<option value="{i}">BQN {i}{" ★ (this server)" if i == own else ""}</option>' for i in ids)
    body = (f'<section class="card" id="throughput" data-this="{own}"><div class="chart-head"><h1>Throughput</h1>'
            '<label>Range <select id="range"><option value="3600">last hour</option>'
            '<option value="86400">last day</option></select></label>'
            f'<label>BQN <select id="server"><option value="all">all servers</option>{options}</select></label></div>'
            '<p class="muted">Downlink (solid) and uplink (dashed), bits per second, from the measured interfaces '
            'of each server; a gap is a time with no data (the server was down). ★ marks the server you are '
            'logged in on.</p>'
            '<svg id="chart" viewBox="0 0 1000 320" preserveAspectRatio="none" role="img" aria-label="throughput">'
            '</svg><table class="plain legend" id="legend"></table></section>')
    return frame(request, "Throughput", body)


@routes.get("/cluster")
async def cluster_page(request: web.Request) -> web.StreamResponse:
    daemon = daemon_of(request)
    status = daemon.admin.status()
    config = daemon.config
    e = escape
    rows = []
    for s in status["servers"]:
        state = SyncState(s["sync"])
        why = s.get("error") or (None if s["this"] or s.get("trusted", True) else "not trusted here yet")
        actions = ("" if s["this"] else
                   f'<button class="small remove" data-id="{s["id"]}">Remove</button>')
        rows.append(
            f'<tr class="server" data-id="{s["id"]}"><td>{s["id"]}{" ★" if s["this"] else ""}</td>'
            f'<td>{e(s["address"])}</td><td>{e(s["role"])}</td><td>{"up" if s["up"] else "down"}</td>'
            f'<td><span class="sync {SYNC_COLOURS[state]}">{e(state.value)}</span>'
            f'{f" <span class=reason>{e(why)}</span>" if why else ""}</td><td>{s["generation"]}</td>'
            f'<td><a href="/cluster/servers/{s["id"]}/diff" class="diff-link">sections that differ</a></td>'
            f'<td>{actions}</td></tr>')
    own_sections = "".join(f"<li><code>{e(name)}</code></li>" for name in server_sections(daemon)) or "<li>none</li>"
    events = "".join(f"<li>{e(line)}</li>" for line in reversed(status["events"]))
    lowest = min([config.id, *(p.id for p in config.peers)])
    body = f'''
<section class="card"><h1>Cluster: state <span class="state">{e(status["state"])}</span>, status
<span class="state">{e(status["status"])}</span></h1>
<table class="plain servers" id="servers"><thead><tr><th>BQN id</th><th>address</th><th>role</th><th>up</th>
<th>sync</th><th>generation</th><th></th><th></th></tr></thead><tbody>{"".join(rows)}</tbody></table>
<div class="actions"><button id="sync-now">Sync now</button><button id="check">Check connectivity</button></div>
<div id="result" class="result" role="status"></div></section>
<div class="grid3">
<section class="card"><h2>Add BQN to a cluster</h2>
<form id="add-peer"><label>Peer BQN id <input type="text" name="id" inputmode="numeric" required></label>
<label>Peer IP address <input type="text" name="address" required></label>
<label>Peer SSH port <input type="text" name="ssh_port" value="22" inputmode="numeric"></label>
<label>IP address for this BQN in cluster <input type="text" name="self_address" value="{e(config.address)}"></label>
<p class="muted">The lowest id that is up is the primary (now {lowest}). The peer's key is shown to confirm
before it is trusted.</p><button type="submit" class="primary">Add</button></form>
<div id="add-confirm" class="confirm" hidden></div></section>
<section class="card"><h2>Modify BQN ID</h2>
<form id="set-id"><label>New BQN id of this server (now {config.id})
<input type="text" name="id" inputmode="numeric" required></label>
<p class="warn-note">The service reloads: the daemon restarts with the new id (its control port changes to
{config.port_base}+id); peers learn it at its next login.</p>
<button type="submit">Change id</button></form></section>
<section class="card"><h2>Never synced</h2><p class="muted">This server's own sections (server-specific): each server
keeps its own, the cluster never changes them.</p><ul class="sections" id="own-sections">{own_sections}</ul></section>
</div>
<section class="card"><h2>Events</h2><ul class="events">{events}</ul></section>'''
    return frame(request, "Cluster", body)


@routes.get("/cluster/servers/{id}/diff")
async def diff_page(request: web.Request) -> web.StreamResponse:
    server, primary, result, target, cluster = await _server_diff(request)
    title = (f'<p class="card">Server {server}\'s cluster-wide sections against the cluster\'s configuration '
             f'(the primary, server {primary}): what syncing would change on server {server}.</p>')
    return titled_compare(request, result, target, cluster, title)


@routes.get("/admin")
async def admin_page(request: web.Request) -> web.StreamResponse:
    """Administration: who may log in (the API tokens, the groups) and the audit log, newest first."""
    daemon = daemon_of(request)
    e = escape
    settings = daemon.config.web
    try:
        tokens = TokenStore(tokens_path(daemon.config.state_dir)).tokens()
    except TokenError as error:
        raise Problem(500, str(error)) from None
    token_rows = "".join(f'<tr><td>{e(t.name)}</td><td>{e(t.role)}</td>'
                         f'<td>{time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t.created))}</td></tr>'
                         for t in tokens) or '<tr><td colspan="3">none yet</td></tr>'
    groups = (f"<code>{e(settings.group or '(none)')}</code> (admin), "
              f"<code>{e(settings.read_only_group or '(none)')}</code> (read-only)") if settings else "(none)"
    rows = "".join(
        f'<tr class="audit"><td>{time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a["when"]))}</td>'
        f'<td>{e(a["who"])}</td><td>{e(a["role"])}</td><td>{e(a["address"])}</td><td>{e(a["what"])}</td>'
        f'<td>{a["status"]} {e(a["result"])}</td></tr>' for a in await asyncio.to_thread(request.app[AUDIT].newest))
    body = f'''
<section class="card"><h1>Administration</h1><h2>API tokens</h2>
<p class="muted">Made with <code>clusterd token create NAME [--role read-only]</code> (shown once, kept hashed),
ended with <code>clusterd token revoke NAME</code>. The token in the token file is the admin's from the start.
Groups whose members log in with their system password: {groups}.</p>
<table class="plain" id="tokens"><thead><tr><th>name</th><th>role</th><th>created</th></tr></thead>
<tbody>{token_rows}</tbody></table></section>
<section class="card"><h2>Audit log</h2><p class="muted">Every change asked through the GUI or API, newest first
(<code>{e(request.app[AUDIT].path)}</code>).</p>
<table class="plain" id="audit"><thead><tr><th>when</th><th>who</th><th>role</th><th>from</th><th>what</th>
<th>result</th></tr></thead><tbody>{rows}</tbody></table></section>'''
    return frame(request, "Administration", body)


# ---------------------------------------------------------------------------
# The API


@routes.get("/api/v1/audit")
async def api_audit(request: web.Request) -> web.StreamResponse:
    """The audit log, newest first (``limit``: how many, default 500)."""
    limit = request.query.get("limit", "500")
    if not limit.isdigit() or int(limit) < 1:
        raise Problem(400, "limit must be a whole number from 1")
    return web.json_response({"entries": await asyncio.to_thread(request.app[AUDIT].newest, int(limit))})



@routes.get("/api/v1/cluster")
async def api_cluster(request: web.Request) -> web.StreamResponse:
    return web.json_response(daemon_of(request).admin.status())


@routes.get("/api/v1/throughput")
async def api_throughput(request: web.Request) -> web.StreamResponse:
    server = request.query.get("server", "all")
    seconds = request.query.get("seconds", "3600")
    points = request.query.get("points", "")
    if not seconds.isdigit() or (server != "all" and not server.isdigit()) or not (points.isdigit() or not points):
        raise Problem(400, "give server=ID|all, seconds=N and optionally points=N (whole numbers)")
    reply = await daemon_of(request).admin.throughput(None if server == "all" else int(server), int(seconds),
                                                      max(1, int(points)) if points else None)
    if not reply["ok"]:
        raise Problem(404 if "not in the cluster" in reply["error"] else 400, reply["error"])
    return web.json_response(reply["throughput"])


@routes.get("/api/v1/events")
async def api_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: :func:`visibility` every second until the client leaves or the daemon stops."""
    daemon = daemon_of(request)
    streams = request.app[STREAMS]
    if streams["open"] >= MAX_STREAMS:
        raise Problem(429, f"{MAX_STREAMS} live pages are open on this server; close one")
    streams["open"] += 1
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    try:
        await response.prepare(request)
        while not daemon.stopping.is_set():
            await response.write(b"data: " + json.dumps(await visibility(daemon)).encode() + b"\n\n")
            try:
                async with asyncio.timeout(1.0):
                    await daemon.stopping.wait()
            except TimeoutError:
                pass
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        streams["open"] -= 1
    return response


def _int(body: dict[str, Any], name: str, low: int, high: int, default: int | None = None) -> int:
    value = body.get(name, default)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise Problem(400, f"{name} must be a whole number from {low} to {high}")
    return value


def _address(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise Problem(400, f"{name} must be an IP address, not {value!r}") from None


def _used(daemon: Daemon, server: int) -> None:
    config = daemon.config
    holder = "this server" if server == config.id else (
        f"server {server} ({config.peer(server).address})" if config.peer(server) else None)  # type: ignore[union-attr]
    if holder:
        raise Problem(409, f"id {server} is used by {holder}; ids are unique in a cluster")


@dataclass(frozen=True, slots=True)
class Ran:
    status: int
    output: str

    @property
    def reason(self) -> str:
        lines = [line for line in self.output.splitlines() if line.strip()]
        return lines[-1] if lines else f"exit status {self.status}"


async def _clusterd(daemon: Daemon, *args: str) -> Ran:
    """The ``clusterd`` command on this server's cluster file, as an operator would run it (its checks, its reload)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clusterd", "-c", str(daemon.config.path), *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT):
            out, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise Problem(504, f"clusterd {args[0]} did not finish in {COMMAND_TIMEOUT:.0f} s") from None
    return Ran(process.returncode or 0, out.decode("utf-8", "replace"))


def _lowest_warning(daemon: Daemon, server: int) -> list[str]:
    config = daemon.config
    lowest = min([config.id, *(p.id for p in config.peers)])
    if server < lowest:
        return [f"id {server} is lower than every id in the cluster: once it is up, server {server} becomes the "
                f"primary (after the hold time), in place of server {daemon.core.membership.primary}"]
    return []


@routes.post("/api/v1/peers")
async def api_add_peer(request: web.Request) -> web.StreamResponse:
    """The "Add BQN to a cluster" dialog: without ``fingerprint``, the peer's key to confirm; with it, ``add-peer``."""
    daemon = daemon_of(request)
    body = await json_body(request)
    server = _int(body, "id", 0, 255)
    address = _address(body, "address")
    ssh_port = _int(body, "ssh_port", 1, 65535, 22)
    _used(daemon, server)
    warnings = _lowest_warning(daemon, server)
    fingerprint = body.get("fingerprint")
    if fingerprint is None:
        port = daemon.config.port_base + server
        try:
            key = await keys.server_host_key(address, port, KEY_TIMEOUT)
        except (OSError, asyncssh.Error, TimeoutError) as error:
            raise Problem(502, f"cannot read the control key at {address}:{port} ({reason(error)}); "
                               "is clusterd running there?") from None
        return web.json_response({"added": False, "id": server, "address": address, "ssh_port": ssh_port,
                                  "control": f"{address}:{port}", "fingerprint": keys.fingerprint(key),
                                  "warnings": warnings})
    if not isinstance(fingerprint, str) or not fingerprint.startswith("SHA256:"):
        raise Problem(400, "fingerprint must be the SHA256:... the dialog showed")
    ran = await _clusterd(daemon, "add-peer", "--id", str(server), "--address", address, "--ssh-port", str(ssh_port),
                          "--fingerprint", fingerprint)
    if ran.status:
        raise Problem(409, ran.reason, output=ran.output)
    audit(request, f"added server {server} ({address}, SSH port {ssh_port}, key {fingerprint})")
    own = keys.fingerprint(daemon.key)
    return web.json_response({
        "added": True, "id": server, "output": ran.output, "warnings": warnings,
        "next": f"on server {server}: clusterd add-peer --id {daemon.config.id} --address {daemon.config.address} "
                f"--ssh-port {daemon.config.ssh_port} --fingerprint {own}"}, status=201)


@routes.delete("/api/v1/peers/{id}")
async def api_remove_peer(request: web.Request) -> web.StreamResponse:
    daemon = daemon_of(request)
    text = request.match_info["id"]
    if not text.isdigit() or daemon.config.peer(int(text)) is None:
        raise Problem(404, f"server {text} is not a peer of this server")
    ran = await _clusterd(daemon, "remove-peer", text)
    if ran.status:
        raise Problem(409, ran.reason, output=ran.output)
    audit(request, f"removed server {text}")
    return web.json_response({"removed": int(text), "output": ran.output})


@routes.put("/api/v1/self")
async def api_self(request: web.Request) -> web.StreamResponse:
    """``{"id": N}`` (Modify BQN ID) or ``{"address": A}``: one at a time, each restarts the daemon in place."""
    daemon = daemon_of(request)
    body = await json_body(request)
    if ("id" in body) == ("address" in body):
        raise Problem(400, 'give {"id": N} or {"address": A}, one at a time (each reloads the service)')
    if "id" in body:
        server = _int(body, "id", 0, 255)
        if server == daemon.config.id:
            return web.json_response({"changed": False, "output": f"this server's id is {server} already"})
        _used(daemon, server)
        ran, what = await _clusterd(daemon, "set-id", str(server)), f"this server's id {daemon.config.id} -> {server}"
    else:
        address = _address(body, "address")
        if address == daemon.config.address:
            return web.json_response({"changed": False, "output": f"this server's address is {address} already"})
        ran, what = await _clusterd(daemon, "set-self-address", address), f"this server's address -> {address}"
    if ran.status:
        raise Problem(409, ran.reason, output=ran.output)
    audit(request, what)
    return web.json_response({"changed": True, "output": ran.output, "restarting": True})


@routes.post("/api/v1/cluster/check")
async def api_check(request: web.Request) -> web.StreamResponse:
    """``clusterd check``: each probe of each peer (control port, key, logins, SSH, a transfer) and a verdict."""
    daemon = daemon_of(request)
    body = await json_body(request)
    peer = body.get("peer")
    peers = [p for p in daemon.config.peers if peer is None or p.id == peer]
    if not peers:
        raise Problem(404, "no such peer" if peer is not None else "no peers yet (Add BQN to a cluster)")
    views_ = {s["id"]: s for s in daemon.admin.status()["servers"]}
    reports = await asyncio.gather(*(check_peer(daemon.config, p, 3.0, views_.get(p.id), None) for p in peers))
    return web.json_response({"ok": all(r.ok for r in reports), "peers": [
        {"id": p.id, "address": p.address, "ok": r.ok, "verdict": r.verdict, "lines": r.lines}
        for p, r in zip(peers, reports)]})


@routes.post("/api/v1/sync")
async def api_sync(request: web.Request) -> web.StreamResponse:
    reply = await daemon_of(request).admin.force_sync()
    if not reply["ok"]:
        raise Problem(409, str(reply["error"]))
    audit(request, f"sync now: generation {reply['generation']}")
    return web.json_response({"generation": reply["generation"]})


@routes.get("/api/v1/servers/{id}/diff")
async def api_server_diff(request: web.Request) -> web.StreamResponse:
    server, primary, result, _, _ = await _server_diff(request)
    return web.json_response({"server": server, "primary": primary, "differences": len(result.changes),
                              "diff": diff_data(result)})


async def _server_diff(request: web.Request) -> tuple[int, int, Any, str, str]:
    """Server ``id``'s live backup against the primary's, cluster-wide sections only (``clusterd diff ID``)."""
    daemon = daemon_of(request)
    text = request.match_info["id"]
    ids = [daemon.config.id, *(p.id for p in daemon.config.peers)]
    if not text.isdigit() or int(text) not in ids:
        raise Problem(404, f"server {text} is not in the cluster")
    primary = daemon.core.membership.primary
    if primary is None:
        raise Problem(409, "no primary: the cluster is not ready")
    try:
        cluster = await daemon.admin.backup_text(primary)
        target = await daemon.admin.backup_text(int(text))
        result = await asyncio.to_thread(lambda: diff(parse(target, f"server {text}'s backup"),
                                                      parse(cluster, f"cluster (server {primary}'s backup)"),
                                                      Scope.CLUSTER))
    except LinkDown as error:
        raise Problem(502, str(error)) from None
    except ConfError as error:
        raise Problem(502, f"a backup is not valid: {error.diagnostics[0]}") from None
    return int(text), primary, result, target, cluster
