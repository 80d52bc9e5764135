"""A software package for ``clusterd update``: a file, its manifest, and optionally a detached signature.

The format (``docs/clusterd.md``, "Updating the cluster"):

* ``NAME``: the package itself, any bytes (a tarball, an installer script);
  the cluster file's ``update-command`` is what knows how to install it.
* ``NAME.manifest``: JSON, ``{"schema": "clusterd.package/1", "name": ...,
  "version": ..., "sha256": ..., "size": ...}``: what the file must hash to
  and the version it installs.
* ``NAME.manifest.sig`` (when the cluster file names ``update-signing-key``):
  an OpenSSH signature (``ssh-keygen -Y sign -n clusterd-package``) of the
  manifest; since the manifest holds the file's sha256, it covers the file.

Signatures are checked by OpenSSH's own ``ssh-keygen -Y verify``: the key the
operator signs with is an ordinary SSH key (the format the cluster file
already uses for peers), signing needs no new tool, and the check is
OpenSSH's, not code of ours.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = "clusterd.package/1"
NAMESPACE = "clusterd-package"
"""The signature namespace: a signature made for anything else (a git commit, a file) is not a package's."""
_SHA256 = re.compile(r"[0-9a-f]{64}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,63}")
_CHUNK = 1 << 20


class PackageError(Exception):
    """The package is refused; the message says why, for the operator."""


@dataclass(frozen=True, slots=True)
class Manifest:
    name: str
    version: str
    sha256: str
    size: int

    def as_data(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "name": self.name, "version": self.version, "sha256": self.sha256, "size": self.size}

    def text(self) -> str:
        return json.dumps(self.as_data(), indent=2) + "\n"

    @classmethod
    def from_data(cls, data: Any, where: str = "the manifest") -> "Manifest":
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise PackageError(f"{where} is not a clusterd package manifest (schema {SCHEMA})")
        name, version, sha, size = (data.get(k) for k in ("name", "version", "sha256", "size"))
        if not isinstance(name, str) or not name or "/" in name:
            raise PackageError(f"{where}: name must be a file name")
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            raise PackageError(f"{where}: version must be letters, digits and . _ + ~ - (at most 64), not {version!r}")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise PackageError(f"{where}: sha256 must be 64 lowercase hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise PackageError(f"{where}: size must be a whole number of bytes")
        return cls(name, version, sha, size)


@dataclass(frozen=True, slots=True)
class Package:
    path: Path
    manifest: Manifest
    signature: str | None
    """The armored SSH signature of the manifest text, if there is one."""
    manifest_text: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def make(path: Path, version: str) -> Manifest:
    """Write ``PATH.manifest`` for the file (what a release does; ``clusterd package``)."""
    from confmerge import write_atomic

    manifest = Manifest.from_data({"schema": SCHEMA, "name": path.name, "version": version,
                                   "sha256": sha256_of(path), "size": path.stat().st_size})
    write_atomic(manifest_path(path), manifest.text())
    return manifest


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".manifest")


def signature_path(path: Path) -> Path:
    return path.with_name(path.name + ".manifest.sig")


def load(path: Path) -> Package:
    """The package at ``path`` with its manifest (and signature, if present); not checked yet."""
    path = Path(path)
    if not path.is_file():
        raise PackageError(f"no package file {path}")
    try:
        manifest_text = manifest_path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PackageError(f"no manifest {manifest_path(path)} (make one with clusterd package {path} "
                           "--version V)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PackageError(f"cannot read {manifest_path(path)}: {error}") from None
    try:
        data = json.loads(manifest_text)
    except ValueError as error:
        raise PackageError(f"{manifest_path(path)} is not JSON ({error})") from None
    manifest = Manifest.from_data(data, str(manifest_path(path)))
    try:
        signature: str | None = signature_path(path).read_text(encoding="ascii")
    except FileNotFoundError:
        signature = None
    except (OSError, UnicodeDecodeError) as error:
        raise PackageError(f"cannot read {signature_path(path)}: {error}") from None
    return Package(path, manifest, signature, manifest_text)


def check(file: Path, manifest: Manifest, manifest_text: str, signature: str | None, signing_key: str | None) -> None:
    """The file is what the manifest says; with a signing key, the manifest is signed by it. Else :class:`PackageError`."""
    if signing_key is not None:
        if not signature:
            raise PackageError("the package is not signed, and this cluster installs only packages signed with its "
                               "update-signing-key")
        verify(manifest_text, signature, signing_key)
    size = file.stat().st_size
    if size != manifest.size:
        raise PackageError(f"{file} has {size} bytes, the manifest says {manifest.size}: not the package it describes")
    actual = sha256_of(file)
    if actual != manifest.sha256:
        raise PackageError(f"{file} has sha256 {actual}, the manifest says {manifest.sha256}: "
                           "not the package it describes (changed or damaged)")


def check_package(package: Package, signing_key: str | None) -> None:
    check(package.path, package.manifest, package.manifest_text, package.signature, signing_key)


def verify(text: str, signature: str, signing_key: str) -> None:
    """``ssh-keygen -Y verify`` of ``text`` against the one allowed signer ``signing_key``."""
    program = shutil.which("ssh-keygen")
    if program is None:
        raise PackageError("cannot check the signature: OpenSSH's ssh-keygen is not installed")
    with tempfile.TemporaryDirectory(prefix="clusterd-sig-") as scratch:
        signers = Path(scratch) / "allowed_signers"
        signers.write_text(f'update-signer namespaces="{NAMESPACE}" {signing_key.strip()}\n')
        sig = Path(scratch) / "manifest.sig"
        sig.write_text(signature)
        result = subprocess.run([program, "-Y", "verify", "-f", str(signers), "-I", "update-signer",
                                 "-n", NAMESPACE, "-s", str(sig)], input=text.encode("utf-8"),
                                capture_output=True, timeout=30)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).decode("utf-8", "replace").strip().splitlines()
        raise PackageError("the package's signature is not valid for the cluster's update-signing-key"
                           + (f" ({detail[-1]})" if detail else ""))
