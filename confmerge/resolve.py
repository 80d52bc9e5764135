"""An operator's choices for a merge's conflicts, as data both the CLI and the web server read.

A conflict is named by its ``(section, statement)`` (as in ``merge-report.json``)
and resolved by taking one input's state of the entry (its value, or its
absence where the conflict is about removal), or the base's. The engine gets
input indexes (:data:`BASE` for the base); files name the inputs by file name::

    {"schema": "confmerge.resolutions/1",
     "resolutions": [{"section": "timezone", "statement": null, "take": "bqn2-v1.conf"}]}
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any, Literal, Mapping, Sequence

from .diagnostics import ConfError, Diagnostic

SCHEMA = "confmerge.resolutions/1"
BASE: Literal["base"] = "base"

ConflictKey = tuple[str, "str | None"]
Choice = int | Literal["base"]


def resolutions_from_data(data: Any, names: Sequence[str], has_base: bool, file: str) -> dict[ConflictKey, Choice]:
    """Read resolutions data; ``take`` names an input (as given, or by its file name) or ``base``.

    Anything else is a :class:`ConfError` naming ``file``.
    """
    def fail(message: str) -> ConfError:
        return ConfError([Diagnostic("error", 0, 0, message, file)])

    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("resolutions"), list):
        raise fail(f'not a resolutions file: expected {{"schema": "{SCHEMA}", "resolutions": [...]}}')
    found: dict[ConflictKey, Choice] = {}
    for k, item in enumerate(data["resolutions"], 1):
        if not isinstance(item, dict) or not isinstance(item.get("section"), str) \
                or not isinstance(item.get("statement", None), (str, type(None))) or not isinstance(item.get("take"), str):
            raise fail(f"resolution {k}: needs a string 'section', 'statement' (string or null) and 'take'")
        key = (item["section"], item.get("statement"))
        if key in found:
            raise fail(f"resolution {k}: {_at(key)} is resolved twice")
        found[key] = choice_of(item["take"], names, has_base, lambda m: fail(f"resolution {k}: {m}"))
    return found


def choice_of(take: str, names: Sequence[str], has_base: bool, fail: Any) -> Choice:
    """The engine's choice for ``take``: an input's index, or :data:`BASE`."""
    if take == BASE:
        if not has_base:
            raise fail("takes the base, but the merge has no base")
        return BASE
    exact = [i for i, name in enumerate(names) if name == take]
    matches = exact or [i for i, name in enumerate(names) if PurePath(name).name == take]
    if len(matches) != 1:
        raise fail(f"takes '{take}', which is {'no' if not matches else 'more than one'} input of the merge")
    return matches[0]


def resolutions_data(resolutions: Mapping[ConflictKey, Choice], names: Sequence[str]) -> dict[str, Any]:
    """The file :func:`resolutions_from_data` reads, inputs named by ``names``."""
    return {"schema": SCHEMA, "resolutions": [
        {"section": section, "statement": statement, "take": choice if choice == BASE else names[choice]}
        for (section, statement), choice in resolutions.items()]}


def unmatched(resolutions: Mapping[ConflictKey, Choice], conflicts: Sequence[Any]) -> list[ConflictKey]:
    """The resolutions that name no conflict of a merge's result. A rule-order choice is one choice for
    the whole rule order: it matches while any rule-order conflict is left (which rules conflict depends
    on the order chosen)."""
    keys = {(c.section, c.statement) for c in conflicts}
    ordered = any(c.statement == "order" for c in conflicts)
    return [key for key in resolutions if key not in keys and not (key[1] == "order" and ordered)]


def _at(key: ConflictKey) -> str:
    return f"{key[0]} / {key[1]}" if key[1] else key[0]
