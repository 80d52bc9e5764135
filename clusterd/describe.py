"""What a generation changed, in one line: the sections added, removed and changed (confmerge's diff, cluster scope).

Recorded in the generation itself (:attr:`clusterd.history.Generation.summary`)
when it is made, so that ``clusterd history`` needs no text that pruning may
since have dropped. Parsed texts are cached by content: the head's text is
parsed once, when it is made, and again only if the daemon restarted.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from confmerge import Config, ConfError, Op, Scope, diff, parse

SHOWN = 3
"""Section names shown per kind; more are counted."""

_trees: OrderedDict[str, Config] = OrderedDict()
_lock = threading.Lock()
"""The daemon summarizes in threads (a big backup takes seconds to parse): the cache is shared."""
CACHED = 2
"""Trees kept: the head's and the one made from it are what the next summary compares (each is megabytes for a
10,000-line backup, in every daemon)."""


def tree(text: str, name: str = "generation") -> Config:
    """``text`` parsed, from a small cache keyed by its hash (the same text is parsed once)."""
    key = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with _lock:
        found = _trees.get(key)
        if found is not None:
            _trees.move_to_end(key)
            return found
    found = parse(text, name)
    _keep(key, found)
    return found


def remember(text: str, config: Config) -> None:
    """A tree the caller already parsed from ``text`` (its cluster-wide part, or more): no second parse."""
    _keep(hashlib.sha256(text.encode("utf-8")).hexdigest(), config)


def _keep(key: str, config: Config) -> None:
    with _lock:
        _trees[key] = config
        _trees.move_to_end(key)
        while len(_trees) > CACHED:
            _trees.popitem(last=False)


def summarize(before: str | None, after: str | Config) -> str:
    """``added policy rate gold; removed rule old; changed ntp, dns``; ``no cluster-wide change``.

    ``before`` None: the first generation (every section counts as added).
    Never raises: a text that does not parse is said so, and the generation is made anyway. Parsing and
    diffing a big backup take seconds: the daemon calls this in a thread.
    """
    try:
        new = after if isinstance(after, Config) else tree(after)
        old = tree(before) if before is not None else parse("", "nothing")
    except ConfError as error:
        return f"changes not summarized: {error.diagnostics[0].message}"
    added: list[str] = []
    removed: list[str] = []
    changed: list[str] = []
    for change in diff(old, new, Scope.CLUSTER).changes:
        name = str(change.section)
        kind = added if change.op is Op.ADDED and not change.path else (
            removed if change.op is Op.REMOVED and not change.path else changed)
        if name not in kind and name not in added and name not in removed:
            kind.append(name)
    changed = [name for name in changed if name not in added and name not in removed]
    parts = [f"{word} {_names(names)}" for word, names in (("added", added), ("removed", removed),
                                                            ("changed", changed)) if names]
    return "; ".join(parts) if parts else "no cluster-wide change"


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
