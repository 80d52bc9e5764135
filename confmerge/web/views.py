"""The pages, rendered on the server as HTML: only what differs, escaped, with a little JavaScript for keys.

Every string that comes from a backup or a file name goes through :func:`e`
(HTML escaping); line numbers and counts are the engine's.
"""

from __future__ import annotations

import difflib
import html
import re
from importlib import resources
from itertools import groupby
from typing import Any, Iterable, Sequence
from urllib.parse import quote

from ..diff import CLASS_ORDER, Change, Diff, Op
from ..present import diff_summary
from ..tree import Node
from .drafts import BOTH_WHY

CONTEXT = 3
_TOKENS = re.compile(r"(\s+)")
_SIGN = {Op.ADDED: "+", Op.REMOVED: "−", Op.CHANGED: "~", Op.MOVED: "↕"}


def e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _style() -> str:
    return resources.files("confmerge.web").joinpath("static/style.css").read_text(encoding="utf-8")


def page(title: str, body: str, csrf: str | None = None, script: bool = True, nav: bool = True,
         links: Sequence[tuple[str, str]] = (), scripts: Sequence[str] = ()) -> str:
    """A whole page: the header (with log out when there is a session), the body, the key script.

    ``links`` (href, label) follow Home in the header; ``scripts`` are more of the server's own script paths.
    """
    head_nav = ""
    if nav and csrf is not None:
        more = "".join(f'<a href="{e(href)}">{e(label)}</a>' for href, label in links)
        head_nav = (f'<nav><a href="/">Home</a>{more}'
                    f'<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="{e(csrf)}">'
                    f'<button type="submit" class="link" id="logout">Log out</button></form></nav>')
    meta = f'<meta name="csrf-token" content="{e(csrf)}">' if csrf else ""
    js = "".join(f'<script src="{e(src)}" defer></script>' for src in ("/static/app.js", *scripts)
                 ) if script and csrf is not None else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1">{meta}<title>{e(title)} · confmerge</title>'
            f'<style>{_style()}</style>{js}</head><body><header><a class="brand" href="/">confmerge</a>'
            f'<span class="where">{e(title)}</span>{head_nav}</header><main>{body}</main></body></html>')


def _csrf_field(csrf: str | None) -> str:
    return f'<input type="hidden" name="csrf" value="{e(csrf)}">' if csrf else ""


def login(message: str | None = None, hint: str = "printed by <code>confmerge serve</code> (or stored in its token file)",
          passwords: bool = False) -> str:
    note = f'<p class="error" role="alert">{e(message)}</p>' if message else ""
    users = ('<form method="post" action="/login" id="password-login"><p>Or log in as a member of the web group, '
             'with your system password.</p><label>User <input type="text" name="user" id="user" '
             'autocomplete="username" required></label><label>Password <input type="password" name="password" '
             'id="password" autocomplete="current-password" required></label>'
             '<button type="submit" id="login-user">Log in</button></form>') if passwords else ""
    body = (f'<section class="card narrow"><h1>Log in</h1>{note}'
            f'<p>Give the access token {hint}.</p>'
            '<form method="post" action="/login"><label>Token <input type="password" name="token" id="token" '
            'autocomplete="current-password" autofocus required></label>'
            f'<button type="submit" class="primary" id="login">Log in</button></form>{users}</section>')
    return page("Log in", body, nav=False)


def home(csrf: str) -> str:
    f = _csrf_field(csrf)
    body = f'''
<div class="grid3">
<section class="card"><h2>Compare</h2><p>What really differs between two backups, by section, cluster-wide first.</p>
<form method="post" action="/compare" enctype="multipart/form-data" id="compare-form">{f}
<label>Old backup <input type="file" name="old" required></label>
<label>New backup <input type="file" name="new" required></label>
<label>Scope <select name="scope"><option value="all">all differences</option>
<option value="cluster">cluster-wide only</option><option value="server">server-specific only</option></select></label>
<button type="submit" class="primary">Compare</button></form></section>
<section class="card"><h2>Merge</h2><p>Unify a cluster's backups: one <code>-v2</code> backup per server.
The primary (lowest <code>bqn-id</code>) is chosen for you; change it on the next page.</p>
<form method="post" action="/merge" enctype="multipart/form-data" id="merge-form">{f}
<label>Backups, one per server <input type="file" name="backups" multiple required></label>
<label>Base, for a three-way merge (optional) <input type="file" name="base"></label>
<label>Primary (optional: a backup's file name; needed only when two share the lowest bqn-id)
<input type="text" name="primary" placeholder="bqn0-v1.conf"></label>
<button type="submit" class="primary">Start merge</button></form></section>
<section class="card"><h2>Check</h2><p>Syntax, types and references: every problem with its line and column.</p>
<form method="post" action="/check" enctype="multipart/form-data" id="check-form">{f}
<label>Backups <input type="file" name="file" multiple required></label>
<button type="submit" class="primary">Check</button></form></section>
</div>'''
    return page("Home", body, csrf)


def problem(status: int, message: str, diagnostics: Sequence[dict[str, Any]], csrf: str | None) -> str:
    body = (f'<section class="card error-card" role="alert"><h1>{status}: {e(message)}</h1>'
            f'{_diagnostics(diagnostics)}<p><a href="/">Back</a></p></section>')
    return page("Error", body, csrf)


def _diagnostics(diagnostics: Sequence[dict[str, Any]]) -> str:
    if not diagnostics:
        return ""
    items = []
    for d in diagnostics:
        where = f'{e(d["file"])}:{d["line"]}:{d["column"]}' if d["line"] else e(d["file"])
        shown = ""
        if d.get("source") is not None:
            caret = " " * max(0, d["column"] - 1) + "^"
            shown = (f'<pre class="source"><span class="ln">{d["line"]}</span>{e(d["source"])}\n'
                     f'<span class="ln"></span><span class="caret">{caret}</span></pre>')
        items.append(f'<li class="diag {d["severity"]}"><span class="sev">{d["severity"]}</span> '
                     f'<code>{where}</code> {e(d["message"])}{shown}</li>')
    return f'<ul class="diagnostics">{"".join(items)}</ul>'


def check(results: Sequence[dict[str, Any]], csrf: str) -> str:
    parts = []
    for result in results:
        errors = sum(1 for d in result["diagnostics"] if d["severity"] == "error")
        warnings = len(result["diagnostics"]) - errors
        verdict = ('<span class="badge ok">OK</span>' if result["ok"]
                   else f'<span class="badge bad">{errors} error{"s" if errors != 1 else ""}</span>')
        extra = f' <span class="badge warn">{warnings} warning{"s" if warnings != 1 else ""}</span>' if warnings else ""
        parts.append(f'<section class="card"><h2>{e(result["file"])} {verdict}{extra}</h2>'
                     f'{_diagnostics(result["diagnostics"]) or "<p>No problems: syntax, types and references are fine.</p>"}'
                     '</section>')
    return page("Check", "".join(parts), csrf)


# -- compare


def compare(result: Diff, old_lines: Sequence[str], new_lines: Sequence[str], csrf: str) -> str:
    counts = result.counts
    total = len(result.changes)
    cards = [f'<div class="count total"><b id="total">{total}</b> difference{"s" if total != 1 else ""}</div>']
    filters = []
    for cls in CLASS_ORDER:
        cards.append(f'<div class="count {cls.value}"><b data-count="{cls.value}">{counts[cls]}</b> {cls.label}</div>')
        filters.append(f'<label class="filter"><input type="checkbox" data-filter="{cls.value}" checked> {cls.label}</label>')
    outside = f'<p class="muted">{result.outside} more outside the scope {e(result.scope.value)}.</p>' if result.outside else ""
    sections = []
    number = 0
    for (cls, section), group in groupby(result.changes, key=lambda c: (c.merge_class, c.section)):
        items = []
        for change in group:
            number += 1
            items.append(_change(change, number, old_lines, new_lines))
        sections.append(f'<section class="sec" data-class="{cls.value}"><h3><span class="badge {cls.value}">'
                        f'{cls.label}</span> <span class="ident">{e(section)}</span></h3>{"".join(items)}</section>')
    toolbar = (f'<div class="toolbar"><div class="views" role="group" aria-label="view">'
               f'<button type="button" data-view="split" class="on">Side by side</button>'
               f'<button type="button" data-view="unified">Unified</button></div>'
               f'<div class="filters">{"".join(filters)}</div>'
               f'<div class="keys"><kbd>j</kbd>/<kbd>k</kbd> next / previous change · <kbd>u</kbd> view</div></div>')
    files = (f'<p class="files"><span class="old">− {e(result.old_file)}</span> '
             f'<span class="new">+ {e(result.new_file)}</span></p>')
    empty = '<p class="card">No differences in scope.</p>' if not result.changes else ""
    body = (f'<div class="summary">{"".join(cards)}</div>{files}<p class="muted">{e(diff_summary(result))}</p>{outside}'
            f'{toolbar}<div id="changes" class="split">{"".join(sections)}{empty}</div>')
    return page("Compare", body, csrf)


def _block(node: Node) -> tuple[int, int]:
    """The first and last line of an entry with its block."""
    last = node.line
    for child in node.walk():
        last = max(last, child.line)
    return node.line, last


def _rows(lines: Sequence[str], first: int, last: int) -> list[tuple[int, str]]:
    return [(n, lines[n - 1]) for n in range(max(1, first), min(len(lines), last) + 1)]


def _words(old: str, new: str) -> tuple[str, str]:
    """Both lines with the words that differ marked; spaces and indentation kept."""
    a, b = _TOKENS.split(old), _TOKENS.split(new)
    left, right = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        x, y = e("".join(a[i1:i2])), e("".join(b[j1:j2]))
        if tag == "equal":
            left.append(x)
            right.append(y)
            continue
        if x:
            left.append(f"<mark class=del>{x}</mark>")
        if y:
            right.append(f"<mark class=ins>{y}</mark>")
    return "".join(left), "".join(right)


def _change(change: Change, number: int, old_lines: Sequence[str], new_lines: Sequence[str]) -> str:
    old_rows: list[tuple[int, str]] = []
    new_rows: list[tuple[int, str]] = []
    marked_old: list[str] = []
    marked_new: list[str] = []
    if change.old is not None:
        first, last = _block(change.old) if change.op is Op.REMOVED else (change.old.line, change.old.line)
        old_rows = _rows(old_lines, first, last)
        marked_old = [e(text) for _, text in old_rows]
    if change.new is not None:
        first, last = _block(change.new) if change.op is Op.ADDED else (change.new.line, change.new.line)
        new_rows = _rows(new_lines, first, last)
        marked_new = [e(text) for _, text in new_rows]
    if change.op is Op.CHANGED and old_rows and new_rows:
        marked_old[0], marked_new[0] = _words(old_rows[0][1], new_rows[0][1])
    note = ""
    if change.op is Op.MOVED:
        note = f" · position {change.old_position} → {change.new_position} among the rules"
    elif change.fields:
        note = " · " + ", ".join(f"{e(f.name)}" for f in change.fields)
    where = " · ".join(w for w in (f"old line {change.old_line}" if change.old_line else "",
                                   f"new line {change.new_line}" if change.new_line else "") if w)
    label = e(change.statement or change.section)
    context_side, lines, around = ("new", new_lines, new_rows) if new_rows else ("old", old_lines, old_rows)
    before = after = ""
    if around:
        start, end = around[0][0], around[-1][0]
        before = _context(lines, start - CONTEXT, start - 1, context_side, "before")
        after = _context(lines, end + 1, end + CONTEXT, context_side, "after")
    split = ['<table class="sbs"><colgroup><col class="lnc"><col><col class="lnc"><col></colgroup>']
    for k in range(max(len(old_rows), len(new_rows))):
        left = (f'<td class="ln">{old_rows[k][0]}</td><td class="code del">{marked_old[k]}</td>'
                if k < len(old_rows) else '<td class="ln"></td><td class="code none"></td>')
        right = (f'<td class="ln">{new_rows[k][0]}</td><td class="code ins">{marked_new[k]}</td>'
                 if k < len(new_rows) else '<td class="ln"></td><td class="code none"></td>')
        split.append(f"<tr>{left}{right}</tr>")
    split.append("</table>")
    unified = ['<table class="uni"><colgroup><col class="lnc"><col class="lnc"><col></colgroup>']
    unified += [f'<tr><td class="ln">{n}</td><td class="ln"></td><td class="code del">−{m}</td></tr>'
                for (n, _), m in zip(old_rows, marked_old)]
    unified += [f'<tr><td class="ln"></td><td class="ln">{n}</td><td class="code ins">+{m}</td></tr>'
                for (n, _), m in zip(new_rows, marked_new)]
    unified.append("</table>")
    return (f'<article class="chg op-{change.op.value}" id="c{number}" tabindex="-1" data-n="{number}">'
            f'<div class="chg-head"><span class="op">{_SIGN[change.op]} {change.op.value}</span> '
            f'<code>{label}</code><span class="muted">{note} · {where}</span></div>'
            f'{before}<div class="view-split">{"".join(split)}</div><div class="view-unified">{"".join(unified)}</div>'
            f'{after}</article>')


def _context(lines: Sequence[str], first: int, last: int, side: str, where: str) -> str:
    rows = _rows(lines, first, last)
    if not rows:
        return ""
    text = "".join(f'<tr><td class="ln">{n}</td><td class="code">{e(line)}</td></tr>' for n, line in rows)
    return (f'<details class="ctx"><summary>{len(rows)} unchanged line{"s" if len(rows) != 1 else ""} {where} '
            f'({side})</summary><table class="plain">{text}</table></details>')


# -- merge


def merge(draft: dict[str, Any], bqn_ids: Sequence[int | None], csrf: str,
          previews: Iterable[tuple[str, str, str]] = ()) -> str:
    names = draft["inputs"]
    resolved, total = draft["resolved"], draft["total"]
    rows = []
    for name, output, bqn_id in zip(names, draft["outputs"], bqn_ids):
        primary = name == draft["primary"]
        picker = ("" if draft["confirmed"] or primary else
                  f'<button type="button" class="small" data-primary="{e(name)}">make primary</button>')
        badge = ' <span class="badge primary">primary</span>' if primary else ""
        rows.append(f'<tr><td><code>{e(name)}</code>{badge}'
                    f'</td><td>{"" if bqn_id is None else bqn_id}</td><td><code>{e(output["file"])}</code></td>'
                    f'<td>{picker}</td></tr>')
    base = f'<p>Base (three-way): <code>{e(draft["base"])}</code></p>' if draft["base"] else ""
    inputs = (f'<section class="card"><h2>Servers</h2><table class="inputs"><thead><tr><th>backup</th><th>bqn-id</th>'
              f'<th>output</th><th></th></tr></thead><tbody>{"".join(rows)}</tbody></table>{base}</section>')
    percent = 100 if total == 0 else round(100 * resolved / total)
    state = ('<span class="badge ok">confirmed</span>' if draft["confirmed"]
             else '<span class="badge draft">draft</span>')
    actions = "" if draft["confirmed"] else (
        '<button type="button" id="next-unresolved">Next unresolved <kbd>n</kbd></button>'
        '<button type="button" id="take-rest">Take the primary’s for the rest</button>'
        '<button type="button" id="confirm" class="primary">Confirm merge</button>')
    progress = (f'<section class="card progress-card"><div class="progress-line"><h2>Conflicts {state}</h2>'
                f'<span id="progress">{resolved} of {total} resolved</span></div>'
                f'<div class="bar"><div style="width:{percent}%"></div></div>'
                f'<div class="actions">{actions}</div>'
                + ("" if draft["confirmed"] else
                   '<p class="keys"><kbd>j</kbd>/<kbd>k</kbd> next / previous conflict · <kbd>1</kbd>…<kbd>9</kbd> '
                   'take that option · <kbd>n</kbd> next unresolved</p>')
                + (f'<p class="muted why" id="both-why">Until chosen, a conflict takes the primary’s value '
                   f'(marked <span class="badge auto">automatic</span>). “Both” is never offered: {e(BOTH_WHY)}.</p>'
                   if total else "")
                + '</section>')
    items = [_conflict(c, draft) for c in draft["conflicts"]]
    conflicts = (f'<ol class="conflicts" id="conflicts">{"".join(items)}</ol>' if items
                 else '<p class="card">No conflicts: every server agrees on every cluster-wide value.</p>')
    done = ""
    if draft["confirmed"]:
        base_url = f'/api/v1/merges/{e(draft["id"])}'
        links = "".join(f'<li><a href="{base_url}/outputs/{e(quote(o["file"]))}" download="{e(o["file"])}" '
                        f'class="download">{e(o["file"])}</a></li>' for o in draft["outputs"])
        links += (f'<li><a href="{base_url}/report" download="merge-report.json" class="download">merge-report.json</a></li>'
                  f'<li><a href="{base_url}/resolutions" download="resolutions.json" class="download">resolutions.json</a></li>'
                  f'<li><a href="{base_url}/archive" download="merge-{e(draft["id"])}.zip" class="download" id="zip">'
                  f'all as a zip</a></li>')
        shown = "".join(f'<details class="preview"><summary>{e(output)} against {e(name)}</summary>{body}</details>'
                        for name, output, body in previews)
        done = (f'<section class="card"><h2>Download</h2><ul class="downloads">{links}</ul>'
                f'<p class="muted">Load each file on its server: Administration → Backup → Load Configuration. '
                f'<code>confmerge merge --resolve resolutions.json</code> writes the same files from the same backups.</p>'
                f'</section><section class="card"><h2>Preview</h2>{shown}</section>')
    kept = ""
    if draft["unclassified"]:
        entries = "".join(f'<li><code>{e(u["file"])}:{u["line"]}</code> <code>{e(u["section"])}'
                          f'{" / " + e(u["statement"]) if u["statement"] else ""}</code></li>' for u in draft["unclassified"])
        kept = (f'<section class="card" id="unclassified"><h2>Not merged: {len(draft["unclassified"])} unclassified '
                f'entr{"y" if len(draft["unclassified"]) == 1 else "ies"}</h2><p class="muted">No rule says whether '
                f'these are cluster-wide or server-specific, so each server keeps its own, as it is. Classify them with '
                f'a rules file (<code>confmerge serve --rules FILE</code>) to merge them.</p><ul>{entries}</ul></section>')
    body = f'<div data-merge="{e(draft["id"])}" id="merge">{inputs}{progress}{done}{conflicts}{kept}</div>'
    return page("Merge", body, csrf)


def _conflict(c: dict[str, Any], draft: dict[str, Any]) -> str:
    where = f'{c["section"]} / {c["statement"]}' if c["statement"] else c["section"]
    options = []
    choices = [(name, value) for name, value in c["values"].items()]
    if draft["base"]:
        choices.append(("base", c["base"]))
    taken = c["take"] or draft["primary"]
    for k, (name, value) in enumerate(choices, 1):
        primary = " (primary)" if name == draft["primary"] else ""
        shown = value if value is not None else "(its rule order; lacks this rule)" if c["statement"] == "order" \
            else "(absent: remove it)" if draft["base"] else "(absent)"
        on = " on" if name == taken else ""
        disabled = " disabled" if draft["confirmed"] else ""
        options.append(f'<button type="button" class="opt{on}" data-take="{e(name)}" data-key="{k}"{disabled}>'
                       f'<kbd>{k}</kbd> <span class="who">{e(name)}{primary}</span> <code>{e(shown)}</code></button>')
    options.append(f'<button type="button" class="opt both" disabled title="both: {e(c["both"]["why"])}">both</button>')
    status = ('<span class="badge auto">automatic: primary wins</span>' if c["automatic"]
              else f'<span class="badge chosen">chosen: {e(c["take"])}</span>')
    return (f'<li class="conflict{" unresolved" if c["automatic"] else ""}" id="k{c["n"]}" data-n="{c["n"]}" tabindex="0">'
            f'<div class="conflict-head"><span class="num">{c["n"]}</span> <code>{e(where)}</code> {status}'
            f'<span class="muted result">→ <code>{e("(removed)" if c["chosen"] is None else c["chosen"])}</code></span></div>'
            f'<div class="options">{"".join(options)}</div></li>')


def line_diff(old: str, new: str, name_old: str, name_new: str) -> str:
    """A ``-v2`` against its input, as the lines that differ with three lines of context."""
    a, b = old.splitlines(), new.splitlines()
    out = []
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(CONTEXT):
        out.append(f'<tr class="hunk"><td colspan="3">@@ {e(name_old)} line {group[0][1] + 1}, '
                   f'{e(name_new)} line {group[0][3] + 1} @@</td></tr>')
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [f'<tr><td class="ln">{i + 1}</td><td class="ln">{j + 1}</td><td class="code"> {e(a[i])}</td></tr>'
                        for i, j in zip(range(i1, i2), range(j1, j2))]
                continue
            out += [f'<tr><td class="ln">{i + 1}</td><td class="ln"></td><td class="code del">−{e(a[i])}</td></tr>'
                    for i in range(i1, i2)]
            out += [f'<tr><td class="ln"></td><td class="ln">{j + 1}</td><td class="code ins">+{e(b[j])}</td></tr>'
                    for j in range(j1, j2)]
    if not out:
        return '<p class="muted">Unchanged: the output is the input, byte for byte.</p>'
    return f'<table class="uni"><colgroup><col class="lnc"><col class="lnc"><col></colgroup>{"".join(out)}</table>'
