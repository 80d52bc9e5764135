"""The web server: the JSON API under ``/api/v1/`` and the pages that use it, as one aiohttp application.

:func:`create_app` builds it without starting anything, so ``confmerge serve``
runs it standalone and a daemon can run it inside its own event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from importlib import resources
from typing import Any, Awaitable, Callable, TypeVar
from urllib.parse import quote

from aiohttp import web

from ..data import diff_data
from ..diff import Scope, diff
from ..rules import Rules
from . import views
from .auth import (
    SESSIONS, Authority, Identity, OneToken, Sessions, Throttle, authenticate, authorize, clear_session, set_session,
)
from .drafts import REPORT, RESOLUTIONS, Draft, Drafts
from .errors import Problem
from .openapi import openapi
from .uploads import BODY_SECONDS, Limits, Upload, check, diagnostic_data, files, form, load, posted, read_body

log = logging.getLogger("confmerge.web")
DRAFTS = web.AppKey("drafts", Drafts)
DRAFT_LOCK = web.AppKey("draft lock", asyncio.Lock)
LIMITS = web.AppKey("limits", Limits)
SECURE = web.AppKey("secure", bool)
LOGIN_HINT = web.AppKey("login hint", str)
THROTTLE = web.AppKey("throttle", Throttle)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")
routes = web.RouteTableDef()

LINGER = 2.0
"""Seconds a connection whose request body went unread (a 408, a 413) is read on before it closes: time for the
answer to reach a client that is still sending, not aiohttp's 10 s, which a slow sender would hold it for."""


def runner(app: web.Application, **options: Any) -> web.AppRunner:
    """The one way both programs serve an app: no access log, a short linger (:data:`LINGER`)."""
    return web.AppRunner(app, access_log=None, lingering_time=LINGER, **options)


def create_app(token: str, *, secure: bool = True, limits: Limits = Limits(), rules: Rules | None = None,
               draft_lifetime: float = 3600.0, body_seconds: float = 120.0, home: Handler | None = None,
               login_hint: str = "printed by <code>confmerge serve</code> (or stored in its token file)",
               authority: Authority | None = None, middlewares: tuple[Any, ...] = (),
               throttle: Throttle | None = None) -> web.Application:
    """The whole server for ``token``; ``secure``: served over HTTPS (the session cookie is then Secure).

    ``body_seconds`` bounds the time a request body may take to arrive (408 past it), so a slow sender holds nothing.
    ``home``: another home page (``clusterd``'s cluster); compare, merge and check are then at ``/tools``.
    ``login_hint`` (HTML) says where the token is. ``authority``: who may log in (default: ``token``, the admin);
    ``middlewares`` run after authentication and before the role check; ``throttle`` limits failed logins.
    """
    app = web.Application(middlewares=[problems, authenticate, *middlewares, authorize],
                          client_max_size=limits.total_bytes)
    app[SESSIONS] = Sessions(authority or OneToken(token))
    app[THROTTLE] = throttle or Throttle()
    app[DRAFTS] = Drafts(rules, draft_lifetime)
    app[DRAFT_LOCK] = asyncio.Lock()
    app[LIMITS] = limits
    app[SECURE] = secure
    app[BODY_SECONDS] = body_seconds
    app[LOGIN_HINT] = login_hint
    app.router.add_get("/", home or tools)
    if home is not None:
        app.router.add_get("/tools", tools)
    app.add_routes(routes)
    app.on_response_prepare.append(_guard)
    return app


POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
          "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
GUARD = {"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
         "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}


async def _guard(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer, errors and redirects too: no script but ours, no framing, no sniffing, nothing cached."""
    response.headers.update(GUARD)


def wants_html(request: web.Request) -> bool:
    return not request.path.startswith("/api/") and "text/html" in request.headers.get("Accept", "")


def _csrf(request: web.Request) -> str | None:
    session = request.get("session")
    return session.csrf if session is not None else None


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal as JSON (or, for a page, HTML) with its status; anything unexpected a 500 without a trace."""
    try:
        return await handler(request)
    except Problem as problem:
        status, message, details, headers = problem.status, problem.message, problem.details, problem.headers
    except web.HTTPException as error:
        if error.status < 400:
            raise
        status, details, headers = error.status, {}, {}
        message = {404: "no such page or resource", 405: f"{request.method} is not allowed here",
                   413: "the upload is over the size limit"}.get(error.status, error.reason)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        status, message, details, headers = 500, "internal error (logged on the server)", {}, {}
    if status == 401 and wants_html(request):
        return web.Response(status=401, text=views.page("Log in", '<section class="card narrow"><h1>Log in first</h1>'
                            '<p><a href="/login" id="to-login">Log in</a> with the token of <code>confmerge serve</code>.</p>'
                            '</section>', nav=False).replace("<head>", '<head><meta http-equiv="refresh" content="0; url=/login">', 1),
                            content_type="text/html", headers=headers)
    if wants_html(request):
        return web.Response(status=status, content_type="text/html", headers=headers,
                            text=views.problem(status, message, details.get("diagnostics", []), _csrf(request)))
    return web.json_response({"error": message, "status": status, **details}, status=status, headers=headers)


# -- login


@routes.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    token = request.query.get("token")
    if token is not None:
        return await _log_in(request, token, None, "", request.query.get("next", "/"))
    return _login_form(request)


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    data = await posted(request)
    token, user, password = (data.get(name) for name in ("token", "user", "password"))
    if isinstance(user, str) and user:
        return await _log_in(request, "", user, password if isinstance(password, str) else "")
    return await _log_in(request, token if isinstance(token, str) else "", None, "")


def _login_form(request: web.Request, message: str | None = None, status: int = 200,
                headers: dict[str, str] | None = None) -> web.Response:
    text = views.login(message, request.app[LOGIN_HINT], request.app[SESSIONS].authority.passwords)
    return web.Response(status=status, text=text, content_type="text/html", headers=headers)


async def _log_in(request: web.Request, token: str, user: str | None, password: str,
                  follow: str = "/") -> web.StreamResponse:
    """A session for a valid token, or a user's password; past the failed logins an address may make, 429."""
    sessions, throttle, address = request.app[SESSIONS], request.app[THROTTLE], request.remote or ""
    wait = throttle.retry_after(address)
    if wait is not None:
        return _login_form(request, f"Too many failed logins from {address}; try again in {wait} s.", 429,
                           {"Retry-After": str(wait)})
    throttle.failed(address)  # counted while it is checked (PAM takes seconds): guesses sent at once count too
    identity: Identity | None
    if user is None:
        identity = sessions.identify(token)
    else:
        identity = await sessions.authority.password(user, password)
    if identity is None:
        return _login_form(request, "That token is not valid." if user is None else
                           "That user name and password do not log in here.", 401)
    throttle.succeeded(address)
    key, _ = sessions.open(identity)
    # A browser drops tabs and newlines from a URL, so "/\t/host" would become "//host": nothing but visible ASCII.
    local = (follow.startswith("/") and not follow.startswith("//") and "\\" not in follow
             and all("!" <= ch <= "~" for ch in follow))
    response = web.HTTPSeeOther(follow if local else "/")
    set_session(response, key, request.app[SECURE])
    return response


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    from .auth import COOKIE
    request.app[SESSIONS].close(request.cookies.get(COOKIE))
    response = web.HTTPSeeOther("/login")
    clear_session(response, request.app[SECURE])
    return response


# -- pages


async def tools(request: web.Request) -> web.StreamResponse:
    return web.Response(text=views.home(_csrf(request) or ""), content_type="text/html")


SCRIPTS = frozenset({"app.js", "cluster.js", "updates.js"})
"""The server's own scripts (``cluster.js``, ``updates.js``: clusterd's pages); the only ones the pages' policy lets run."""


@routes.get("/static/{name}")
async def script(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in SCRIPTS:
        raise web.HTTPNotFound()
    text = resources.files("confmerge.web").joinpath(f"static/{name}").read_text(encoding="utf-8")
    return web.Response(text=text, content_type="application/javascript")


@routes.post("/compare")
async def compare_page(request: web.Request) -> web.StreamResponse:
    old, new, result = await _compare(request, await form(request))
    page = await asyncio.to_thread(views.compare, result, old.text.splitlines(), new.text.splitlines(),
                                   _csrf(request) or "")
    return web.Response(text=page, content_type="text/html")


@routes.post("/check")
async def check_page(request: web.Request) -> web.StreamResponse:
    results = await _check(request)
    return web.Response(text=views.check(results, _csrf(request) or ""), content_type="text/html")


@routes.post("/merge")
async def merge_start(request: web.Request) -> web.StreamResponse:
    draft = await _create(request)
    raise web.HTTPSeeOther(f"/merges/{draft.id}")


@routes.get("/merges/{id}")
async def merge_page(request: web.Request) -> web.StreamResponse:
    draft = request.app[DRAFTS].get(request.match_info["id"])

    def render() -> str:
        previews = []
        if draft.confirmed:
            texts = draft.texts()
            previews = [(upload.name, output, views.line_diff(upload.text, texts[output], upload.name, output))
                        for upload, output in zip(draft.inputs, draft.outputs)]
        return views.merge(draft.data(), [c.bqn_id for c in draft.configs], _csrf(request) or "", previews)
    return web.Response(text=await _changing(request, render), content_type="text/html")


# -- the API


@routes.get("/api/v1/openapi.json")
async def openapi_document(request: web.Request) -> web.StreamResponse:
    return web.json_response(openapi())


@routes.post("/api/v1/check")
async def api_check(request: web.Request) -> web.StreamResponse:
    results = await _check(request)
    return web.json_response({"ok": all(r["ok"] for r in results), "files": results})


@routes.post("/api/v1/diff")
async def api_diff(request: web.Request) -> web.StreamResponse:
    _, _, result = await _compare(request, await form(request))
    return web.json_response(diff_data(result))


@routes.post("/api/v1/merges")
async def api_create(request: web.Request) -> web.StreamResponse:
    draft = await _create(request)
    return web.json_response(draft.data(), status=201, headers={"Location": f"/api/v1/merges/{draft.id}"})


@routes.get("/api/v1/merges/{id}")
async def api_draft(request: web.Request) -> web.StreamResponse:
    return web.json_response(_draft(request).data())


@routes.patch("/api/v1/merges/{id}")
async def api_primary(request: web.Request) -> web.StreamResponse:
    draft = _draft(request)
    body = await json_body(request)
    primary = body.get("primary")
    if not isinstance(primary, str):
        raise Problem(400, "give {\"primary\": NAME}, NAME one of the merge's backups")
    return web.json_response(await _changing(request, lambda: draft.choose_primary(primary)))


@routes.patch("/api/v1/merges/{id}/conflicts/{n}")
async def api_choose(request: web.Request) -> web.StreamResponse:
    draft = _draft(request)
    take = (await json_body(request)).get("take")
    if not isinstance(take, str):
        raise Problem(400, "give {\"take\": NAME}: a backup's name, \"primary\" or \"base\"")
    try:
        n = int(request.match_info["n"])
    except ValueError:
        raise Problem(404, "conflicts are numbered from 1") from None
    return web.json_response(await _changing(request, lambda: draft.choose(n, take)))


@routes.post("/api/v1/merges/{id}/take-primary")
async def api_take_primary(request: web.Request) -> web.StreamResponse:
    draft = _draft(request)
    return web.json_response(await _changing(request, draft.take_primary_for_rest))


@routes.post("/api/v1/merges/{id}/confirm")
async def api_confirm(request: web.Request) -> web.StreamResponse:
    draft = _draft(request)
    return web.json_response(await _changing(request, draft.confirm))


@routes.get("/api/v1/merges/{id}/outputs/{file}")
async def api_output(request: web.Request) -> web.StreamResponse:
    draft = _confirmed(request)
    name = request.match_info["file"]
    if name not in draft.outputs:
        raise Problem(404, f"no output {name}; the outputs are {', '.join(draft.outputs)}")
    return download((await _changing(request, draft.texts))[name].encode("utf-8"), name, "text/plain; charset=utf-8")


@routes.get("/api/v1/merges/{id}/report")
async def api_report(request: web.Request) -> web.StreamResponse:
    return download((await _changing(request, _confirmed(request).texts))[REPORT].encode("utf-8"), REPORT,
                     "application/json")


@routes.get("/api/v1/merges/{id}/resolutions")
async def api_resolutions(request: web.Request) -> web.StreamResponse:
    return download((await _changing(request, _draft(request).texts))[RESOLUTIONS].encode("utf-8"), RESOLUTIONS,
                     "application/json")


@routes.get("/api/v1/merges/{id}/archive")
async def api_archive(request: web.Request) -> web.StreamResponse:
    draft = _confirmed(request)
    return download(await _changing(request, draft.archive), f"merge-{draft.id}.zip", "application/zip")


# -- shared by pages and API


async def _changing(request: web.Request, work: Callable[[], T]) -> T:
    """Run engine work on a draft in a thread, one at a time: the event loop (a daemon's too) stays free."""
    async with request.app[DRAFT_LOCK]:
        return await asyncio.to_thread(work)


def _draft(request: web.Request) -> Draft:
    return request.app[DRAFTS].get(request.match_info["id"])


def _confirmed(request: web.Request) -> Draft:
    draft = _draft(request)
    if not draft.confirmed:
        raise Problem(409, "the merge is a draft; confirm it first (POST .../confirm)")
    return draft


def download(data: bytes, name: str, content_type: str) -> web.Response:
    plain = "".join(ch if " " <= ch <= "~" and ch not in '"\\' else "_" for ch in name)
    disposition = f'attachment; filename="{plain}"' + ("" if plain == name else f"; filename*=UTF-8''{quote(name)}")
    response = web.Response(body=data, headers={"Content-Disposition": disposition})
    response.content_type, _, charset = content_type.partition("; charset=")
    if charset:
        response.charset = charset
    return response


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await read_body(request) or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Problem(400, "the body is not JSON this server reads (nested too deep, or a number too long?)") from None
    if not isinstance(body, dict):
        raise Problem(400, "the body is not a JSON object")
    return body


async def _compare(request: web.Request, data: Any) -> tuple[Upload, Upload, Any]:
    limits = request.app[LIMITS]
    scope_name = request.query.get("scope") or (data.get("scope") if isinstance(data.get("scope"), str) else None) or "all"
    try:
        scope = Scope(scope_name)
    except ValueError:
        raise Problem(400, f"scope must be all, cluster or server, not {scope_name}") from None
    old, new = files(data, "old", limits)[:1], files(data, "new", limits)[:1]
    if old[0].name == new[0].name:
        old = [Upload(f"a/{old[0].name}", old[0].text)]
        new = [Upload(f"b/{new[0].name}", new[0].text)]
    rules = request.app[DRAFTS].rules

    def compare() -> Any:
        old_config, new_config = load([*old, *new], rules)
        return diff(old_config, new_config, scope)
    return old[0], new[0], await asyncio.to_thread(compare)


async def _check(request: web.Request) -> list[dict[str, Any]]:
    uploads = files(await form(request), "file", request.app[LIMITS])
    rules = request.app[DRAFTS].rules

    def checked() -> list[dict[str, Any]]:
        results = []
        for upload in uploads:
            _, found = check(upload, rules)
            lines = upload.text.splitlines()
            results.append({"file": upload.name, "ok": not any(d.severity == "error" for d in found),
                            "diagnostics": [diagnostic_data(d, lines) for d in found]})
        return results
    return await asyncio.to_thread(checked)


async def _create(request: web.Request) -> Draft:
    data = await form(request)
    limits = request.app[LIMITS]
    backups = files(data, "backups", limits)
    base = files(data, "base", limits, required=False)
    primary = data.get("primary")
    return await _changing(request, lambda: request.app[DRAFTS].create(
        backups, primary if isinstance(primary, str) and primary else None, base[0] if base else None))

