"""The merge's adversarial shapes (issue 12, items 9-12) grow no faster than n log n.

Each shape is merged at n and 4n entries in this process, the best of three
in CPU time of this process (other processes on a loaded machine barely
count); a quadratic step makes the larger 16 times slower, n log n about 4.5
times, and the bound (8) leaves room for noise. ``bench/merge.py`` measures
the same shapes against ``confmerge diff`` whole process.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from confmerge.merge import merge
from confmerge.parser import parse
from confmerge.render import render

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from generate import SHAPES  # noqa: E402

SIZE = 2_000
GROWTH = 8.0


def seconds(shape: str, size: int) -> float:
    first, second, base = SHAPES[shape](size)
    inputs = [parse(first, "a.conf"), parse(second, "b.conf")]
    ancestor = parse(base, "base.conf") if base is not None else None
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        result = merge(inputs, 0, ancestor)
        for output in result.outputs:
            render(output)
        best = min(best, time.process_time() - start)
    return best


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_shape_four_times_larger_takes_less_than_eight_times_as_long(shape: str):
    seconds(shape, SIZE // 4)
    small, large = seconds(shape, SIZE), seconds(shape, 4 * SIZE)
    assert large / small < GROWTH, f"{shape}: {small:.3f} s at {SIZE}, {large:.3f} s at {4 * SIZE}"


def test_the_shapes_merge_to_what_they_promise():
    """The shapes are what the benchmark says they are: the merge has the work to do."""
    first, second, _ = SHAPES["interleaved"](8)
    result = merge([parse(first, "a"), parse(second, "b")], 0)
    assert [s.words[1] for s in result.outputs[0].sections if s.keyword == "rule"] == [f"s{k}" for k in range(8)]
    first, second, _ = SHAPES["reversed"](8)
    result = merge([parse(first, "a"), parse(second, "b")], 0)
    assert [s.words[1] for s in result.outputs[1].sections if s.keyword == "rule"] == [f"r{k}" for k in range(8)]
    first, second, _ = SHAPES["block-top"](8)
    group = merge([parse(first, "a"), parse(second, "b")], 0).outputs[0].section("subscriber-group", "g")
    assert group is not None and [c.keyword for c in group.children] == ["member"] * 9 + ["range"] * 8 + ["policy"]
    first, second, _ = SHAPES["new-sections"](8)
    result = merge([parse(first, "a"), parse(second, "b")], 0)
    assert [str(s.identity) for s in result.outputs[0].sections][3:] == [
        *(f"policy rate q{k}" for k in range(4)), *(f"rule s{k}" for k in range(4))]
    first, second, base = SHAPES["block-removal"](8)
    assert base is not None
    result = merge([parse(first, "a"), parse(second, "b")], 0, parse(base, "base"))
    group = result.outputs[0].section("subscriber-group", "g")
    assert group is not None and [c.text for c in group.children] == ["  member 10.0.0.1", "  policy p"]
