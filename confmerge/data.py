"""Trees as plain data (dicts, lists, scalars) for JSON and YAML output."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from .rules import effective_class
from .tree import Config, Node
from .types import to_json


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
        "warnings": [str(warning) for warning in config.warnings],
    }


def dump(data: Any, fmt: str, stream: TextIO = sys.stdout) -> None:
    """Print ``data`` as ``json`` or ``yaml`` (block style, keys in order)."""
    if fmt == "json":
        json.dump(data, stream, indent=2, ensure_ascii=False)
        stream.write("\n")
        return
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]  # ruamel types it as None
    yaml.dump(data, stream)
