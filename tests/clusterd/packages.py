"""Software packages made by the tests: a shell script whose install writes a version file and restarts its daemon."""

from __future__ import annotations

import subprocess
from pathlib import Path

from clusterd.package import NAMESPACE, make

UPDATE_SETTINGS = """\
update-command: 'sh "$CLUSTERD_PACKAGE"'
version-command: 'cat {dir}/version'
update-timeout: 90
"""
"""What the tests append to every cluster file (``{dir}``: the server's directory, where its version file is)."""


def make_package(directory: Path, version: str, fail_on: int | None = None, pause: float = 0.2,
                 like_systemd: bool = False) -> Path:
    """``directory/bqn-VERSION.sh`` and its manifest: installing it logs to ``installs.log`` beside the servers'
    directories, writes VERSION to the server's version file and stops the daemon (the supervisor starts it again);
    on server ``fail_on`` it fails as a full disk would, before changing anything. ``like_systemd``: stopping the
    daemon also kills the command's whole process group before its exit status is written, as ``systemctl restart``
    ends every process of the unit."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"bqn-{version}.sh"
    path.write_text(f"""#!/bin/sh
# a clusterd test package: BQN version {version}
set -e
here=$(dirname "$CLUSTERD_CONFIG")
echo "server $CLUSTERD_SERVER: installing {version} from $CLUSTERD_PACKAGE"
echo "$CLUSTERD_SERVER {version} start $(date +%s.%N)" >> "$here/../installs.log"
sleep {pause}
if [ "$CLUSTERD_SERVER" = "{fail_on}" ]; then
  echo "cp: cannot create /opt/bqn/lib/bqn.so: No space left on device" >&2
  exit 3
fi
printf '%s\\n' "{version}" > "$here/version.part" && mv "$here/version.part" "$here/version"
echo "$CLUSTERD_SERVER {version} end $(date +%s.%N)" >> "$here/../installs.log"
kill -TERM "$CLUSTERD_PID"
{'kill -KILL 0' if like_systemd else ''}
""")
    make(path, version)
    return path


def signing_key(directory: Path) -> tuple[Path, str]:
    """A new Ed25519 signing key: its private key file and its public key line."""
    key = directory / "release_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "release", "-f", str(key)], check=True,
                   timeout=30)
    return key, key.with_name("release_key.pub").read_text().strip()


def sign(package: Path, key: Path) -> None:
    """``ssh-keygen -Y sign`` of the package's manifest, as a release manager would."""
    subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-f", str(key), "-n", NAMESPACE,
                    str(package.with_name(package.name + ".manifest"))], check=True, timeout=30, capture_output=True)


def installs(root: Path) -> list[tuple[int, str, str]]:
    """Every install step logged by the packages under ``root``: (server, version, start or end), in order."""
    log = root / "installs.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [(int(a), b, c) for a, b, c, _ in (line.split() for line in lines)]
