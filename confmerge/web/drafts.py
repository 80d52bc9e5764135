"""Merge drafts: a merge the operator is still deciding, kept in memory until confirmed or expired.

A draft holds the uploaded backups and the choices made so far; every change
of a choice re-runs the one engine merge with those choices
(``merge(..., resolutions=...)``), so what is shown is always exactly what
``confmerge merge --resolve`` writes for the same choices.
"""

from __future__ import annotations

import io
import secrets
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .. import __version__
from ..data import dump, report_data
from ..diagnostics import ConfError
from ..merge import Conflict, MergeResult, choose_primary, merge
from ..render import render
from ..resolve import BASE, Choice, ConflictKey, choice_of, resolutions_data, unmatched
from ..rules import Rules
from ..tree import Config
from .errors import Problem
from .uploads import Upload, bad_backups, load

REPORT = "merge-report.json"
RESOLUTIONS = "resolutions.json"
BOTH_WHY = ("an entry is named by its identity, so two values of one entry cannot stand together; "
            "values that can (two NTP servers) are two entries and never conflict")


def next_generation(name: str) -> str:
    from ..cli.merge import next_generation as bump
    return bump(Path(name))


@dataclass
class Draft:
    id: str
    inputs: tuple[Upload, ...]
    configs: tuple[Config, ...]
    primary: int
    base: Upload | None
    base_config: Config | None
    expires: float
    choices: dict[ConflictKey, Choice] = field(default_factory=dict)
    confirmed: bool = False
    _result: MergeResult | None = None

    @property
    def names(self) -> list[str]:
        return [upload.name for upload in self.inputs]

    @property
    def outputs(self) -> list[str]:
        return [next_generation(name) for name in self.names]

    @property
    def result(self) -> MergeResult:
        if self._result is None:
            try:
                self._result = merge(self.configs, self.primary, self.base_config, resolutions=self.choices)
            except ConfError as error:
                raise bad_backups(error.diagnostics, {u.name: u.text for u in self.inputs}) from None
        return self._result

    def conflicts(self) -> list[tuple[ConflictKey, Conflict]]:
        """One row per conflicting entry (a removal conflict and a value conflict on one entry are one choice)."""
        rows: dict[ConflictKey, Conflict] = {}
        for conflict in self.result.conflicts:
            key = (conflict.section, conflict.statement)
            first = rows.get(key)
            rows[key] = conflict if first is None else Conflict(
                conflict.section, conflict.statement, first.values, conflict.chosen, first.base)
        return list(rows.items())

    def choose(self, n: int, take: str) -> dict[str, Any]:
        """Resolve conflict ``n`` (1-based, in the current list) by taking ``take``: an input's name, ``primary`` or ``base``."""
        if self.confirmed:
            raise Problem(409, "the merge is confirmed; start a new one to change it")
        rows = self.conflicts()
        if not 1 <= n <= len(rows):
            raise Problem(404, f"no conflict {n}: this merge has {len(rows)}")
        key, conflict = rows[n - 1]
        if take == "both":
            raise Problem(422, f"both: not possible: {BOTH_WHY}")
        if take == "primary":
            take = self.names[self.primary]
        choice = choice_of(take, self.names, self.base is not None, lambda m: Problem(400, m))
        if choice == BASE and conflict.base is None and conflict.statement != "order":
            raise Problem(422, "the base does not have this entry; take an input that removed it instead")
        kept = {k: c for k, c in self.choices.items() if not (key[1] == "order" and k[1] == "order")}
        self.apply({**kept, key: choice})
        return self.data()

    def choose_primary(self, name: str) -> dict[str, Any]:
        """Another primary: the merge again from scratch, the choices cleared."""
        if self.confirmed:
            raise Problem(409, "the merge is confirmed; start a new one to change it")
        if name not in self.names:
            raise Problem(400, "give {\"primary\": NAME}, NAME one of the merge's backups")
        self.primary, self.choices, self._result = self.names.index(name), {}, None
        return self.data()

    def take_primary_for_rest(self) -> dict[str, Any]:
        if self.confirmed:
            raise Problem(409, "the merge is confirmed; start a new one to change it")
        ordered = any(statement == "order" for _, statement in self.choices)
        rest = {key: self.primary for key, _ in self.conflicts()
                if key not in self.choices and not (key[1] == "order" and ordered)}
        self.apply({**self.choices, **rest})
        return self.data()

    def apply(self, choices: dict[ConflictKey, Choice]) -> None:
        """Re-run the merge with ``choices``; on a refusal, the draft stays as it was."""
        before, self.choices, self._result = self.choices, choices, None
        try:
            stale = unmatched(self.choices, self.result.conflicts)
        except ConfError as error:
            self.choices, self._result = before, None
            raise Problem(422, "; ".join(d.message for d in error.diagnostics)) from None
        except Problem as problem:
            self.choices, self._result = before, None
            raise Problem(422, "; ".join(d["message"] for d in problem.details.get("diagnostics", []))
                          or problem.message) from None
        # A choice that removed an entry takes the conflicts inside it away; they are no longer choices.
        self.choices = {key: choice for key, choice in self.choices.items() if key not in stale}

    def confirm(self) -> dict[str, Any]:
        self.confirmed = True
        return self.data()

    def texts(self) -> dict[str, str]:
        """Every file a confirmed merge gives: each ``-v2``, the report, the operator's choices."""
        files = {name: render(config) for name, config in zip(self.outputs, self.result.outputs)}
        files[REPORT] = _json(self.report())
        files[RESOLUTIONS] = _json(resolutions_data(self.choices, self.names))
        return files

    def report(self) -> dict[str, Any]:
        return report_data(self.result, self.names, self.outputs, self.base.name if self.base else None)

    def archive(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, text in self.texts().items():
                archive.writestr(name, text.encode("utf-8"))
        return buffer.getvalue()

    def data(self) -> dict[str, Any]:
        names = self.names
        rows = []
        order = next((choice for (_, statement), choice in self.choices.items() if statement == "order"), None)
        for n, (key, conflict) in enumerate(self.conflicts(), 1):
            choice = order if key[1] == "order" else self.choices.get(key)
            rows.append({
                "n": n, "section": conflict.section, "statement": conflict.statement,
                "values": dict(zip(names, conflict.values)), "base": conflict.base, "chosen": conflict.chosen,
                "take": None if choice is None else choice if choice == BASE else names[choice],
                "automatic": choice is None,
                "both": {"allowed": False, "why": BOTH_WHY},
            })
        return {
            "id": self.id, "version": __version__, "primary": names[self.primary],
            "base": self.base.name if self.base else None, "inputs": names,
            "outputs": [{"input": name, "file": output} for name, output in zip(names, self.outputs)],
            "confirmed": self.confirmed, "expires_in": max(0, round(self.expires - time.monotonic())),
            "resolved": sum(1 for row in rows if not row["automatic"]), "total": len(rows),
            "conflicts": rows,
            "unclassified": [{"file": names[u.input], "section": u.section, "statement": u.statement, "line": u.line}
                             for u in self.result.unclassified],
        }


def _json(data: Any) -> str:
    stream = io.StringIO()
    dump(data, "json", stream)
    return stream.getvalue()


@dataclass
class Drafts:
    """The open drafts of one server: at most ``capacity``, each forgotten ``lifetime`` seconds after its last use."""

    rules: Rules | None = None
    lifetime: float = 3600.0
    capacity: int = 64
    drafts: dict[str, Draft] = field(default_factory=dict)

    def expire(self) -> None:
        now = time.monotonic()
        self.drafts = {key: d for key, d in self.drafts.items() if d.expires > now}

    def create(self, inputs: Sequence[Upload], primary: str | None, base: Upload | None) -> Draft:
        self.expire()
        if len(self.drafts) >= self.capacity:
            raise Problem(429, f"{self.capacity} merges are open (confirmed ones too); one is forgotten "
                               f"{round(self.lifetime / 60)} minutes after its last use")
        if len(inputs) < 2:
            raise Problem(400, "a merge needs two backups or more")
        names = [u.name for u in inputs]
        for k, name in enumerate(names):
            if name in names[:k]:
                raise Problem(400, f"two backups are named {name}; rename one of them")
        outputs = [next_generation(name) for name in names]
        for k, output in enumerate(outputs):
            if output in outputs[:k] or output in (REPORT, RESOLUTIONS):
                raise Problem(400, f"{names[k]} would give {output}, as another input does; rename one of them")
        loaded = load([*inputs, *([base] if base else [])], self.rules)
        configs, base_config = tuple(loaded[:len(inputs)]), (loaded[-1] if base else None)
        if primary:
            if primary not in names:
                raise Problem(400, f"the primary {primary} is none of the uploaded backups")
            index = names.index(primary)
        else:
            try:
                index = choose_primary(configs)
            except ConfError as error:
                raise bad_backups(error.diagnostics, {u.name: u.text for u in inputs}) from None
        draft = Draft(secrets.token_urlsafe(16), tuple(inputs), configs, index, base, base_config,
                      time.monotonic() + self.lifetime)
        draft.result  # bad input fails here, before the draft exists
        self.drafts[draft.id] = draft
        return draft

    def get(self, key: str) -> Draft:
        self.expire()
        draft = self.drafts.get(key)
        if draft is None:
            raise Problem(404, f"no such merge (drafts are forgotten {round(self.lifetime / 60)} minutes after their last use)")
        draft.expires = time.monotonic() + self.lifetime
        return draft
