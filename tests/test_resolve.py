"""Resolutions: an operator's choice per conflict, in the engine (``merge(resolutions=...)``) and the CLI (``--resolve``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from confmerge import ConfError, merge, parse, render
from confmerge.resolve import BASE, resolutions_data, resolutions_from_data

from .conftest import FIXTURES, run_confmerge

THREE = FIXTURES / "merge" / "three-servers"
NAMES = [f"bqn{i}-v1.conf" for i in range(3)]


def three() -> list:
    return [parse((THREE / name).read_text(), name) for name in NAMES]


def test_a_resolution_takes_that_inputs_value_in_every_output() -> None:
    result = merge(three(), resolutions={("policy rate plan-100M", "downlink"): 1, ("timezone", None): 2})
    chosen = {(c.section, c.statement): c.chosen for c in result.conflicts}
    assert chosen[("policy rate plan-100M", "downlink")] == "downlink 90M"
    assert chosen[("timezone", None)] == "timezone UTC"
    assert chosen[("policy rate plan-100M", "congestion-management")] == "congestion-management yes"
    for config in result.outputs:
        text = render(config)
        assert "  downlink 90M\n" in text and "timezone UTC\n" in text
    untouched = merge(three())
    assert [render(c) for c in merge(three(), resolutions={}).outputs] == [render(c) for c in untouched.outputs]


def test_a_rule_order_resolution_takes_that_inputs_order() -> None:
    result = merge(three(), resolutions={("rule business", "order"): 1})
    for config in result.outputs:
        rules = [str(s.identity) for s in config.root.entries if str(s.identity).startswith("rule ")]
        assert rules.index("rule business") < rules.index("rule sw-updates-at-peak")
    with pytest.raises(ConfError, match="different ones"):
        merge(three(), resolutions={("rule business", "order"): 1, ("rule x", "order"): 2})


def test_three_way_the_base_or_a_removal_can_be_taken() -> None:
    base = parse("policy rate legacy\n  downlink 10M\n", "base")
    inputs = [parse(t, f"b{i}") for i, t in enumerate(["policy rate legacy\n  downlink 10M\n", "",
                                                         "policy rate legacy\n  downlink 20M\n"])]
    assert "legacy" in render(merge(inputs, 0, base).outputs[1])
    removed = merge(inputs, 0, base=base, resolutions={("policy rate legacy", None): 1})
    assert all("legacy" not in render(config) for config in removed.outputs)
    kept = merge(inputs, 0, base=base, resolutions={("policy rate legacy", None): BASE})
    assert all("policy rate legacy\n  downlink 20M\n" in render(config) for config in kept.outputs)
    values = [parse(f"policy rate p\n  downlink {v}\n", f"v{v}") for v in ("20M", "30M")]
    taken = merge(values, 0, base=parse("policy rate p\n  downlink 10M\n", "base"),
                  resolutions={("policy rate p", "downlink"): BASE})
    assert all(render(config) == "policy rate p\n  downlink 10M\n" for config in taken.outputs)


def test_a_choice_the_conflict_cannot_take_is_refused() -> None:
    inputs = [parse(t, f"b{i}") for i, t in enumerate(["policy rate p\n  downlink 1M\n", "policy rate p\n  downlink 2M\n",
                                                         "hostname c\n"])]
    with pytest.raises(ConfError, match="has no state of this entry"):
        merge(inputs, 0, resolutions={("policy rate p", "downlink"): 2})
    with pytest.raises(ConfError, match="base does not have"):
        merge(inputs, 0, resolutions={("policy rate p", "downlink"): BASE})


def test_resolutions_data_round_trips_and_bad_files_are_refused() -> None:
    choices = {("timezone", None): 2, ("policy rate p", "downlink"): BASE}
    data = resolutions_data(choices, ["a/bqn0-v1.conf", "bqn1-v1.conf", "bqn2-v1.conf"])
    assert resolutions_from_data(data, ["x/bqn0-v1.conf", "y/bqn1-v1.conf", "bqn2-v1.conf"], True, "f") == choices
    for bad, message in [({}, "not a resolutions file"),
                         ({"schema": "confmerge.resolutions/1", "resolutions": [{"section": 1}]}, "needs a string"),
                         ({**data, "resolutions": data["resolutions"] * 2}, "resolved twice")]:
        with pytest.raises(ConfError, match=message):
            resolutions_from_data(bad, ["bqn0-v1.conf", "bqn1-v1.conf", "bqn2-v1.conf"], True, "f")
    with pytest.raises(ConfError, match="no base"):
        resolutions_from_data(data, ["bqn0-v1.conf", "bqn1-v1.conf", "bqn2-v1.conf"], False, "f")
    with pytest.raises(ConfError, match="no input"):
        resolutions_from_data(data, ["bqn0-v1.conf", "bqn1-v1.conf"], True, "f")


def write(path: Path, resolutions: list[dict]) -> Path:
    path.write_text(json.dumps({"schema": "confmerge.resolutions/1", "resolutions": resolutions}))
    return path


def test_confmerge_merge_resolve_writes_the_chosen_values(tmp_path: Path) -> None:
    choices = write(tmp_path / "choices.json", [{"section": "timezone", "statement": None, "take": "bqn2-v1.conf"}])
    done = run_confmerge("merge", *NAMES, "-o", tmp_path / "out", "--resolve", choices, cwd=THREE)
    assert done.returncode == 0, done.stderr
    assert all("timezone UTC\n" in (tmp_path / "out" / f"bqn{i}-v2.conf").read_text() for i in range(3))


@pytest.mark.parametrize("resolutions, message", [
    ([{"section": "ntp", "statement": None, "take": "bqn2-v1.conf"}], "resolves no conflict of this merge: ntp"),
    ([{"section": "timezone", "statement": None, "take": "base"}], "no base"),
    ([{"section": "timezone", "statement": None, "take": "bqn7-v1.conf"}], "no input"),
])
def test_confmerge_merge_resolve_refuses_a_file_that_does_not_fit_and_writes_nothing(
        tmp_path: Path, resolutions: list[dict], message: str) -> None:
    choices = write(tmp_path / "choices.json", resolutions)
    done = run_confmerge("merge", *NAMES, "-o", tmp_path / "out", "--resolve", choices, cwd=THREE)
    assert done.returncode == 2 and message in done.stderr and str(choices) in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()
    (tmp_path / "broken.json").write_text('{"schema":\n  }')
    broken = run_confmerge("merge", *NAMES, "-o", tmp_path / "out", "--resolve", tmp_path / "broken.json", cwd=THREE)
    assert broken.returncode == 2 and f"{tmp_path / 'broken.json'}:2:3: error: not JSON" in broken.stderr


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000 + "]" * 100_000, "not a resolutions file: nested too deep"),
    ('{"schema": "confmerge.resolutions/1", "resolutions": ' + "1" * 5000 + "}", "not a resolutions file: a number too long"),
], ids=["deep", "long-number"])
def test_confmerge_merge_resolve_refuses_json_python_cannot_read_with_a_diagnostic(
        tmp_path: Path, text: str, message: str) -> None:
    """Deep nesting (the JSON decoder recurses) and a number of more than 4,300 digits were tracebacks."""
    choices = tmp_path / "choices.json"
    choices.write_text(text)
    done = run_confmerge("merge", *NAMES, "-o", tmp_path / "out", "--resolve", choices, cwd=THREE)
    assert (done.returncode, done.stderr) == (2, f"{choices}: error: {message}\n")
    assert not (tmp_path / "out").exists()
