"""``cluster.yaml``: defaults, errors at their line, edits that keep comments."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterd import config as cfg
from clusterd.cli import main
from confmerge.diagnostics import ConfError

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDnh6AaYcI2KRD44V9LsejUD7NuQt1dhTToa0XXP5ruW"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return path


def test_defaults_for_everything_that_can_have_one(tmp_path):
    config = cfg.load(write(tmp_path, "id: 1\naddress: 10.0.0.2\n"))
    assert (config.id, config.address, config.port_base, config.control_port) == (1, "10.0.0.2", 63500, 63501)
    assert config.timing == cfg.Timing(0.5, 3, 3.0, 60.0) and config.timing.detection == 1.5
    assert config.state_dir == tmp_path / "state" and config.backup == tmp_path / "bqn.conf"
    assert config.identity == tmp_path / "state" / "node_key"
    assert config.peers == () and config.ssh_port == 22 and config.apply_command is None
    assert (config.update_command, config.version_command, config.update_signing_key, config.update_timeout) == (
        None, None, None, 600.0)


@pytest.mark.parametrize("text, line, column, message", [
    ("id: 256\naddress: a\n", 1, 1, "id must be between 0 and 255"),
    ("id: -1\naddress: a\n", 1, 1, "id must be between 0 and 255"),
    ("id: one\naddress: a\n", 1, 1, "id must be a whole number"),
    ("address: a\n", 1, 1, "missing setting 'id'"),
    ("id: 0\naddress: a\npeers:\n  - id: 1\n    address: b\n  - id: 1\n    address: c\n", 6, 5, "two peers have id 1"),
    ("id: 0\naddress: a\npeers:\n  - id: 0\n    address: b\n", 4, 5, "peer id 0 is this server's own id"),
    ("id: 0\naddress: a\npeers:\n  - id: 1\n    address: b\n    key: nonsense\n", 6, 5, "peer key is not an SSH public key"),
    ("id: 0\naddress: a\ntiming:\n  heartbeat: 0\n", 4, 3, "must be more than 0"),
    ("id: 0\naddress: a\nport: 22\n", 3, 1, "unknown setting 'port'"),
    ("id: 0\naddress: a\nupdate-signing-key: nonsense\n", 3, 1, "update-signing-key is not an SSH public key"),
    ("id: 0\naddress: a\nupdate-timeout: 0\n", 3, 1, "update-timeout (seconds) must be more than 0"),
    ("id: 0\naddress: [a\n", 3, 1, "not valid YAML"),
    ("id: 0\naddress: a\ntiming:\n  heartbeat: 2026-12-01\n  hold: 2026-13-45\n", 5, 9, "month must be in 1..12"),
])
def test_every_problem_is_an_error_at_its_line(tmp_path, text, line, column, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfError) as caught:
        cfg.load(path)
    first = caught.value.diagnostics[0]
    assert (first.line, first.column) == (line, column), str(first)
    assert message in first.message
    assert str(first).startswith(f"{path}:{line}:{column}: error: ")


def test_the_fast_reading_is_the_round_trip_reading(tmp_path):
    """A daemon reads its file through libyaml; what it gets is what the commented, edited document says."""
    path = write(tmp_path, (
        "# server 1\nid: 1  # this one\naddress: 10.0.0.2\nssh-port: 2222\nstate-dir: /var/lib/x\n"
        "timing: {heartbeat: 0.25, missed: 4}\nssh:\n  user: bqn\n  serve: true\n"
        f"peers:\n  - id: 0\n    address: '10.0.0.1'\n    key: {KEY}\n  - {{id: 7, address: 'fe80::1', ssh-port: 22}}\n"))
    round_trip = cfg._Reader(path.absolute(), cfg.parse_document(path.read_text(), path)).read()
    assert cfg.load(path) == round_trip
    assert [p.id for p in round_trip.peers] == [0, 7] and round_trip.timing.missed == 4


def test_a_yaml_1_1_file_reads_as_the_round_trip_loader_reads_it(tmp_path):
    """libyaml's reading would take ``010`` for ten; YAML 1.1 says eight, and so does the round-trip loader."""
    path = write(tmp_path, "%YAML 1.1\n---\nid: 010\naddress: a\n")
    assert cfg.load(path).id == 8 == cfg._Reader(path.absolute(), cfg.parse_document(path.read_text(), path)).read().id


def test_a_bad_cluster_file_is_a_clear_error_and_exit_2(tmp_path, capsys):
    path = write(tmp_path, "id: 300\naddress: a\n")
    assert main(["-c", str(path), "status"]) == 2
    err = capsys.readouterr().err
    assert err == f"{path}:1:1: error: id must be between 0 and 255 (the guide's ids), not 300\n"


def test_a_missing_cluster_file_says_so(tmp_path, capsys):
    assert main(["-c", str(tmp_path / "none.yaml"), "status"]) == 2
    assert "no cluster file" in capsys.readouterr().err


def test_edits_keep_comments_order_and_other_peers(tmp_path):
    path = write(tmp_path, "# my cluster\nid: 0  # the primary\naddress: 10.0.0.1\n"
                 "peers:\n  # the lab box\n  - id: 2\n    address: 10.0.0.3\n    ssh-port: 2222\n")
    cfg.edit(path, lambda doc: cfg.set_peer(doc, cfg.Peer(1, "10.0.0.2", 22, KEY)))
    cfg.edit(path, lambda doc: doc.__setitem__("address", "192.0.2.1"))
    text = path.read_text()
    assert text.startswith("# my cluster\nid: 0  # the primary\naddress: 192.0.2.1\n")
    assert "# the lab box" in text
    config = cfg.load(path)
    assert [(p.id, p.address, p.ssh_port) for p in config.peers] == [(1, "10.0.0.2", 22), (2, "10.0.0.3", 2222)]
    cfg.edit(path, lambda doc: cfg.set_peer(doc, cfg.Peer(2, "10.0.0.4", 22)))
    assert cfg.load(path).peer(2).address == "10.0.0.4"


def test_an_edit_that_would_make_the_file_invalid_writes_nothing(tmp_path):
    path = write(tmp_path, "id: 0\naddress: a\npeers:\n  - id: 1\n    address: b\n")
    before = path.read_text()
    with pytest.raises(ConfError):
        cfg.edit(path, lambda doc: doc.__setitem__("id", 1))
    assert path.read_text() == before


def test_init_writes_a_commented_file_and_a_private_key(tmp_path, capsys):
    path = tmp_path / "etc" / "cluster.yaml"
    assert main(["-c", str(path), "init", "--id", "1", "--address", "192.168.0.121"]) == 0
    out = capsys.readouterr().out
    assert "fingerprint SHA256:" in out
    config = cfg.load(path)
    assert (config.id, config.address) == (1, "192.168.0.121")
    assert "# This server" in path.read_text()
    assert (config.identity.stat().st_mode & 0o777) == 0o600
    assert main(["-c", str(path), "init", "--id", "1", "--address", "x"]) == 2
    assert "exists" in capsys.readouterr().err


def test_set_id_refuses_a_peers_id_and_out_of_range(tmp_path, capsys):
    path = write(tmp_path, "id: 0\naddress: a\npeers:\n  - id: 1\n    address: b\n")
    assert main(["-c", str(path), "set-id", "1"]) == 2
    assert "belongs to a peer" in capsys.readouterr().err
    assert main(["-c", str(path), "set-id", "256"]) == 2
    assert "between 0 and 255" in capsys.readouterr().err
    assert main(["-c", str(path), "set-id", "5"]) == 0
    assert cfg.load(path).id == 5


def test_init_keeps_state_beside_a_cluster_file_outside_etc():
    from clusterd.cli import _default_state_dir

    assert _default_state_dir(Path("/etc/clusterd/cluster.yaml")) == "/var/lib/clusterd"
    assert _default_state_dir(Path("/home/op/lab/cluster.yaml")) == "state"
