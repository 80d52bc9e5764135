"""Text for a person (``confmerge.present``, ``printable``): a backup cannot drive the reader's terminal.

A backup line ``hostname <ESC>[2J<ESC>[31mOK`` must reach a terminal as
``\\x1b[2J\\x1b[31mOK``: in diagnostics, the diff report, the merge report,
``check``'s verdicts, clusterd's messages and log.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from confmerge import PrintableFormatter, printable

from .conftest import FIXTURES, run_confmerge

ESC = "\x1b[2J\x1b[31mOK"
SHOWN = "\\x1b[2J\\x1b[31mOK"
OUR_COLOURS = re.compile(r"\x1b\[[0-9;]*m")


def _no_raw_controls(text: str) -> bool:
    return not any(ord(c) < 0x20 and c not in "\n\t" or 0x7f <= ord(c) <= 0x9f for c in text)


@pytest.mark.parametrize(("text", "shown"), [
    ("a\x1b[2Jb", "a\\x1b[2Jb"), ("\x00\x07\x08\x0b\x0c\r\x7f", "\\x00\\x07\\x08\\x0b\\x0c\\x0d\\x7f"),
    ("\x85\x9b", "\\x85\\x9b"), ("\u202eevil\u2066", "\\u202eevil\\u2066"),
    ("bqn\u200b0\u200d\u2060\ufeff", "bqn\\u200b0\\u200d\\u2060\\ufeff"), ("a\u2028b\u2029", "a\\u2028b\\u2029"),
    ("é ü\u00a0€ 😀 中", "é ü\u00a0€ 😀 中"), ("two\nlines\tand a tab", "two\nlines\tand a tab"),
])
def test_printable_escapes_control_characters_as_git_and_ls_do(text: str, shown: str):
    assert printable(text) == shown


def test_one_line_escapes_newline_and_tab_too():
    assert printable("a\nforged line\tx", one_line=True) == "a\\x0aforged line\\x09x"


def test_a_diagnostic_quoting_a_backup_is_escaped(tmp_path: Path):
    path = tmp_path / "evil.conf"
    path.write_text(f"hostname {ESC}\n", encoding="utf-8")
    result = run_confmerge("check", path)
    assert result.returncode == 2
    assert SHOWN in result.stderr and _no_raw_controls(result.stderr)


def test_a_file_name_with_control_characters_is_escaped(tmp_path: Path):
    path = tmp_path / f"name{ESC}.conf"
    path.write_bytes((FIXTURES / "bqn0-v1.conf").read_bytes())
    result = run_confmerge("check", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{tmp_path}/name{SHOWN}.conf: ok\n"


@pytest.mark.parametrize("colour", ["never", "always"])
def test_the_diff_report_escapes_what_it_quotes(tmp_path: Path, colour: str):
    old, new = tmp_path / "old.conf", tmp_path / "new.conf"
    old.write_text("hostname bqn0\n", encoding="utf-8")
    new.write_text(f'hostname bqn0\nunlisted-section "{ESC}"\n  member "\x85\x9b"\n', encoding="utf-8")
    result = run_confmerge("diff", "--color", colour, old, new)
    assert result.returncode == 1, result.stderr
    assert SHOWN in result.stdout and "\\x85\\x9b" in result.stdout
    assert _no_raw_controls(OUR_COLOURS.sub("", result.stdout))
    data = json.loads(run_confmerge("diff", "--format", "json", old, new).stdout)
    assert ESC in data["changes"][0]["new"], "JSON keeps the data exactly"


def _conflicting(tmp_path: Path) -> tuple[Path, Path]:
    """Two of the guide's backups whose REST API user has a different password hash, one with escapes."""
    bqn0, bqn1 = (FIXTURES / "bqn0-v1.conf").read_text(), (FIXTURES / "bqn1-v1.conf").read_text()
    rest_api = bqn1[bqn1.index("rest-api\n"):bqn1.index("\ninterface ")]
    first, second = tmp_path / "bqn0-v1.conf", tmp_path / "bqn1-v1.conf"
    first.write_text(bqn0 + "\n" + rest_api, encoding="utf-8")
    second.write_text(bqn1.replace('password-hash "$6$', f'password-hash "{ESC}$6$', 1), encoding="utf-8")
    return first, second


@pytest.mark.parametrize("mode", [["--dry-run"], ["--strict"], []])
def test_the_merge_report_escapes_what_it_quotes(tmp_path: Path, mode: list[str]):
    first, second = _conflicting(tmp_path)
    result = run_confmerge("merge", *mode, first, second, "-o", tmp_path / "out")
    assert result.returncode == (1 if mode == ["--strict"] else 0), result.stderr
    shown = result.stdout + result.stderr
    assert "1 conflict(s)" in shown and SHOWN in shown and _no_raw_controls(shown)
    if not mode:
        report = json.loads((tmp_path / "out" / "merge-report.json").read_text())
        assert any(ESC in value for value in report["conflicts"][0]["values"].values()), "the report keeps the data"


def test_a_log_record_quoting_a_peer_stays_one_escaped_line():
    formatter = PrintableFormatter("%(levelname)s: %(message)s")
    record = logging.LogRecord("clusterd", logging.WARNING, __file__, 1, "refused user %s", (f"x{ESC}\nFAKE",), None)
    assert formatter.format(record) == f"WARNING: refused user x{SHOWN}\\x0aFAKE"


def test_clusterd_escapes_its_messages(tmp_path: Path):
    missing = tmp_path / f"cluster{ESC}.yaml"
    result = subprocess.run([sys.executable, "-m", "clusterd", "-c", str(missing), "status"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"cluster{SHOWN}.yaml" in result.stderr and _no_raw_controls(result.stderr)
