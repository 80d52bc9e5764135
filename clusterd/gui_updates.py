"""The Software update page and ``/api/v1/updates``: what the browser sees of :mod:`clusterd.updates`.

The browser, the API and ``clusterd update`` reach the one roll-out through
the same :meth:`clusterd.updates.Updates.local`; the rest here is pure (the
roll-out's status in, HTML out; a request body in, the local request out).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from confmerge.web import Problem, escape, json_body, page

from .gui_common import NAV, audit, csrf_of, daemon_of
from .protocol import Update

routes = web.RouteTableDef()

ACTIONS = ("resume", "abort")


def start_request(body: dict[str, Any]) -> Update:
    """``{"package": PATH, "parallel": N, "dry_run": bool}``: the package is a file on this server (its manifest beside it)."""
    path = body.get("package")
    if not isinstance(path, str) or not path.startswith("/"):
        raise Problem(400, "package must be the absolute path of a package file on this server "
                           "(with PACKAGE.manifest beside it)")
    parallel = body.get("parallel", 1)
    if not isinstance(parallel, int) or isinstance(parallel, bool) or not 1 <= parallel <= 255:
        raise Problem(400, "parallel must be a whole number from 1 to 255")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise Problem(400, "dry_run must be true or false")
    return Update("start", path, parallel, dry_run)


def refusal(reply: dict[str, Any]) -> Problem:
    """A refused request as the API says it: 409 for the cluster's state, 400 for a package that does not check out."""
    return Problem(400 if reply.get("package") else 409, str(reply.get("error", "refused")))


def section(update: dict[str, Any]) -> str:
    """The roll-out and every server's version (what the script refreshes from ``GET /api/v1/updates``)."""
    e = escape
    plan = update.get("rollout")
    steps = plan["steps"] if plan else {}
    rows = "".join(
        f'<tr data-id="{e(server)}"><td>{e(server)}</td><td class="version">{e(version or "(unknown)")}</td>'
        f'<td class="step">{e(steps[server]["state"]) if server in steps else "-"}'
        + (f' <span class="reason">{e(steps[server]["error"])}</span>' if server in steps and steps[server]["error"]
           else "") + "</td></tr>"
        for server, version in update["versions"].items())
    head = (f'<p id="rollout-line">Roll-out <code>{e(plan["id"])}</code>: {e(plan["package"]["name"])} version '
            f'{e(plan["package"]["version"])}, <strong class="rollout-state">{e(plan["state"])}</strong> '
            f'({e(update["progress"])} servers done; order {e(" → ".join(map(str, plan["order"])))}, coordinator '
            f'server {e(plan["coordinator"])}){": " + e(plan["reason"]) if plan["reason"] else ""}</p>'
            if plan else '<p id="rollout-line">No roll-out yet.</p>')
    warnings = "".join(f'<p class="warn-note">{e(w)}</p>' for w in update["warnings"])
    return (f'{head}{warnings}<table class="plain" id="versions"><thead><tr><th>BQN id</th><th>version</th>'
            f'<th>step</th></tr></thead><tbody>{rows}</tbody></table>')


def page_body(update: dict[str, Any]) -> str:
    return f'''
<section class="card"><h1>Software update</h1>
<div id="update-status">{section(update)}</div>
<div class="actions"><button id="update-resume">Resume</button><button id="update-abort">Abort</button></div>
<div id="update-result" class="result" role="status"></div></section>
<section class="card"><h2>Install a package on every server</h2>
<form id="update-start"><label>Package file on this server
<input type="text" name="package" placeholder="/var/tmp/bqn-5.1.0.tar.gz" required></label>
<label>Servers at a time <input type="text" name="parallel" value="1" inputmode="numeric"></label>
<label><input type="checkbox" name="dry_run"> Dry run (check the package, show the order)</label>
<p class="muted">The package's manifest (<code>PACKAGE.manifest</code>) and, when the cluster requires one, its
signature (<code>PACKAGE.manifest.sig</code>) go beside it. Secondaries are updated first, highest id first; the
primary last. The first failure stops the roll-out; servers not started are not touched.</p>
<button type="submit" class="primary">Start</button></form></section>'''


@routes.get("/updates")
async def updates_page(request: web.Request) -> web.StreamResponse:
    daemon = daemon_of(request)
    text = page(f"Software update · server {daemon.config.id}", page_body(daemon.updates.status()),
                      csrf_of(request), links=NAV, scripts=("/static/updates.js",))
    return web.Response(text=text, content_type="text/html")


@routes.get("/api/v1/updates")
async def api_updates(request: web.Request) -> web.StreamResponse:
    """``clusterd update status --json``; ``?html=1`` adds the page's section as HTML (``html``)."""
    update = daemon_of(request).updates.status()
    if request.query.get("html"):
        update = {**update, "html": section(update)}
    return web.json_response(update)


@routes.post("/api/v1/updates")
async def api_update_start(request: web.Request) -> web.StreamResponse:
    """``clusterd update PACKAGE``: 202 with the plan (the roll-out goes on in the cluster), or 200 for a dry run."""
    daemon = daemon_of(request)
    wanted = start_request(await json_body(request))
    reply = await daemon.updates.local(wanted)
    if not reply["ok"]:
        raise refusal(reply)
    plan = reply["plan"]
    if wanted.dry_run:
        return web.json_response({"dry_run": True, "plan": plan, "versions": reply["versions"],
                                  "message": f"dry run: order {' → '.join(map(str, plan['order']))}; nothing done"})
    audit(request, f"software update {plan['id']}: {plan['package']['name']} version {plan['package']['version']}")
    return web.json_response({"plan": plan, "message": f"roll-out {plan['id']} started"}, status=202)


@routes.post("/api/v1/updates/{action:resume|abort}")
async def api_update_action(request: web.Request) -> web.StreamResponse:
    action = request.match_info["action"]
    reply = await daemon_of(request).updates.local(Update(action))
    if not reply["ok"]:
        raise refusal(reply)
    audit(request, f"software update {reply['plan']['id']}: {action}")
    return web.json_response({"plan": reply["plan"], "message": f"roll-out {reply['plan']['id']}: {action}"})
