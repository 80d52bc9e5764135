"""Who may use a server's web GUI and API: the bootstrap token, API tokens, and members of the web groups (PAM).

The token in ``web-token`` (``web.token-file``) is the admin's way in from the
first start, before any other exists; ``clusterd token create`` makes the
others (:mod:`clusterd.tokens`). A member of ``web.group`` logs in with their
system password as an admin, of ``web.read-only-group`` read-only. PAM runs
in a thread: a wrong password makes it wait seconds (pam_faildelay), and the
daemon's event loop must not.
"""

from __future__ import annotations

import asyncio
import grp
import pwd
from dataclasses import dataclass

from confmerge.web import ADMIN, READ_ONLY, Identity, same

from .tokens import BOOTSTRAP, TokenStore

SERVICE = "login"
"""The PAM service whose stack checks a password: the console login's (``/etc/pam.d/login``)."""


def member(user: str, group: str) -> bool:
    """``user`` is in ``group``: listed in it, or it is their primary group."""
    try:
        found = grp.getgrnam(group)
        return user in found.gr_mem or pwd.getpwnam(user).pw_gid == found.gr_gid
    except KeyError:
        return False


def pam_password(user: str, password: str) -> bool:
    import pam

    return bool(pam.pam().authenticate(user, password, service=SERVICE))


@dataclass
class ClusterAuthority:
    token: str
    store: TokenStore
    group: str | None = None
    read_only_group: str | None = None

    @property
    def passwords(self) -> bool:
        return self.group is not None or self.read_only_group is not None

    def identify(self, token: str) -> Identity | None:
        if same(token, self.token):
            return Identity(f"token {BOOTSTRAP}", ADMIN)
        found = self.store.find(token)
        return Identity(f"token {found.name}", found.role, found.name) if found else None

    def current(self, identity: Identity) -> bool:
        """A session opened with an API token ends when the token is revoked."""
        return identity.token is None or self.store.has(identity.token)

    async def password(self, user: str, password: str) -> Identity | None:
        if not self.passwords or not user or not password or len(user) > 64 or "\0" in user + password:
            return None
        return await asyncio.to_thread(self._check, user, password)

    def _check(self, user: str, password: str) -> Identity | None:
        if not pam_password(user, password):
            return None
        if self.group is not None and member(user, self.group):
            return Identity(f"user {user}", ADMIN)
        if self.read_only_group is not None and member(user, self.read_only_group):
            return Identity(f"user {user}", READ_ONLY)
        return None
