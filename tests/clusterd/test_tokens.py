"""API tokens: shown once, kept hashed, checked by hash, refused by name rules (clusterd.tokens)."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from clusterd.tokens import TokenError, TokenStore


def test_a_token_is_found_by_its_secret_and_only_its_hash_is_kept(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "state" / "web-tokens.json")
    secret = store.create("ci", "read-only")
    kept = json.loads(store.path.read_text())["tokens"]
    assert kept == [{**kept[0], "name": "ci", "role": "read-only",
                     "sha256": hashlib.sha256(secret.encode()).hexdigest()}]
    assert secret not in store.path.read_text() and stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert len(secret) >= 43
    other = TokenStore(store.path)  # another process (the daemon) reads what the CLI wrote
    found = other.find(secret)
    assert found is not None and found.name == "ci" and found.role == "read-only"
    assert other.find(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    store.revoke("ci")
    assert other.find(secret) is None and other.tokens() == ()


@pytest.mark.parametrize("name, role, why", [
    ("", "admin", "a token name is"), ("a b", "admin", "a token name is"), ("x" * 65, "admin", "a token name is"),
    ("ok", "root", "the role is admin or read-only"), ("web-token", "admin", "the token file's token"),
])
def test_bad_names_and_roles_are_refused_and_nothing_is_written(tmp_path: Path, name: str, role: str, why: str) -> None:
    store = TokenStore(tmp_path / "web-tokens.json")
    with pytest.raises(TokenError, match=why):
        store.create(name, role)
    assert not store.path.exists()


def test_a_broken_token_file_is_an_error_not_an_open_door(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "web-tokens.json")
    store.path.write_text("{not json")
    with pytest.raises(TokenError, match="not a token file"):
        store.find("cmt_anything")
