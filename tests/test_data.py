"""Results as plain data, and that data as JSON and YAML: both formats carry the same data, exactly."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from confmerge.data import dump

from .conftest import run_confmerge

# Any Unicode a backup can hold (it is decoded from UTF-8, so no lone surrogates).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)))
DATA = st.recursive(st.none() | st.booleans() | st.integers() | TEXT,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)


def _dumped(data: Any, fmt: str) -> str:
    stream = io.StringIO()
    dump(data, fmt, stream)
    return stream.getvalue()


def _load_yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


@given(DATA)
@settings(deadline=None)  # YAML's pure-Python dump of a large example passes 200 ms on a loaded machine
def test_json_and_yaml_carry_the_same_data_exactly(data: Any):
    assert json.loads(_dumped(data, "json")) == data
    assert _load_yaml(_dumped(data, "yaml")) == data


@given(TEXT)
def test_neither_format_puts_a_control_character_on_a_terminal(text: str):
    for fmt in ("json", "yaml"):
        out = _dumped({"word": text}, fmt)
        assert not any(0x7f <= ord(c) <= 0x9f or (ord(c) < 0x20 and c != "\n") for c in out), (fmt, out)


def test_a_quoted_word_with_nel_is_the_same_in_diff_json_and_yaml(tmp_path: Path):
    old, new = tmp_path / "old.conf", tmp_path / "new.conf"
    old.write_text('hostname bqn0\n', encoding="utf-8")
    new.write_text('hostname bqn0\nunlisted-section "a\u0085b"\n', encoding="utf-8")
    as_json = run_confmerge("diff", "--format", "json", old, new)
    as_yaml = run_confmerge("diff", "--format", "yaml", old, new)
    assert as_json.returncode == as_yaml.returncode == 1, as_json.stderr + as_yaml.stderr
    data = json.loads(as_json.stdout)
    assert "a\u0085b" in json.dumps(data, ensure_ascii=False)
    assert _load_yaml(as_yaml.stdout) == data
