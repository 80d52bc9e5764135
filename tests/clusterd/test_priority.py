"""The primary's priority, on this process's own thread (a thread of its own, so the test runner's is untouched)."""

from __future__ import annotations

import os
import threading

from clusterd.priority import BOOST, Priority


def _in_thread(steps: list[bool]) -> tuple[int, list[int], str | None]:
    seen: list[int] = []
    result: dict[str, object] = {}

    def run() -> None:
        priority = Priority()
        for primary in steps:
            priority.follow(primary)
            seen.append(priority.now())
        result["base"], result["refused"] = priority.base, priority.refused

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    return result["base"], seen, result["refused"]  # type: ignore[return-value]


def test_the_primary_is_raised_and_lowered_again_when_it_steps_down():
    base, seen, refused = _in_thread([True, True, False])
    if os.geteuid() == 0:  # as in CI: root may raise
        assert refused is None
        assert seen == [base - BOOST, base - BOOST, base]
    else:
        assert refused, "without CAP_SYS_NICE it is refused, and said"
        assert seen == [base, base, base]


def test_the_priority_of_one_thread_is_not_the_others():
    main = os.getpriority(os.PRIO_PROCESS, 0)
    _in_thread([True])
    assert os.getpriority(os.PRIO_PROCESS, 0) == main
