"""The diff's reference: the same comparison done by DeepDiff, general and slow.

:mod:`confmerge.diff` walks the typed trees with its own fast path; this module
hands the same trees, as nested dicts keyed by identity, to DeepDiff and reads
its report back as entries added, removed and changed. The tests check that
both agree on random pairs of backups, and ``bench/diff.py`` measures what
the engine would cost if DeepDiff did the walk (``docs/diff.md``). Nothing
else imports it, so deepdiff's import time stays out of ``confmerge diff``.
"""

from __future__ import annotations

from typing import Any

from .tree import Config, Node
from .types import to_json

Path = tuple[tuple[Any, ...], ...]
"""A section's identity, then the identities down to a statement."""


def view(node: Node) -> dict[tuple[Any, ...], dict[str, Any]]:
    """``node``'s entries as nested dicts by identity: normal-form values (words for generic content) and block."""
    return {
        tuple(child.identity): {
            "value": [to_json(v) for v in child.values] if child.kind is not None else list(child.words),
            "block": view(child),
        }
        for child in node.entries
    }


def compare(old_view: dict, new_view: dict) -> set[tuple[str, Path]]:
    """DeepDiff of two views as ``(op, path)``: a changed statement once, however many of its fields changed.

    ``threshold_to_diff_deeper=0``: otherwise DeepDiff reports a block whose
    entries all differ as one changed value instead of entry by entry.
    """
    from deepdiff import DeepDiff

    report = DeepDiff(old_view, new_view, threshold_to_diff_deeper=0, view="tree")
    ops = {"dictionary_item_added": "added", "dictionary_item_removed": "removed"}
    found: set[tuple[str, Path]] = set()
    for key, levels in report.items():
        op = ops.get(key, "changed")
        for level in levels:
            path = level.path(output_format="list")
            if op == "changed":
                path = path[:path.index("value")]
            found.add((op, tuple(step for step in path if step != "block")))
    return found


def reference_changes(old: Config, new: Config) -> set[tuple[str, Path]]:
    """Every entry added, removed or changed from ``old`` to ``new``, by DeepDiff (rule order aside)."""
    return compare(view(old.root), view(new.root))
