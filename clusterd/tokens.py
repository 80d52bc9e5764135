"""API tokens of the web GUI and API (``clusterd token create/revoke/list``): shown once, kept only as hashes.

A token is 32 random bytes; the state directory's ``web-tokens.json`` (mode
0600, replaced atomically) holds its name, role, creation time and SHA-256,
never the token. A random 256-bit token needs no slow hash: nobody can guess
one whose hash they read. The daemon rereads the file whenever it changes,
so a revoked token stops working at the next request, in any session it opened.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from confmerge import write_atomic
from confmerge.web import ROLES

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PREFIX = "cmt_"
BOOTSTRAP = "web-token"
"""The name the token file's token goes by (in the audit log); no API token may take it."""


class TokenError(ValueError):
    """A token command that cannot be done (a bad or taken name, no such token, an unreadable file)."""


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    role: str
    created: float
    sha256: str


def tokens_path(state_dir: Path) -> Path:
    return state_dir / "web-tokens.json"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class TokenStore:
    """The tokens in ``path``, reread when the file changes (its inode, size or time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._tokens: tuple[Token, ...] = ()

    def tokens(self) -> tuple[Token, ...]:
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            self._seen, self._tokens = None, ()
            return ()
        seen = (found.st_ino, found.st_size, found.st_mtime_ns)
        if seen != self._seen:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self._tokens = tuple(Token(t["name"], t["role"], float(t["created"]), t["sha256"])
                                     for t in data["tokens"])
            except (ValueError, KeyError, TypeError) as error:
                raise TokenError(f"{self.path}: not a token file this version reads ({error})") from None
            self._seen = seen
        return self._tokens

    def find(self, secret: str) -> Token | None:
        """The token whose hash ``secret`` has (every one compared, in constant time)."""
        if not secret.startswith(PREFIX):
            return None
        given = digest(secret)
        found = None
        for token in self.tokens():
            if hmac.compare_digest(given, token.sha256):
                found = token
        return found

    def has(self, name: str) -> bool:
        return any(t.name == name for t in self.tokens())

    def create(self, name: str, role: str) -> str:
        """A new token named ``name``: the secret, which only its hash keeps from now on."""
        if not NAME.fullmatch(name):
            raise TokenError(f"a token name is letters, digits, '.', '_' and '-' (up to 64), not {name!r}")
        if role not in ROLES:
            raise TokenError(f"the role is {' or '.join(ROLES)}, not {role!r}")
        if name == BOOTSTRAP:
            raise TokenError(f"{BOOTSTRAP} is the token file's token; choose another name")
        if self.has(name):
            raise TokenError(f"there is a token {name} already; revoke it first, or choose another name")
        secret = PREFIX + secrets.token_urlsafe(32)
        self._write((*self.tokens(), Token(name, role, time.time(), digest(secret))))
        return secret

    def revoke(self, name: str) -> Token:
        kept = tuple(t for t in self.tokens() if t.name != name)
        gone = [t for t in self.tokens() if t.name == name]
        if not gone:
            raise TokenError(f"no token {name} (clusterd token list shows them)")
        self._write(kept)
        return gone[0]

    def _write(self, tokens: tuple[Token, ...]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        text = json.dumps({"tokens": [{"name": t.name, "role": t.role, "created": t.created, "sha256": t.sha256}
                                      for t in tokens]}, indent=1) + "\n"
        write_atomic(self.path, text)
