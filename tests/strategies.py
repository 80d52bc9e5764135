"""Hypothesis strategies: random valid backups in random styles.

A tree is drawn from real sections (the all-statements fixture, so every kind
appears) and generic ones of a later release, then rendered with a random
indentation width, line endings, comments, blank lines, trailing spaces,
quoting, BOM and final newline. The text and the nested words are returned, so
tests can check both the round trip and the structure.
"""

from __future__ import annotations

from hypothesis import strategies as st

from confmerge.grammar import parse_blocks
from confmerge.tree import quote

from .conftest import FIXTURES

KNOWN = parse_blocks((FIXTURES / "all-statements.conf").read_text())
Block = tuple[tuple[str, ...], tuple["Block", ...]]

bare_words = st.from_regex(r"[A-Za-z0-9$/:._@-][A-Za-z0-9#$/:._@-]{0,10}", fullmatch=True)
quoted_words = st.text(st.sampled_from(list('ab #"\\:x ')), max_size=8)
words = st.one_of(bare_words, quoted_words)
generic_keywords = st.sampled_from(["snmp", "x-feature", "license", "telemetry"])


@st.composite
def generic_blocks(draw, depth: int = 0) -> Block:
    head = (draw(generic_keywords), *draw(st.lists(words, max_size=3)))
    children: tuple[Block, ...] = ()
    if depth < 2:
        children = tuple(draw(st.lists(generic_blocks(depth + 1), max_size=3, unique_by=lambda b: b[0])))
    return head, children


@st.composite
def trees(draw) -> tuple[Block, ...]:
    known = draw(st.lists(st.sampled_from(range(len(KNOWN))), unique=True, max_size=len(KNOWN)))
    blocks = [KNOWN[i] for i in known]
    for block in draw(st.lists(generic_blocks(), max_size=4, unique_by=lambda b: b[0])):
        blocks.insert(draw(st.integers(0, len(blocks))), block)
    return tuple(blocks)


@st.composite
def styled(draw, blocks: tuple[Block, ...]) -> str:
    """Render ``blocks`` with a random style that carries no meaning."""
    width = draw(st.integers(1, 4))
    ending = st.sampled_from(["\n", "\r\n"])
    out: list[str] = ["\ufeff"] if draw(st.booleans()) else []

    def filler() -> None:
        for _ in range(draw(st.integers(0, 2))):
            spaces = " " * draw(st.integers(0, 6))
            comment = draw(st.sampled_from(["", "# note", "#", "# key: value", "# with \"quotes\" and #"]))
            out.append(spaces + comment + draw(ending))

    def emit(block: Block, depth: int) -> None:
        filler()
        rendered = " ".join(quote(word) if word else '""' for word in block[0])
        gap = " " * draw(st.integers(1, 2))
        if draw(st.booleans()):
            rendered = rendered.replace(" ", gap) if '"' not in rendered else rendered
        out.append(" " * (width * depth) + rendered + " " * draw(st.integers(0, 2)) + draw(ending))
        for child in block[1]:
            emit(child, depth + 1)

    for block in blocks:
        emit(block, 0)
    filler()
    text = "".join(out)
    if draw(st.booleans()):
        text = text.rstrip("\r\n")
    return text
