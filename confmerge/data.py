"""Trees and results as plain data (dicts, lists, scalars), and that data as JSON or YAML text.

One rendering for every caller: the CLI prints it, the daemon and a web API
return it. JSON and YAML carry the same data exactly.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Sequence, TextIO

from .diff import Change, Diff, Op, entry_text, statement_text
from .merge import Action, Edit, MergeResult
from .rules import effective_class
from .tree import Config, Node
from .types import to_json

DIFF_SCHEMA = "confmerge.diff/1"


def statement_data(node: Node, section: Node) -> dict[str, Any]:
    data: dict[str, Any] = {
        "identity": str(node.identity),
        "kind": node.kind.keyword if node.kind else None,
        "line": node.line,
        "values": {name: to_json(value) for name, value in node.fields.items()} if node.kind else None,
        "words": list(node.words),
    }
    if node.merge_class is not None and node is not section:
        data["class"] = effective_class(section, node).value
    if node.repeated:
        data["repeated"] = True
    if node.children:
        data["statements"] = [statement_data(child, section) for child in node.children]
    return data


def config_data(config: Config) -> dict[str, Any]:
    """The typed tree: sections with their class, statements with normal forms and lines."""
    sections = []
    for section in config.sections:
        data = statement_data(section, section)
        data["class"] = section.merge_class.value if section.merge_class else "unclassified"
        data.setdefault("statements", [])
        sections.append(data)
    return {
        "file": config.file,
        "metadata": config.metadata,
        "sections": sections,
        "warnings": [warning.formatted for warning in config.warnings],
    }


def diff_data(result: Diff) -> dict[str, Any]:
    """The result in schema ``confmerge.diff/1`` (``docs/diff.md``); every key is always present."""
    return {
        "schema": DIFF_SCHEMA,
        "old_file": result.old_file,
        "new_file": result.new_file,
        "scope": result.scope.value,
        "counts": {merge_class.value: count for merge_class, count in result.counts.items()},
        "outside_scope": result.outside,
        "changes": [change_data(change) for change in result.changes],
    }


def change_data(change: Change) -> dict[str, Any]:
    return {
        "op": change.op.value,
        "class": change.merge_class.value,
        "section": str(change.section),
        "statement": change.statement,
        "old": _value(change, change.old),
        "new": _value(change, change.new),
        "old_line": change.old_line,
        "new_line": change.new_line,
        "fields": {f.name: {"old": to_json(f.old), "new": to_json(f.new)} for f in change.fields}
        if change.op is Op.CHANGED else None,
        "old_position": change.old_position,
        "new_position": change.new_position,
    }


def _value(change: Change, node: Node | None) -> str | None:
    """An added or removed entry with its whole block; a changed or moved one as its own line."""
    if node is None:
        return None
    return entry_text(node) if change.op in (Op.ADDED, Op.REMOVED) else statement_text(node)


def edit_data(edit: Edit) -> dict[str, Any]:
    data: dict[str, Any] = {"section": edit.section, "statement": edit.statement, "line": edit.line}
    if edit.before is not None:
        data["before"] = edit.before
    data["reason"] = edit.reason
    return data


def report_data(result: MergeResult, names: Sequence[str], outputs: Sequence[str], base: str | None) -> dict[str, Any]:
    """``merge-report.json``: see ``docs/merge.md``, "Report"."""
    per_output = {action.value: {output: [edit_data(e) for e in edits if e.action is action]
                                 for output, edits in zip(outputs, result.edits)} for action in Action}
    return {
        "primary": names[result.primary],
        "base": base,
        "outputs": dict(zip(names, outputs)),
        "conflicts": [
            {"section": c.section, "statement": c.statement, "values": dict(zip(names, c.values)), "chosen": c.chosen}
            for c in result.conflicts
        ],
        "unclassified": [
            {"file": names[u.input], "section": u.section, "statement": u.statement, "line": u.line}
            for u in result.unclassified
        ],
        **per_output,
    }


def dump(data: Any, fmt: str, stream: TextIO | None = None) -> None:
    """Print ``data`` as ``json`` or ``yaml`` (block style, keys in order) to ``stream`` (default: the
    ``sys.stdout`` of the moment): the same data, exactly.

    A string with a line break or a character YAML does not print as is (NEL,
    the C0 and C1 controls) is written double-quoted with escapes, the one
    YAML style that keeps every character; JSON escapes the C1 controls and the
    Unicode line separators too, so neither format puts a raw control
    character on a terminal.
    """
    stream = sys.stdout if stream is None else stream
    if fmt == "json":
        text = json.dumps(data, indent=2, ensure_ascii=False)
        stream.write(_JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")
        return
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]  # ruamel types it as None
    yaml.representer.add_representer(str, _yaml_string)
    yaml.dump(data, stream)


# Inside JSON strings only (json.dumps escapes the C0 controls itself).
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029]")
# What YAML folds or cannot print: line breaks (NEL and the Unicode separators too), controls, a BOM, and
# anything outside YAML's printable set.
_YAML_QUOTE = re.compile("[^\t\x20-\x7e\xa0-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]|[\u2028\u2029]")


def _yaml_string(representer: Any, text: str) -> Any:
    style = '"' if _YAML_QUOTE.search(text) else None
    return representer.represent_scalar("tag:yaml.org,2002:str", text, style=style)
