"""``confmerge parse`` and ``confmerge check`` as a user runs them."""

import json

import pytest

from .conftest import FIXTURES, run_confmerge


def test_parse_prints_the_typed_tree_as_json():
    result = run_confmerge("parse", FIXTURES / "bqn0-v1.conf")
    assert result.returncode == 0, result.stderr
    tree = json.loads(result.stdout)
    rule = next(s for s in tree["sections"] if s["identity"] == "rule sw-updates-at-peak")
    assert rule["class"] == "cluster" and rule["line"] == 62
    assert rule["statements"][0] == {
        "identity": "time-profile", "kind": "time-profile", "line": 63,
        "values": {"name": "peak-time"}, "words": ["time-profile", "peak-time"],
    }
    policy = next(s for s in tree["sections"] if s["identity"] == "policy rate plan-100M")
    assert policy["statements"][0]["values"] == {"rate": 100000}


def test_parse_prints_yaml():
    result = run_confmerge("parse", "--format", "yaml", FIXTURES / "bqn1-v1.conf")
    assert result.returncode == 0
    assert "- identity: rest-api\n" in result.stdout


def test_check_valid_files():
    result = run_confmerge("check", FIXTURES / "bqn0-v1.conf", FIXTURES / "bqn1-v1.conf")
    assert result.returncode == 0
    assert result.stdout.count(": ok") == 2


def test_check_reports_every_error_and_exits_2():
    path = FIXTURES / "errors" / "every-error.conf"
    result = run_confmerge("check", path, FIXTURES / "bqn0-v1.conf")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 7
    assert lines[0] == f"{path}:1:8: error: a BQN id must be 0..255, got 256"
    assert "Traceback" not in result.stderr


def test_check_reports_references():
    result = run_confmerge("check", FIXTURES / "errors" / "dangling-reference.conf")
    assert result.returncode == 2
    assert ":2:10: error: rule r: policy 'missing'" in result.stderr


def test_warnings_go_to_stderr_and_do_not_fail():
    result = run_confmerge("check", FIXTURES / "warnings.conf")
    assert result.returncode == 0
    assert result.stderr.count(": warning: ") == 3


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: tmp / "missing.conf", "no such file"),
    (lambda tmp: tmp, "is a directory"),
])
def test_bad_paths_get_one_clear_line(tmp_path, make, message):
    path = make(tmp_path)
    result = run_confmerge("check", path)
    assert result.returncode == 2
    assert result.stderr == f"{path}: error: {message}" + (", not a backup file\n" if "directory" in message else "\n")


def test_a_binary_file_is_not_utf8_text(tmp_path):
    path = tmp_path / "backup.tar.gz"
    path.write_bytes(b"hostname a\n\x1f\x8b\x08\x00\xff")
    result = run_confmerge("check", path)
    assert result.returncode == 2
    assert result.stderr == f"{path}:2:2: error: not UTF-8 text (is this a BQN backup?)\n"


def test_help_names_the_commands():
    result = run_confmerge("--help")
    assert result.returncode == 0
    for name in ("parse", "check"):
        assert name in result.stdout
