"""The shipped systemd unit: valid for systemd, and it lets the daemon write where the docs put things."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .test_sync import V1

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "docs" / "clusterd.service"
DOCS = (ROOT / "docs" / "clusterd.md").read_text()
README = (ROOT / "README.md").read_text()


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser["Service"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (Debian package systemd; .ci/run installs it)")
def test_systemd_analyze_verify_finds_nothing(tmp_path):
    """As shipped, with ExecStart pointing at this install's clusterd (verify checks that the program exists)."""
    installed = Path(sys.executable).parent / "clusterd"
    assert installed.exists(), "pip install -e . makes the clusterd program"
    shipped = service()["ExecStart"].split()[0]
    unit = tmp_path / "clusterd.service"
    unit.write_text(UNIT.read_text().replace(f"ExecStart={shipped} ", f"ExecStart={installed} "))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stdout + done.stderr


def test_execstart_is_the_documented_install():
    program = service()["ExecStart"].split()[0]
    venv = str(Path(program).parent.parent)
    for name, text in (("docs/clusterd.md", DOCS), ("README.md", README)):
        assert re.search(rf"python3 -m venv {re.escape(venv)} && {re.escape(venv)}/bin/pip install \.", text), \
            f"{name} installs into {venv}"
    assert f"{program} run" in service()["ExecStart"]


def test_the_daemon_may_write_the_documented_backup_and_state():
    """ProtectSystem=full makes /etc read-only: the live backup's directory must be given back."""
    unit = service()
    backup = Path(re.search(r"init --id 0 .*--backup (\S+)", DOCS).group(1))
    writable = unit.get("ReadWritePaths", "").split()
    protected = {"yes": ["/usr", "/boot", "/efi"], "true": ["/usr", "/boot", "/efi"],
                 "full": ["/usr", "/boot", "/efi", "/etc"], "strict": ["/"]}.get(unit.get("ProtectSystem", "no"), [])
    state = Path("/var/lib") / unit["StateDirectory"]
    assert re.search(rf"state-dir: {re.escape(str(state))}\b", DOCS), "the documented state directory"

    def may_write(path: Path) -> bool:
        if any(path.is_relative_to(w.lstrip("-")) for w in writable) or path.is_relative_to(state):
            return True
        return not any(path.is_relative_to(p) for p in protected)

    assert may_write(backup.parent), f"{backup.parent} must be in ReadWritePaths"
    assert may_write(state / "sync" / "inbox")
    assert int(unit["LimitNOFILE"]) >= 16384


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                    reason="needs root and unshare (util-linux) for a read-only bind mount")
def test_an_apply_on_a_read_only_backup_says_it_cannot_write_it(cluster_factory):
    """What the old unit did (/etc read-only): the reason is the write, not the transferred file."""
    cluster = cluster_factory([0, 1], backups={0: V1[0], 1: V1[1]})
    etc = cluster.dir(1) / "etc"
    etc.mkdir()
    cluster.backup(1).rename(etc / "bqn.conf")
    cluster.config(1).write_text(cluster.config(1).read_text().replace("backup: bqn.conf", "backup: etc/bqn.conf"))
    cluster.start(0)
    log = open(cluster.dir(1) / "clusterd.log", "ab")
    cluster.processes[1] = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(etc),
         sys.executable, "-m", "clusterd", "-c", str(cluster.config(1)), "run"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    seen = cluster.wait("server 1's apply to fail", lambda: (s := cluster.seen(0, 1)) and s["sync"] == "sync failed"
                        and s or None, 40)
    assert f"cannot write the live backup {etc / 'bqn.conf'}: Read-only file system" in seen["error"]
    assert "cannot read the transferred file" not in cluster.log(0) + cluster.log(1)
    assert (etc / "bqn.conf").read_text() == V1[1]
