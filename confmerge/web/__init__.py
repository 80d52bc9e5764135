"""The web GUI and HTTP API: compare, merge and check backups in a browser, on the one engine.

:func:`create_app` is the whole server as an aiohttp application (no loop, no
socket), so ``confmerge serve`` runs it standalone and ``clusterd`` can run it
inside its own loop. Modules: ``app`` (routes, pages and API), ``auth`` (token,
session cookie, CSRF), ``drafts`` (merge drafts and their expiry), ``uploads``
(bounded uploads, parsed and checked), ``views`` (HTML), ``openapi`` (the API's
document), ``tls`` (the self-signed certificate).
"""

from .app import create_app
from .auth import token_from_file
from .uploads import Limits

__all__ = ["create_app", "token_from_file", "Limits"]
