"""Properties of ``merge`` over random backups of one cluster (see ``test_merge_strategies``)."""

from __future__ import annotations

import difflib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from confmerge.check import validate
from confmerge.merge import merge
from confmerge.parser import parse
from confmerge.render import render
from confmerge.tree import MergeClass

from .test_merge_strategies import backup, cluster_form, contents, own_sections, styled

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parsed(texts):
    return [parse(text, f"bqn{k}.conf") for k, text in enumerate(texts)]


def only_additions(before: str, after: str) -> bool:
    matcher = difflib.SequenceMatcher(None, before.splitlines(True), after.splitlines(True), autojunk=False)
    return all(tag in ("equal", "insert") for tag, *_ in matcher.get_opcodes())


def cluster_entries(config):
    """Every cluster-wide (section, statement) identity pair: what a union must carry to every output."""
    found = set()
    for section in config.root.entries:
        if section.merge_class is MergeClass.CLUSTER:
            found.add((section.identity, None))
            found.update((section.identity, node.identity) for node in section.walk() if not node.repeated)
    return found


@SETTINGS
@given(st.lists(st.sampled_from([0, 1, 2, 3]), min_size=2, max_size=3, unique=True).flatmap(
    lambda ids: st.tuples(*(backup(i) for i in ids))))
def test_outputs_are_unified_valid_keep_their_own_and_merge_again_to_themselves(texts):
    inputs = parsed(texts)
    result = merge(inputs)
    outputs = result.outputs
    forms = [cluster_form(output) for output in outputs]
    assert all(form == forms[0] for form in forms)
    union = set().union(*map(cluster_entries, inputs))
    for source, output in zip(inputs, outputs):
        assert validate(output) == []
        assert own_sections(output) == own_sections(source)
        assert union <= cluster_entries(output)
        text = render(output)
        assert render(parse(text, "again")) == text
    again = merge(parsed(map(render, outputs)))
    assert [render(o) for o in again.outputs] == [render(o) for o in outputs]
    assert again.conflicts == () and all(edits == () for edits in again.edits)


@SETTINGS
@given(st.tuples(backup(0), backup(1), backup(2)))
def test_the_primary_only_gains_lines_and_without_conflicts_every_output_only_gains(texts):
    inputs = parsed(texts)
    result = merge(inputs)
    assert result.primary == 0
    assert only_additions(texts[0], render(result.outputs[0]))
    if not result.conflicts:
        assert all(only_additions(text, render(output)) for text, output in zip(texts, result.outputs))


@SETTINGS
@given(st.tuples(backup(0), backup(1), backup(2)), st.permutations([0, 1, 2]))
def test_input_order_does_not_matter(texts, order):
    first = merge(parsed(texts))
    shuffled = merge([parse(texts[k], f"bqn{k}.conf") for k in order])
    assert [render(shuffled.outputs[order.index(k)]) for k in range(3)] == [render(o) for o in first.outputs]
    assert {c.section for c in shuffled.conflicts} == {c.section for c in first.conflicts}


@SETTINGS
@given(st.data())
def test_inputs_equal_in_normal_form_give_outputs_byte_identical_to_them(data):
    content = data.draw(contents(0))
    texts = [data.draw(styled(content)) for _ in range(3)]
    result = merge(parsed(texts), primary=data.draw(st.integers(0, 2)))
    assert [render(output) for output in result.outputs] == texts
    assert result.conflicts == () and all(edits == () for edits in result.edits)


@SETTINGS
@given(st.tuples(backup(0), backup(1)), st.booleans())
def test_inputs_are_never_modified_though_outputs_share_their_unchanged_sections(texts, with_base):
    inputs = parsed(texts)
    base = parse(texts[1], "base") if with_base else None
    result = merge(inputs, base=base)
    assert [render(config) for config in inputs] == list(texts)
    for output in result.outputs:
        assert render(merge([output, parse(render(output))], primary=0).outputs[0]) == render(output)
    assert [render(config) for config in inputs] == list(texts)


@SETTINGS
@given(st.tuples(backup(0), backup(1), backup(2)), backup(3))
def test_three_way_outputs_are_unified_valid_and_stable(texts, base_text):
    inputs = parsed(texts)
    result = merge(inputs, base=parse(base_text, "base"))
    forms = [cluster_form(output) for output in result.outputs]
    assert all(form == forms[0] for form in forms)
    for source, output in zip(inputs, result.outputs):
        assert validate(output) == []
        assert own_sections(output) == own_sections(source)
    again = merge(parsed(map(render, result.outputs)))
    assert [render(o) for o in again.outputs] == [render(o) for o in result.outputs]


@SETTINGS
@given(st.tuples(backup(0), backup(1), backup(1), backup(2)), st.permutations([1, 2, 3]), st.booleans())
def test_secondaries_that_share_a_bqn_id_give_the_same_result_in_any_order(texts, order, with_base):
    """Issue 12, item 4: outputs, conflicts and edits are the same, input for input, whatever the order."""
    base = parse(texts[3], "base") if with_base else None
    first = merge(parsed(texts), base=base)
    numbers = [0, *order]
    shuffled = merge([parse(texts[k], f"bqn{k}.conf") for k in numbers], base=base)

    def by_input(result, numbers):
        conflicts = [(c.section, c.statement, c.chosen, dict(zip(numbers, c.values))) for c in result.conflicts]
        outputs = {k: render(output) for k, output in zip(numbers, result.outputs)}
        return outputs, conflicts, dict(zip(numbers, result.edits)), numbers[result.primary]

    assert by_input(shuffled, numbers) == by_input(first, [0, 1, 2, 3])
