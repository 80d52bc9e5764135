"""A seeded random soak: operators edit every server while random faults come and go, then the checker judges.

The same seed gives the same schedule of faults and edits (the daemons' timing
still varies). Used by the test suite (about a minute) and ``bench/faults.py``
(as long as you like).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Callable

from .checker import Sampler, Verdict, judge
from .operators import Operator, Record, seeded
from .world import Lab, unified_backup

FAULTS = ("kill", "pause", "term", "isolate", "cut", "one-way", "three-way", "disk")


def make_lab(root: Path, ids: list[int], **options: object) -> Lab:
    """A lab for operators: unified backups with the shared policies; every state directory a small disk (8 MiB)."""
    options.setdefault("backups", {i: seeded(unified_backup(i)) for i in ids})
    options.setdefault("small_disk", set(ids))
    options.setdefault("disk_size", "8m")
    return Lab(root, ids, **options)  # type: ignore[arg-type]


class Watch:
    """Operators on every server and a sampler; a context manager that stops them however the block ends."""

    def __init__(self, lab: Lab, seed: int, rate: float = 4.0) -> None:
        self.lab = lab
        self.record = Record()
        self.operators = [Operator(i, lab.backup(i), self.record, seed, rate) for i in lab.ids]
        self.sampler = Sampler(lab)

    def __enter__(self) -> "Watch":
        self.sampler.start()
        for operator in self.operators:
            operator.start()
        return self

    def stop_editing(self) -> None:
        for operator in self.operators:
            operator.stop()

    def judge(self, settle: float = 60.0) -> Verdict:
        """Stop the operators, then judge with the sampler still watching the cluster converge."""
        self.stop_editing()
        return judge(self.lab, self.record, self.sampler.seen, settle)

    def __exit__(self, *exc: object) -> None:
        self.stop_editing()
        self.sampler.stop()


class Faults:
    """Inflicts one random fault at a time on a lab and undoes it."""

    def __init__(self, lab: Lab, rng: random.Random, kinds: tuple[str, ...] = FAULTS,
                 say: Callable[[str], None] = lambda text: None) -> None:
        self.lab = lab
        self.random = rng
        self.kinds = tuple(k for k in kinds if k != "three-way" or len(lab.ids) >= 3)
        self.say = say
        self.stopped: set[int] = set()

    def inflict(self) -> str:
        lab, rng = self.lab, self.random
        kind = rng.choice(self.kinds)
        target = rng.choice(lab.ids)
        other = rng.choice([i for i in lab.ids if i != target])
        if kind == "kill":
            lab.kill(target)
            self.stopped.add(target)
        elif kind == "term":
            lab.terminate(target)
            self.stopped.add(target)
        elif kind == "pause":
            lab.pause(target)
        elif kind == "isolate":
            lab.isolate(target)
        elif kind == "cut":
            lab.cut(target, other)
        elif kind == "one-way":
            lab.drop(target, other)
        elif kind == "three-way":
            sides = [{i} for i in lab.ids[:2]] + [set(lab.ids[2:])]
            lab.partition(*sides)
        elif kind == "disk":
            lab.fill_disk(target)
        what = f"{kind} {target}" + (f"/{other}" if kind in ("cut", "one-way") else "")
        self.say(what)
        return what

    def undo(self) -> None:
        self.lab.heal()
        for i in sorted(self.stopped):
            self.lab.start(i)
        self.stopped.clear()


def soak(lab: Lab, seconds: float, seed: int, kinds: tuple[str, ...] = FAULTS, rate: float = 4.0,
         settle: float = 90.0, say: Callable[[str], None] = lambda text: None) -> Verdict:
    """Start the lab, run operators and random faults for ``seconds``, heal, and judge."""
    rng = random.Random(seed)
    lab.start_all()
    lab.wait("the lab's cluster complete", lambda: lab.complete() or None, 60)
    faults = Faults(lab, rng, kinds, say)
    with Watch(lab, seed, rate) as watch:
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                time.sleep(min(rng.uniform(0.5, 2.5), max(0.0, end - time.monotonic())))
                if time.monotonic() >= end:
                    break
                faults.inflict()
                time.sleep(rng.uniform(0.3, 4.0))
                faults.undo()
        finally:
            faults.undo()
        say("faults over; operators stop; waiting for the cluster to converge")
        verdict = watch.judge(settle)
        if lab.keep_state:
            watch.record.dump(lab.root / "edits.jsonl")
        return verdict
