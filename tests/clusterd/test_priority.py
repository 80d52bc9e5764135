"""The primary's priority, on this process's own thread (a thread of its own, so the test runner's is untouched)."""

from __future__ import annotations

import os
import threading

from clusterd.priority import BOOST, HIGHEST, Priority


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
        raised = max(base - BOOST, HIGHEST)
        assert seen == [raised, raised, base]
    else:
        assert refused, "without CAP_SYS_NICE it is refused, and said"
        assert seen == [base, base, base]


def test_the_priority_of_one_thread_is_not_the_others():
    main = os.getpriority(os.PRIO_PROCESS, 0)
    _in_thread([True])
    assert os.getpriority(os.PRIO_PROCESS, 0) == main


def test_worker_threads_follow_the_loop_up_and_down():
    """A worker holding the interpreter's lock at a lower priority would hold the raised loop back (an inversion)."""
    import asyncio

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, 0)

    async def run() -> tuple[int, int, int, int, int]:
        priority = Priority()
        asyncio.get_running_loop().set_default_executor(priority.executor())
        before = await asyncio.to_thread(nice)  # a worker made while secondary
        priority.follow(True)
        loop_nice, worker_nice = priority.now(), await asyncio.to_thread(nice)
        priority.follow(False)
        lowered = await asyncio.to_thread(nice)
        return priority.base, before, loop_nice, worker_nice, lowered

    result: dict[str, tuple[int, int, int, int, int]] = {}
    thread = threading.Thread(target=lambda: result.setdefault("r", asyncio.run(run())))
    thread.start()
    thread.join(10)
    base, before, loop_nice, worker_nice, lowered = result["r"]
    assert before == base and lowered == base
    if os.geteuid() == 0:
        assert loop_nice == worker_nice == max(base - BOOST, HIGHEST)
    assert os.getpriority(os.PRIO_PROCESS, 0) == base, "the test runner's own thread is untouched"


_CHILD = """
from clusterd.priority import Priority
priority = Priority()
before = priority.group()
priority.follow(True)
raised = priority.group()
priority.follow(False)
print(before, raised, priority.group())
"""


def _groups(own_session: bool) -> list[str]:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=60,
                          start_new_session=own_session)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_daemon_in_a_session_of_its_own_raises_its_autogroup_too():
    """With autogroups Linux shares the CPU between sessions first: a raised thread in a session of its own would
    gain nothing against the other servers' sessions."""
    before, raised, after = _groups(own_session=True)
    if before == "None":
        return  # a kernel without autogroups: nothing to raise
    if os.geteuid() == 0:
        assert int(raised) == max(int(before) - BOOST, HIGHEST) and after == before
    else:
        assert raised == before == after


def test_an_operators_session_is_left_alone():
    before, raised, after = _groups(own_session=False)
    assert before == raised == after
