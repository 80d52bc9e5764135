"""The Backups page and its API: the live backup saved, a configuration loaded, the history, its diffs and restores.

The web side of safe changes (``docs/clusterd.md``, "Changing the cluster
safely"): every request is the one ``clusterd history/show/diff/load/confirm/
rollback`` sends over the local socket, answered by the daemon's
:class:`~clusterd.changes.Changes` (which asks the primary when this server is
not), so the browser, the API and the CLI make the same generations.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from confmerge.web import LIMITS, Problem, download, escape, files, form, json_body, load_uploads

from .changes import MAX_CONFIRM_MINUTES, ChangeError, when
from .gui_common import audit, daemon_of, frame, titled_compare
from .protocol import Compare, Confirm, Generations, Load, Rollback, Show

routes = web.RouteTableDef()


async def _local(request: web.Request, message: Any, status: int = 409) -> dict[str, Any]:
    reply = await daemon_of(request).changes.local(message)
    if not reply.get("ok"):
        raise Problem(status, str(reply.get("error")))
    reply.pop("ok")
    return reply


# -- the page


@routes.get("/backups")
async def backups_page(request: web.Request) -> web.StreamResponse:
    daemon = daemon_of(request)
    e = escape
    history = (await _local(request, Generations()))["generations"]
    waiting = daemon.admin.status().get("pending")
    banner = ""
    if waiting:
        banner = (f'<section class="card pending" id="pending" data-deadline="{waiting["deadline"]}" '
                  f'data-before="{e(waiting["before"] or "")}">'
                  f'<h2>The load of generation {waiting["number"]} is provisional</h2>'
                  f'<p>Unless confirmed, every server returns to generation {e(waiting["before_number"] or "?")} by '
                  f'itself at {e(when(waiting["deadline"]))} UTC: <b id="countdown">{int(waiting["left"])} s</b> left.</p>'
                  '<div class="actions"><button class="primary" id="confirm-load">Confirm</button>'
                  '<button id="rollback-now">Roll back now</button></div></section>')
    rows = []
    for g in history:
        restore = ("" if g is history[0] or not g["kept"] else
                   f'<button class="small restore" data-ref="{e(g["id"])}">Restore</button>')
        rows.append(
            f'<tr class="generation" data-number="{g["number"]}" data-id="{e(g["id"])}">'
            f'<td><input type="radio" name="old" value="{e(g["id"])}"{" checked" if g is history[min(1, len(history) - 1)] else ""}>'
            f'<input type="radio" name="new" value="{e(g["id"])}"{" checked" if g is history[0] else ""}></td>'
            f'<td>{g["number"]}</td><td>{e(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(g["time"])))}</td>'
            f'<td>server {g["author"]}</td><td class="how">{e(g["how"])}</td>'
            f'<td class="what">{e(g["summary"] or "")}</td><td>{restore}</td></tr>')
    body = f'''{banner}
<div class="grid3">
<section class="card"><h2>Save the live backup</h2><p>This server's backup as it is now, its own sections too.</p>
<p><a class="button" id="save-live" href="/api/v1/backup">Download</a></p></section>
<section class="card wide"><h2>Load a configuration</h2><p>Its cluster-wide sections become the cluster's, on every
server; each server's own sections stay. It is checked and compared with the cluster's configuration first.</p>
<form id="load-form"><label>Backup <input type="file" name="file" required></label>
<label>Confirm within minutes (optional: without, the load is final; at most {MAX_CONFIRM_MINUTES:.0f})
<input type="text" name="confirm_minutes" inputmode="decimal" placeholder="5"></label>
<button type="submit" class="primary">Check and compare</button></form>
<div id="load-preview" class="confirm" hidden></div></section>
</div>
<section class="card"><h2>History</h2><p class="muted">Generations held on this server, newest first. Pick two
(left: from, right: to) to see what changed between them; restoring one makes a new generation with its
configuration (nothing is rewritten).</p>
<table class="plain history" id="history"><thead><tr><th>from/to</th><th>gen</th><th>time (UTC)</th><th>by</th>
<th>how</th><th>what changed</th><th></th></tr></thead><tbody>{"".join(rows)}</tbody></table>
<div class="actions look"><button id="compare-generations" class="look">Show the difference</button></div>
<div id="backups-result" class="result" role="status"></div></section>'''
    return frame(request, "Backups", body)


@routes.get("/backups/diff")
async def generations_diff_page(request: web.Request) -> web.StreamResponse:
    changes = daemon_of(request).changes
    old, new = request.query.get("old", ""), request.query.get("new", "")
    try:
        found = await changes.compare(old, new)
        old_text, new_text = await changes.text(found.old), await changes.text(found.new)
    except ChangeError as error:
        raise Problem(404, str(error)) from None
    head = (f'<p class="card">Generation {found.old.number} ({found.old.short}) to generation {found.new.number} '
            f'({found.new.short}): the cluster-wide configuration. <a href="/backups">Back to the backups</a></p>')
    return titled_compare(request, found.diff, old_text, new_text, head)


# -- the API


@routes.get("/api/v1/backup")
async def api_live_backup(request: web.Request) -> web.StreamResponse:
    daemon = daemon_of(request)
    text = await daemon.admin.backup_text(daemon.config.id)
    return download(text.encode("utf-8"), daemon.config.backup.name, "text/plain; charset=utf-8")


@routes.post("/api/v1/loads")
async def api_load(request: web.Request) -> web.StreamResponse:
    """Multipart ``file`` (and ``confirm_minutes``, ``dry_run``): checked, compared, then made the cluster's."""
    data = await form(request)
    upload = files(data, "file", request.app[LIMITS])[0]
    minutes_text = str(data.get("confirm_minutes") or "").strip()
    try:
        minutes = float(minutes_text) if minutes_text else None
    except ValueError:
        raise Problem(400, f"confirm_minutes must be a number of minutes, not {minutes_text!r}") from None
    if minutes is not None and not 0 < minutes <= MAX_CONFIRM_MINUTES:
        raise Problem(400, f"confirm_minutes must be more than 0 and at most {MAX_CONFIRM_MINUTES:.0f}")
    dry_run = str(data.get("dry_run") or "").lower() in ("1", "true", "yes")
    await asyncio.to_thread(load_uploads, [upload], None)  # bad input: 400 with every diagnostic, nothing sent
    reply = await _local(request, Load(text=upload.text, name=upload.name, confirm=minutes, dry_run=dry_run))
    made = reply.get("generation")
    if made:
        audit(request, f"loaded {upload.name} as generation {made['number']}"
               + (f", to confirm within {minutes:g} min" if minutes else ""))
    return web.json_response({"dry_run": dry_run, **reply}, status=201 if made else 200)


@routes.post("/api/v1/confirm")
async def api_confirm(request: web.Request) -> web.StreamResponse:
    reply = await _local(request, Confirm())
    audit(request, reply["message"])
    return web.json_response(reply)


@routes.post("/api/v1/rollbacks")
async def api_rollback(request: web.Request) -> web.StreamResponse:
    """``{"steps": N}`` back along the history, or ``{"to": G}`` (a number or an id prefix): a new generation."""
    body = await json_body(request)
    steps, to = body.get("steps"), body.get("to")
    if (steps is None) == (to is None) or not (isinstance(steps, int) and not isinstance(steps, bool) and steps > 0
                                               or isinstance(to, str)):
        raise Problem(400, 'give {"steps": N} (N > 0) or {"to": G}, G a generation number or id prefix')
    reply = await _local(request, Rollback(steps=steps, to=to))
    audit(request, reply["message"])
    return web.json_response(reply, status=201)


@routes.get("/api/v1/generations")
async def api_generations(request: web.Request) -> web.StreamResponse:
    reply = await _local(request, Generations())
    return web.json_response({**reply, "pending": daemon_of(request).admin.status().get("pending")})


@routes.get("/api/v1/generations/{ref}")
async def api_generation(request: web.Request) -> web.StreamResponse:
    return web.json_response(await _local(request, Show(ref=request.match_info["ref"]), 404))


@routes.get("/api/v1/generations/{old}/diff/{new}")
async def api_generations_diff(request: web.Request) -> web.StreamResponse:
    return web.json_response(await _local(request, Compare(old=request.match_info["old"],
                                                           new=request.match_info["new"]), 404))
