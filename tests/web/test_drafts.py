"""Merge drafts: they expire, are bounded in number, and a confirmed one cannot change."""

from __future__ import annotations

import time

import pytest

from confmerge.web.drafts import Drafts
from confmerge.web.errors import Problem
from confmerge.web.uploads import Upload

from ..conftest import FIXTURES

GUIDE = [Upload(name, (FIXTURES / name).read_text()) for name in ("bqn0-v1.conf", "bqn1-v1.conf")]


def test_a_draft_unused_for_its_lifetime_is_forgotten() -> None:
    drafts = Drafts(lifetime=0.3)
    draft = drafts.create(GUIDE, None, None)
    assert drafts.get(draft.id) is draft
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and draft.id in drafts.drafts:
        time.sleep(0.1)
        drafts.expire()
    with pytest.raises(Problem) as refused:
        drafts.get(draft.id)
    assert refused.value.status == 404


def test_drafts_are_bounded_and_a_confirmed_one_is_final() -> None:
    drafts = Drafts(capacity=2)
    first = drafts.create(GUIDE, None, None)
    drafts.create(GUIDE, "bqn1-v1.conf", None)
    with pytest.raises(Problem) as full:
        drafts.create(GUIDE, None, None)
    assert full.value.status == 429
    first.confirm()
    with pytest.raises(Problem) as final:
        first.take_primary_for_rest()
    assert final.value.status == 409
    with pytest.raises(Problem) as twice:
        Drafts().create([GUIDE[0], GUIDE[0]], None, None)
    assert twice.value.status == 400 and "two backups are named" in twice.value.message


def test_a_full_server_says_truly_what_frees_a_place() -> None:
    drafts = Drafts(capacity=1, lifetime=600)
    drafts.create(GUIDE, None, None).confirm()
    with pytest.raises(Problem) as full:
        drafts.create(GUIDE, None, None)  # confirming frees nothing: the confirmed draft serves its downloads
    assert full.value.status == 429 and "confirm or" not in full.value.message
    assert "forgotten 10 minutes after its last use" in full.value.message
