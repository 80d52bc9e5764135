"""Tree out, text in: write a :class:`~confmerge.tree.Config` back as a backup.

Every node carries its own source text, so rendering is concatenation: an
untouched tree gives its input back byte for byte, and an edited one differs
only in the lines that were edited.
"""

from __future__ import annotations

from .grammar import BOM
from .tree import Config, Node


def render(config: Config) -> str:
    out: list[str] = [BOM] if config.bom else []
    _emit(config.root, out, config.newline)
    if out and config.tail and out[-1] == "":
        out.append(config.newline)
    out.append(config.tail)
    return "".join(out)


def _emit(node: Node, out: list[str], newline: str) -> None:
    for child in node.children:
        if out and out[-1] == "":
            out[-1] = newline
        out.append(child.leading)
        out.append(child.text)
        out.append(child.ending)
        if child.children:
            _emit(child, out, newline)
