"""The web GUI and HTTP API: compare, merge and check backups in a browser, on the one engine.

:func:`create_app` is the whole server as an aiohttp application (no loop, no
socket), so ``confmerge serve`` runs it standalone and ``clusterd`` can run it
inside its own loop. Modules: ``app`` (routes, pages and API), ``auth`` (token,
session cookie, CSRF), ``drafts`` (merge drafts and their expiry), ``uploads``
(bounded uploads, parsed and checked), ``views`` (HTML), ``openapi`` (the API's
document), ``tls`` (the self-signed certificate). ``__all__`` is what ``clusterd`` uses to add its pages.
"""

from .app import LIMITS, create_app, download, json_body, runner
from .auth import ADMIN, READ_ONLY, ROLES, SESSIONS, Identity, Sessions, changes, same, token_from_file
from .errors import Problem
from .tls import fingerprint, self_signed, server_context
from .uploads import Limits, files, form
from .uploads import load as load_uploads
from .views import compare as compare_page
from .views import e as escape
from .views import page

__all__ = ["create_app", "runner", "token_from_file", "Limits", "LIMITS", "SESSIONS", "Sessions", "Problem", "json_body",
           "download", "files", "form", "load_uploads", "fingerprint", "self_signed", "server_context",
           "compare_page", "escape", "page", "ADMIN", "READ_ONLY", "ROLES", "Identity", "changes", "same"]
