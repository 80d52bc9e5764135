"""``confmerge diff`` as a user and a program run it: exit status, text, colour, JSON and YAML."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys

import pytest
from ruamel.yaml import YAML

from confmerge.cli import main

from .conftest import FIXTURES, ROOT, run_confmerge
from .test_diff import HIDDEN, with_hidden_change

GUIDE = ("fixtures/bqn0-v1.conf", "fixtures/bqn1-v1.conf")
OPS = ("fixtures/diff/ops/old.conf", "fixtures/diff/ops/new.conf")
EXPECTED = FIXTURES / "diff" / "expected"
SCHEMA = json.loads((ROOT / "docs" / "diff.schema.json").read_text())


def confmerge(*args: str, capsys) -> tuple[int, str, str]:
    """In-process, from the repository root, so file names read as in the goldens."""
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        status = main(["diff", *args])
    finally:
        os.chdir(cwd)
    out, err = capsys.readouterr()
    return status, out, err


# ---------------------------------------------------------------------------
# Exit status, through the real console script


def test_exit_0_when_equal_in_normal_form():
    result = run_confmerge("diff", FIXTURES / "diff" / "base.conf", FIXTURES / "diff" / "equal" / "order.conf")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "0 differences: 0 cluster-wide, 0 server-specific, 0 unclassified\n"


def test_exit_1_when_different():
    result = run_confmerge("diff", *GUIDE, cwd=ROOT)
    assert (result.returncode, result.stderr) == (1, "")
    assert result.stdout == (EXPECTED / "guide.txt").read_text()


def test_exit_2_reports_bad_input_as_check_does():
    bad = FIXTURES / "errors" / "every-error.conf"
    dangling = FIXTURES / "errors" / "dangling-reference.conf"
    result = run_confmerge("diff", bad, dangling)
    check = run_confmerge("check", bad, dangling)
    assert result.returncode == check.returncode == 2
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr == check.stderr
    assert result.stderr.count(": error: ") == 10


def test_exit_2_for_a_missing_file():
    result = run_confmerge("diff", FIXTURES / "bqn0-v1.conf", FIXTURES / "missing.conf")
    assert result.returncode == 2
    assert result.stderr == f"{FIXTURES / 'missing.conf'}: error: no such file\n"


def test_python_dash_m_confmerge_is_the_console_script():
    result = subprocess.run([sys.executable, "-m", "confmerge", "diff", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--scope {all,cluster,server}" in result.stdout


@pytest.mark.parametrize("variant", sorted(HIDDEN))
def test_each_equivalence_exits_0_and_a_hidden_change_exits_1_naming_it(variant, tmp_path, capsys):
    base, path = FIXTURES / "diff" / "base.conf", FIXTURES / "diff" / "equal" / f"{variant}.conf"
    assert confmerge(str(base), str(path), capsys=capsys)[:2] == (
        0, "0 differences: 0 cluster-wide, 0 server-specific, 0 unclassified\n")
    changed = tmp_path / path.name
    changed.write_bytes(with_hidden_change(variant).encode())
    code, out, _ = confmerge("--format", "json", str(base), str(changed), capsys=capsys)
    named = [(c["op"], c["class"], c["section"], c["statement"], c["old"], c["new"]) for c in json.loads(out)["changes"]]
    assert (code, named) == (1, HIDDEN[variant][-1])


# ---------------------------------------------------------------------------
# Scope


@pytest.mark.parametrize(("scope", "status", "summary"), [
    ("all", 1, "6 differences: 4 cluster-wide, 1 server-specific, 1 unclassified"),
    ("cluster", 1, "4 differences in scope cluster: 4 cluster-wide; 2 outside the scope"),
    ("server", 1, "1 difference in scope server: 1 server-specific; 5 outside the scope"),
])
def test_scope_selects_a_class(scope, status, summary, capsys):
    code, out, _ = confmerge("--scope", scope, *OPS, capsys=capsys)
    assert code == status
    assert out.splitlines()[-1] == summary


def test_a_scope_without_differences_exits_0(tmp_path, capsys):
    renamed = tmp_path / "renamed.conf"
    renamed.write_text((FIXTURES / "bqn0-v1.conf").read_text().replace("hostname bqn0", "hostname edge0"))
    assert confmerge("--scope", "cluster", str(FIXTURES / "bqn0-v1.conf"), str(renamed), capsys=capsys)[0] == 0
    assert confmerge("--scope", "server", str(FIXTURES / "bqn0-v1.conf"), str(renamed), capsys=capsys)[0] == 1


def test_rules_file_changes_the_class(tmp_path, capsys):
    rules = tmp_path / "rules.yaml"
    rules.write_text("classes:\n  snmp: server\n")
    code, out, _ = confmerge("--rules", str(rules), "--scope", "server", *OPS, capsys=capsys)
    assert code == 1 and "snmp  [server-specific]" in out


# ---------------------------------------------------------------------------
# Text


def test_text_groups_by_section_cluster_wide_first(capsys):
    code, out, _ = confmerge(*OPS, capsys=capsys)
    assert code == 1 and out == (EXPECTED / "ops.txt").read_text()
    headers = [line for line in out.splitlines() if line.endswith("]")]
    assert headers == [
        "ntp  [cluster-wide]", "policy rate plan-100M  [cluster-wide]", "rule business  [cluster-wide]",
        "interface en0o1  [server-specific]", "snmp  [unclassified]",
    ]
    assert "\x1b[" not in out


def test_every_op_has_its_sign(capsys):
    out = confmerge(*OPS, capsys=capsys)[1]
    assert "  - server 162.159.200.1 " in out
    assert "  + server 216.229.0.50 " in out
    assert "  ~ uplink 20M -> uplink 50M " in out
    assert "  > rule business moved: position 1 -> 2 among the rules  old line 18, new line 20" in out


def test_color_always_paints_and_never_does_not(capsys):
    painted = confmerge("--color", "always", *OPS, capsys=capsys)[1]
    assert "\x1b[32m  + server 216.229.0.50" in painted and "\x1b[31m  - server" in painted
    assert confmerge("--color", "never", *OPS, capsys=capsys)[1] == (EXPECTED / "ops.txt").read_text()


def run_on_terminal(*args: str, env: dict[str, str]) -> str:
    """Run ``confmerge`` with its stdout on a pseudo-terminal, as an operator would."""
    leader, follower = pty.openpty()
    environment = {key: value for key, value in os.environ.items() if key != "NO_COLOR"}
    process = subprocess.Popen([sys.executable, "-m", "confmerge", *args], stdout=follower, stderr=subprocess.DEVNULL,
                               cwd=ROOT, env={**environment, **env})
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=30)
    os.close(leader)
    return b"".join(chunks).decode()


def test_colour_on_a_terminal_unless_no_color():
    assert "\x1b[32m" in run_on_terminal("diff", *OPS, env={})
    assert "\x1b[" not in run_on_terminal("diff", *OPS, env={"NO_COLOR": "1"})


def test_no_colour_when_not_a_terminal():
    result = run_confmerge("diff", "--color", "auto", *OPS, cwd=ROOT, env={"NO_COLOR": ""})
    assert result.returncode == 1 and "\x1b[" not in result.stdout


# ---------------------------------------------------------------------------
# JSON and YAML


def validate(data: object) -> None:
    """Against ``docs/diff.schema.json``: with jsonschema when installed, else the subset the schema uses."""
    try:
        import jsonschema
    except ImportError:
        _check(data, SCHEMA)
    else:
        jsonschema.validate(data, SCHEMA, cls=jsonschema.Draft202012Validator)


_TYPES = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool, "null": type(None)}


def _check(data: object, schema: dict) -> None:
    if "$ref" in schema:
        _check(data, SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]])
        return
    if "const" in schema:
        assert data == schema["const"]
    if "enum" in schema:
        assert data in schema["enum"]
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        assert any(isinstance(data, _TYPES[t]) and not (t == "integer" and isinstance(data, bool)) for t in types), data
    if isinstance(data, dict):
        assert set(schema.get("required", ())) <= data.keys()
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            assert data.keys() <= properties.keys(), data.keys() - properties.keys()
        for key, value in data.items():
            inner = properties.get(key, schema.get("additionalProperties"))
            if isinstance(inner, dict):
                _check(value, inner)
    if isinstance(data, list) and "items" in schema:
        for item in data:
            _check(item, schema["items"])


def test_the_schema_check_without_jsonschema_rejects_what_the_schema_rejects():
    good = json.loads((EXPECTED / "ops.json").read_text())
    _check(good, SCHEMA)
    for spoil in (lambda d: d.pop("scope"), lambda d: d["changes"][0].update(op="renamed"),
                  lambda d: d["changes"][0].update(extra=1), lambda d: d["counts"].update(cluster="4"),
                  lambda d: d["changes"][2]["fields"]["rate"].pop("old")):
        bad = json.loads(json.dumps(good))
        spoil(bad)
        with pytest.raises(AssertionError):
            _check(bad, SCHEMA)


def test_json_follows_the_schema_and_the_golden(capsys):
    code, out, _ = confmerge("--format", "json", *OPS, capsys=capsys)
    data = json.loads(out)
    validate(data)
    assert code == 1 and out == (EXPECTED / "ops.json").read_text()
    assert {change["op"] for change in data["changes"]} == {"added", "removed", "changed", "moved"}
    assert {change["class"] for change in data["changes"]} == {"cluster", "server", "unclassified"}


def test_json_fields_of_each_op(capsys):
    changes = json.loads(confmerge("--format", "json", *OPS, capsys=capsys)[1])["changes"]
    by_op = {change["op"]: change for change in reversed(changes)}
    assert by_op["changed"] == {
        "op": "changed", "class": "cluster", "section": "policy rate plan-100M", "statement": "uplink",
        "old": "uplink 20M", "new": "uplink 50M", "old_line": 16, "new_line": 16,
        "fields": {"rate": {"old": 20000, "new": 50000}}, "old_position": None, "new_position": None,
    }
    assert by_op["moved"]["statement"] is None
    assert (by_op["moved"]["old_position"], by_op["moved"]["new_position"]) == (1, 2)
    assert by_op["added"]["old"] is None and by_op["added"]["old_line"] is None
    assert by_op["removed"]["new"] is None and by_op["removed"]["new_line"] is None


def test_json_of_the_guide_in_every_scope(capsys):
    for scope in ("all", "cluster", "server"):
        data = json.loads(confmerge("--format", "json", "--scope", scope, *GUIDE, capsys=capsys)[1])
        validate(data)
        assert data["scope"] == scope
        assert sum(data["counts"].values()) == len(data["changes"])
        assert len(data["changes"]) + data["outside_scope"] == 15
    added = next(c for c in data["changes"] if c["section"] == "interface en0o3")
    assert added["new"] == 'interface en0o3\n  description "access side"\n  mtu 9000\n  speed 25G'


def test_no_difference_in_json(capsys):
    code, out, _ = confmerge("--format", "json", GUIDE[0], GUIDE[0], capsys=capsys)
    data = json.loads(out)
    validate(data)
    assert code == 0 and data["changes"] == [] and data["counts"] == {"cluster": 0, "server": 0, "unclassified": 0}


def test_yaml_is_the_same_data(capsys):
    code, out, _ = confmerge("--format", "yaml", *OPS, capsys=capsys)
    assert code == 1 and out == (EXPECTED / "ops.yaml").read_text()
    assert YAML(typ="safe", pure=True).load(io.StringIO(out)) == json.loads((EXPECTED / "ops.json").read_text())


def test_the_documented_example_is_the_real_output():
    doc = (ROOT / "docs" / "diff.md").read_text()
    start = doc.index("```json\n", doc.index("confmerge diff --format json fixtures/diff/ops/old.conf")) + len("```json\n")
    example = json.loads(doc[start:doc.index("```", start)])
    validate(example)
    assert example == json.loads((EXPECTED / "ops.json").read_text())
