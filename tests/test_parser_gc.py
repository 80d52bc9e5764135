"""parse() leaves the process's garbage collector as it found it (issue 12, item 14)."""

import gc
import weakref

import pytest

from confmerge.diagnostics import ConfError
from confmerge.parser import parse

from .conftest import FIXTURES


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_repeated_parses_do_not_freeze_objects_or_keep_garbage():
    text = (FIXTURES / "all-statements.conf").read_text()
    gc.collect()
    frozen = gc.get_freeze_count()
    enabled = gc.isenabled()
    for _ in range(20):
        garbage = Cycle()
        pending = weakref.ref(garbage)
        del garbage
        parse(text)
        assert gc.get_freeze_count() == frozen
        assert gc.isenabled() == enabled
        gc.collect()
        assert pending() is None, "a garbage cycle that was pending during a parse was never collected"


def test_a_parse_that_fails_restores_the_collector_too():
    frozen = gc.get_freeze_count()
    enabled = gc.isenabled()
    for text in ('a "open\n', "hostname a\nhostname b\n"):
        with pytest.raises(ConfError):
            parse(text)
        assert gc.isenabled() == enabled and gc.get_freeze_count() == frozen
