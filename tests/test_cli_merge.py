"""``confmerge merge`` as an operator runs it: files in, files and a report out, exit status."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from confmerge.cli.merge import next_generation

from .conftest import FIXTURES, run_confmerge

GUIDE = [FIXTURES / "bqn0-v1.conf", FIXTURES / "bqn1-v1.conf"]
CASES = FIXTURES / "merge"


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_the_guides_merge_writes_the_golden_outputs_and_a_report(tmp_path: Path):
    result = run_confmerge("merge", *GUIDE, "-o", tmp_path)
    assert result.returncode == 0, result.stderr
    assert files_in(tmp_path) == ["bqn0-v2.conf", "bqn1-v2.conf", "merge-report.json"]
    for name in ("bqn0-v2.conf", "bqn1-v2.conf"):
        assert (tmp_path / name).read_bytes() == (FIXTURES / "expected" / name).read_bytes()
    report = json.loads((tmp_path / "merge-report.json").read_text())
    assert report["primary"] == str(GUIDE[0])
    assert report["outputs"] == {str(GUIDE[0]): str(tmp_path / "bqn0-v2.conf"), str(GUIDE[1]): str(tmp_path / "bqn1-v2.conf")}
    assert report["conflicts"] == [] and report["unclassified"] == []
    assert [e["line"] for e in report["added"][str(tmp_path / "bqn1-v2.conf")]] == [
        "host dl.google.com", "policy rate sw-updates-peak", "rule sw-updates-at-peak"]
    assert f"primary: {GUIDE[0]} (bqn-id 0)" in result.stdout
    assert f"{tmp_path / 'bqn0-v2.conf'} <- {GUIDE[0]}: 3 added" in result.stdout


@pytest.mark.parametrize("case, arguments", [
    ("three-servers", ["bqn0-v1.conf", "bqn1-v1.conf", "bqn2-v1.conf"]),
    ("three-way", ["--base", "base-bqn0-v1.conf", "bqn0-v2.conf", "bqn1-v2.conf", "bqn2-v2.conf"]),
])
def test_three_server_cases_give_their_expected_outputs_and_report(tmp_path: Path, case: str, arguments: list[str]):
    directory = CASES / case
    result = run_confmerge("merge", *arguments, "-o", tmp_path, cwd=directory)
    assert result.returncode == 0, result.stderr
    expected = directory / "expected"
    assert files_in(tmp_path) == files_in(expected)
    for path in expected.glob("*.conf"):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name
    report = (tmp_path / "merge-report.json").read_text().replace(f"{tmp_path}/", "expected/")
    assert json.loads(report) == json.loads((expected / "merge-report.json").read_text())


def test_three_servers_report_lists_conflicts_and_unclassified_content():
    report = json.loads((CASES / "three-servers" / "expected" / "merge-report.json").read_text())
    assert {(c["section"], c["statement"]) for c in report["conflicts"]} == {
        ("timezone", None), ("policy rate plan-100M", "downlink"), ("policy rate plan-100M", "congestion-management"),
        ("rule business", "order")}
    downlink = next(c for c in report["conflicts"] if c["statement"] == "downlink")
    assert downlink["values"] == {"bqn0-v1.conf": "downlink 100M", "bqn1-v1.conf": "downlink 90M",
                                  "bqn2-v1.conf": "downlink 100000k"}
    assert downlink["chosen"] == "downlink 100M"
    assert [(u["file"], u["section"], u["statement"]) for u in report["unclassified"]] == [
        ("bqn0-v1.conf", "snmp", None), ("bqn2-v1.conf", "ntp", "source-interface en0o0"),
        ("bqn2-v1.conf", "license key ABC-123-XYZ", None)]


def test_merging_the_outputs_again_changes_nothing(tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    inputs = sorted((CASES / "three-servers").glob("*.conf"))
    assert run_confmerge("merge", *inputs, "-o", first).returncode == 0
    outputs = sorted(first.glob("*.conf"))
    result = run_confmerge("merge", *outputs, "-o", second)
    assert result.returncode == 0, result.stderr
    assert [p.read_bytes() for p in sorted(second.glob("*.conf"))] == [p.read_bytes() for p in outputs]
    assert [p.name for p in sorted(second.glob("*.conf"))] == ["bqn0-v3.conf", "bqn1-v3.conf", "bqn2-v3.conf"]
    report = json.loads((second / "merge-report.json").read_text())
    assert report["conflicts"] == [] and all(edits == [] for edits in report["added"].values())


@pytest.mark.parametrize("name, expected", [
    ("bqn0-v1.conf", "bqn0-v2.conf"), ("edge.conf", "edge-v2.conf"), ("bqn3-v9.conf", "bqn3-v10.conf"),
    ("edge-v2-old.conf", "edge-v2-old-v2.conf"), ("backup", "backup-v2"),
])
def test_outputs_are_named_by_bumping_the_generation(name: str, expected: str):
    assert next_generation(Path(name)) == expected


def test_output_names_in_the_output_directory(tmp_path: Path):
    shutil.copy(GUIDE[0], tmp_path / "edge.conf")
    shutil.copy(GUIDE[1], tmp_path / "core-v7.conf")
    result = run_confmerge("merge", "edge.conf", "core-v7.conf", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert files_in(tmp_path) == ["core-v7.conf", "core-v8.conf", "edge-v2.conf", "edge.conf", "merge-report.json"]


def test_two_outputs_with_one_name_is_an_error_and_writes_nothing(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(GUIDE[0], tmp_path / "a" / "bqn-v1.conf")
    shutil.copy(GUIDE[1], tmp_path / "b" / "bqn-v1.conf")
    out = tmp_path / "out"
    result = run_confmerge("merge", "a/bqn-v1.conf", "b/bqn-v1.conf", "-o", out, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"b/bqn-v1.conf: error: its output {out}/bqn-v2.conf would also be the output of a/bqn-v1.conf")
    assert not out.exists()


def test_an_output_that_would_overwrite_an_input_is_an_error(tmp_path: Path):
    shutil.copy(GUIDE[0], tmp_path / "bqn0-v1.conf")
    shutil.copy(GUIDE[1], tmp_path / "bqn0-v2.conf")
    before = files_in(tmp_path)
    result = run_confmerge("merge", "bqn0-v1.conf", "bqn0-v2.conf", cwd=tmp_path)
    assert result.returncode == 2
    assert "would overwrite the input bqn0-v2.conf" in result.stderr and "Traceback" not in result.stderr
    assert files_in(tmp_path) == before
    assert (tmp_path / "bqn0-v2.conf").read_bytes() == GUIDE[1].read_bytes()


def test_strict_with_conflicts_exits_1_and_writes_nothing(tmp_path: Path):
    out = tmp_path / "out"
    result = run_confmerge("merge", "--strict", *sorted((CASES / "three-servers").glob("*.conf")), "-o", out)
    assert result.returncode == 1
    assert "4 conflict(s)" in result.stderr and "nothing written" in result.stderr
    assert "policy rate plan-100M / downlink: bqn0-v1.conf: downlink 100M; bqn1-v1.conf: downlink 90M" in result.stderr
    assert not out.exists()


def test_strict_without_conflicts_merges(tmp_path: Path):
    result = run_confmerge("merge", "--strict", *GUIDE, "-o", tmp_path)
    assert result.returncode == 0 and len(files_in(tmp_path)) == 3


def test_dry_run_prints_what_each_output_would_gain_or_lose_and_writes_nothing(tmp_path: Path):
    out = tmp_path / "out"
    arguments = ["--base", "base-bqn0-v1.conf", "bqn0-v2.conf", "bqn1-v2.conf", "bqn2-v2.conf"]
    result = run_confmerge("merge", "--dry-run", *arguments, "-o", out, cwd=CASES / "three-way")
    assert result.returncode == 0, result.stderr
    assert not out.exists()
    lines = result.stdout.splitlines()
    start = lines.index(f"{out}/bqn1-v3.conf <- bqn1-v2.conf: 4 added, 2 removed, 1 changed")
    assert lines[start + 1:start + 8] == [
        "  - ntp / server 162.159.200.1  (three-way)",
        "  + dns / server 9.9.9.9  (union)",
        "  + profile time weekend  (referenced by rule weekend-boost)",
        "  - profile sw-update sw-updates / host swcdn.apple.com  (three-way)",
        "  ~ policy rate plan-30M / downlink 30M -> downlink 40M  (conflict)",
        "  + policy rate legacy  (conflict)",
        "  + rule weekend-boost  (union)",
    ]
    assert "  > rule sw-updates-at-peak: after rule business  (three-way)" in lines
    assert lines[-1] == "dry run: nothing written"


def test_bad_input_reports_every_error_and_writes_nothing(tmp_path: Path):
    bad = tmp_path / "bad.conf"
    bad.write_text("hostname x\nbqn-id 256\nntp\n\tserver 1.1.1.1\n")
    dangling = tmp_path / "dangling.conf"
    dangling.write_text("rule r\n  policy missing\n")
    result = run_confmerge("merge", GUIDE[0], bad, dangling, "-o", tmp_path / "out")
    assert result.returncode == 2
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"{bad}:2:8: error: ")
    assert errors[1].startswith(f"{bad}:4:1: error: ")
    assert errors[2] == f"{dangling}:2:10: error: rule r: policy 'missing' names a missing 'policy rate' section"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_missing_input_or_a_lone_input_is_trouble(tmp_path: Path):
    result = run_confmerge("merge", GUIDE[0], tmp_path / "nope.conf", "-o", tmp_path)
    assert result.returncode == 2 and f"{tmp_path / 'nope.conf'}: error: no such file" in result.stderr
    result = run_confmerge("merge", GUIDE[0], "-o", tmp_path)
    assert result.returncode == 2 and "two backups or more" in result.stderr
    assert files_in(tmp_path) == []


def test_a_tie_for_primary_asks_for_primary_and_primary_decides(tmp_path: Path):
    twin = tmp_path / "twin.conf"
    twin.write_text(GUIDE[1].read_text().replace("bqn-id 1", "bqn-id 0"))
    result = run_confmerge("merge", GUIDE[0], twin, "-o", tmp_path / "out")
    assert result.returncode == 2 and "--primary" in result.stderr
    assert not (tmp_path / "out").exists()
    result = run_confmerge("merge", GUIDE[0], twin, "--primary", twin, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "out" / "merge-report.json").read_text())["primary"] == str(twin)
    result = run_confmerge("merge", GUIDE[0], twin, "--primary", GUIDE[1], "-o", tmp_path / "other")
    assert result.returncode == 2 and "--primary must name one of the inputs" in result.stderr


def test_primary_values_win_conflicts(tmp_path: Path):
    inputs = sorted((CASES / "three-servers").glob("*.conf"))
    result = run_confmerge("merge", *inputs, "--primary", inputs[1], "-o", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "  downlink 90M\n" in (tmp_path / "bqn0-v2.conf").read_text()


def test_an_unwritable_output_directory_writes_nothing(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_confmerge("merge", *GUIDE, "-o", blocker)
    assert (result.returncode, result.stderr) == (
        2, f"{blocker}: error: not a directory (-o names the directory for the outputs); nothing written\n")
    assert files_in(tmp_path) == ["file"]
    result = run_confmerge("merge", *GUIDE, "-o", blocker / "out")
    assert result.stderr == f"{blocker}: error: not a directory, so {blocker / 'out'} cannot be made; nothing written\n"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_a_directory_that_takes_no_files_is_named_not_a_temporary_file():
    result = run_confmerge("merge", *GUIDE, "-o", "/proc")
    assert result.returncode == 2
    assert result.stderr.startswith("/proc: error: cannot write in this directory: ") and ".tmp" not in result.stderr


def test_a_rules_file_moves_sections_between_classes(tmp_path: Path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("classes:\n  rest-api: server\n")
    result = run_confmerge("merge", *GUIDE, "--rules", rules, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "rest-api" not in (tmp_path / "out" / "bqn0-v2.conf").read_text()


def test_an_output_that_cannot_be_put_in_place_writes_nothing(tmp_path: Path):
    """Issue 12, item 6: out/bqn1-v2.conf is a directory; no output, no report, no temporary file is left."""
    out = tmp_path / "out"
    (out / "bqn1-v2.conf").mkdir(parents=True)
    (out / "bqn0-v2.conf").write_text("an older output\n")
    result = run_confmerge("merge", *GUIDE, "-o", out)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"{out / 'bqn1-v2.conf'}: error: cannot write: is a directory; nothing written\n"
    assert files_in(out) == ["bqn0-v2.conf", "bqn1-v2.conf"]
    assert (out / "bqn0-v2.conf").read_text() == "an older output\n" and list((out / "bqn1-v2.conf").iterdir()) == []


def test_permuting_the_secondaries_gives_the_same_files_and_the_same_report(tmp_path: Path):
    """Issue 12, item 4: x.conf and y.conf share a bqn-id and disagree where the primary has nothing to say."""
    head = "hostname bqn{0}\nbqn-id {0}\n"
    (tmp_path / "p.conf").write_text(head.format(0) + "ntp\n  server 1.1.1.1\nsnmp\n  community p\n")
    (tmp_path / "x.conf").write_text(head.format(1) + "policy rate q\n  downlink 20M\nrule x\n  policy q\nsnmp\n  community x\n")
    (tmp_path / "y.conf").write_text(head.format(1) + "policy rate q\n  downlink 10M\nrule y\n  policy q\n")
    reports = []
    for out, order in (("one", ["x.conf", "y.conf"]), ("two", ["y.conf", "x.conf"])):
        result = run_confmerge("merge", "p.conf", *order, "-o", out, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        report = json.loads((tmp_path / out / "merge-report.json").read_text())
        report["outputs"] = {name: Path(path).name for name, path in report["outputs"].items()}
        for action in ("added", "removed", "changed", "moved"):
            report[action] = {Path(path).name: edits for path, edits in report[action].items()}
        report["unclassified"].sort(key=json.dumps)
        reports.append(report)
    assert files_in(tmp_path / "one") == files_in(tmp_path / "two") == ["merge-report.json", "p-v2.conf", "x-v2.conf", "y-v2.conf"]
    for name in ("p-v2.conf", "x-v2.conf", "y-v2.conf"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    assert reports[0] == reports[1]
    assert "downlink 10M" in (tmp_path / "one" / "p-v2.conf").read_text()
    assert [c["chosen"] for c in reports[0]["conflicts"]] == ["downlink 10M"]
