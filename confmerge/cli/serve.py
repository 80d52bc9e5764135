"""``confmerge serve``: the web GUI and API on one port, HTTPS and a token by default.

The certificate is made on first start (self-signed, its fingerprint printed)
unless ``--cert``/``--key`` name a real one; plain HTTP needs
``--insecure-http`` and a loopback address. The token comes from
``--token-file`` (made 0600 with a random token if missing).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import signal
import sys
from pathlib import Path

from ..diagnostics import ConfError, Diagnostic
from ..files import read_text
from . import EXIT_OK, command, load_checked, load_rules, rules_option

DEFAULT_LISTEN = "127.0.0.1:8443"


def _state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "confmerge"


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", type=Path, nargs="*", metavar="FILE",
                        help="backups to open as a merge at start (the printed URL leads to it)")
    parser.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                        help=f"address and port to listen on (default {DEFAULT_LISTEN}; port 0 picks a free one)")
    parser.add_argument("--token-file", type=Path, metavar="FILE",
                        help="the access token; made (mode 0600, random) if missing (default: STATE/token)")
    parser.add_argument("--state-dir", type=Path, metavar="DIR",
                        help="where the token and the self-signed certificate are kept "
                             "(default: $XDG_STATE_HOME/confmerge or ~/.local/state/confmerge)")
    parser.add_argument("--cert", type=Path, metavar="FILE", help="a PEM certificate (chain) to serve instead of the self-signed one")
    parser.add_argument("--key", type=Path, metavar="FILE", help="the PEM key of --cert")
    parser.add_argument("--insecure-http", action="store_true",
                        help="serve plain HTTP (only on a loopback address)")
    parser.add_argument("--max-upload-mb", type=int, default=16, metavar="N", help="largest backup accepted (default 16 MiB)")
    parser.add_argument("--max-files", type=int, default=16, metavar="N", help="most backups in one request (default 16)")
    parser.add_argument("--draft-minutes", type=int, default=60, metavar="N",
                        help="a merge draft unused this long is forgotten (default 60)")
    rules_option(parser)


def _fail(message: str, where: str = "confmerge serve") -> ConfError:
    return ConfError([Diagnostic("error", 0, 0, message, where)])


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise _fail(f"--listen {text}: give HOST:PORT (such as 127.0.0.1:8443 or [::1]:8443)")
    return host.strip("[]"), int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@command("serve", "serve the web GUI and HTTP API (HTTPS with a token; see docs/web.md)", _arguments)
def run(args: argparse.Namespace) -> int:
    from ..web import Limits, create_app, token_from_file
    from ..web import tls
    from ..web.errors import Problem

    host, port = parse_listen(args.listen)
    if args.insecure_http and not _loopback(host):
        raise _fail(f"--insecure-http serves only on a loopback address, not {host}")
    if (args.cert is None) != (args.key is None):
        raise _fail("--cert and --key go together")
    rules = load_rules(args)
    if len(args.files) == 1:
        raise _fail("give two backups or more to open as a merge")
    load_checked(args.files, rules)  # bad input said as FILE:LINE:COLUMN before anything is written or listens
    state = args.state_dir or _state_dir()
    token_file = args.token_file or state / "token"
    try:
        token = token_from_file(token_file)
    except (OSError, ValueError) as error:
        raise _fail(str(error), str(token_file)) from None
    context, cert = None, None
    if not args.insecure_http:
        cert, key = (args.cert, args.key) if args.cert else (state / "serve-cert.pem", state / "serve-key.pem")
        if args.cert is None and not (cert.exists() and key.exists()):
            tls.self_signed(cert, key, host)
        for path in (cert, key):
            read_text(path)  # a missing or unreadable file said plainly
        try:
            context = tls.server_context(cert, key)
        except (OSError, ValueError) as error:
            raise _fail(f"cannot use the certificate: {error}", str(cert)) from None
    limits = Limits(file_bytes=args.max_upload_mb * 1024 * 1024,
                    total_bytes=args.max_upload_mb * 1024 * 1024 * args.max_files + 1024 * 1024,
                    files=args.max_files)
    app = create_app(token, secure=context is not None, limits=limits, rules=rules,
                     draft_lifetime=args.draft_minutes * 60.0)
    scheme = "https" if context is not None else "http"
    start = "/"
    if args.files:
        from ..web.app import DRAFTS
        from ..web.uploads import Upload
        try:
            start = f"/merges/{app[DRAFTS].create([Upload(p.name, read_text(p)) for p in args.files], None, None).id}"
        except Problem as problem:
            raise _fail(problem.message) from None

    async def serve() -> None:
        from aiohttp import web

        from ..web import runner as make_runner
        runner = make_runner(app)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=context)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            raise _fail(f"cannot listen on {args.listen}: {error.strerror or error}") from None
        bound = runner.addresses[0][1] if runner.addresses else port
        shown = f"[{host}]" if ":" in host else host
        url = f"{scheme}://{shown}:{bound}/"
        lines = [f"confmerge serve: listening on {url}"]
        if cert is not None:
            lines.append(f"certificate: {cert} {tls.fingerprint(cert)}")
        else:
            lines.append("warning: plain HTTP (--insecure-http): the token and the backups cross the wire unencrypted")
        follow = f"&next={start}" if start != "/" else ""
        lines += [f"token file: {token_file}", f"open: {url}login?token={token}{follow}"]
        print("\n".join(lines), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(serve())
    return EXIT_OK
