"""Merge classes: which sections are cluster-wide, server-specific or unclassified.

The defaults are the format page's (``rules.yaml`` beside this module); a
user's rules file, in the same form, is read after them and overrides them by
pattern. Patterns are compiled into one regular expression per level, so
classifying a large backup costs one match per section.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from .diagnostics import ConfError, Diagnostic
from .tree import Config, MergeClass, Node

SEPARATOR = " / "


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern and the class it gives, with where it was written."""

    pattern: str
    merge_class: MergeClass
    source: str

    @property
    def statement_level(self) -> bool:
        return SEPARATOR in self.pattern


class Rules:
    """An ordered list of rules; the last that matches decides."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        self._sections = _compile([r for r in rules if not r.statement_level])
        self._statements = _compile([r for r in rules if r.statement_level])

    def then(self, other: "Rules") -> "Rules":
        """These rules, overridden by ``other``."""
        return Rules(self.rules + other.rules)

    def section_class(self, identity: str) -> MergeClass:
        rule = _decide(self._sections, identity)
        return rule.merge_class if rule else MergeClass.UNCLASSIFIED

    def rule_for(self, identity: str) -> Rule | None:
        """The rule that decides ``identity``: a section's, or a statement path's (``SECTION / STATEMENT``).

        Each level has its own rules: ``*`` in a section pattern would also match
        across the separator, so a statement is never decided by a section rule.
        """
        return _decide(self._statements if SEPARATOR in identity else self._sections, identity)

    def classify(self, config: Config) -> None:
        """Set ``merge_class`` on every section and on statements a rule names.

        A statement no rule names has ``merge_class`` None: it follows its section.
        """
        for section in config.sections:
            section.merge_class = self.section_class(str(section.identity))
            if self._statements[0] is not None:
                self._classify_children(section, str(section.identity))

    def _classify_children(self, node: Node, path: str) -> None:
        for child in node.children:
            child_path = f"{path}{SEPARATOR}{child.identity}"
            rule = _decide(self._statements, child_path)
            child.merge_class = rule.merge_class if rule else None
            self._classify_children(child, child_path)


def statement_class(node: Node, parent: Node, inherited: MergeClass) -> MergeClass:
    """The class of ``node`` in ``parent``'s block, whose class is ``inherited``: the one home of the rule.

    A section's class is its rule's; a statement follows its block unless a
    rule names it; content the schema does not list inside a listed block is
    unclassified (format page, section 5).
    """
    if node.merge_class is not None:
        return node.merge_class
    if node.kind is None and parent.kind is not None:
        return MergeClass.UNCLASSIFIED
    return inherited


def has_cluster_inside(node: Node) -> bool:
    """Some statement below ``node`` is cluster-wide by a rule of its own (a statement-level rule)."""
    stack = list(node.children)
    while stack:
        child = stack.pop()
        if child.merge_class is MergeClass.CLUSTER:
            return True
        stack.extend(child.children)
    return False


def effective_class(section: Node, node: Node | None = None) -> MergeClass:
    """The class that governs ``node`` inside ``section``."""
    if node is not None and node.merge_class is not None and node is not section:
        return node.merge_class
    return section.merge_class or MergeClass.UNCLASSIFIED


_Compiled = tuple[re.Pattern[str] | None, tuple[Rule, ...]]


def _compile(rules: list[Rule]) -> _Compiled:
    if not rules:
        return None, ()
    ordered = tuple(reversed(rules))
    pattern = "|".join(f"(?P<r{i}>{fnmatch.translate(rule.pattern)})" for i, rule in enumerate(ordered))
    return re.compile(pattern), ordered


def _decide(compiled: _Compiled, text: str) -> Rule | None:
    regex, ordered = compiled
    if regex is None:
        return None
    match = regex.match(text)
    return ordered[int(match.lastgroup[1:])] if match and match.lastgroup else None


def load_rules(text: str, file: str) -> Rules:
    """Read a rules file: a ``classes`` mapping of pattern to class."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError
    from ruamel.yaml.reader import ReaderError

    try:
        data = YAML(typ="rt").load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfError([Diagnostic("error", line, column, f"not valid YAML: {error.problem}", file)]) from None
    except ReaderError as error:  # a character YAML does not allow: a position in the text, not a mark
        line = text.count("\n", 0, error.position) + 1
        column = error.position - text.rfind("\n", 0, error.position)
        character = f"U+{error.character:04X}" if isinstance(error.character, int) else repr(error.character)
        raise ConfError([Diagnostic("error", line, column, f"not valid YAML: the character {character} is not allowed",
                                    file)]) from None
    except RecursionError:
        raise ConfError([Diagnostic("error", 1, 1, "nested too deep for a rules file", file)]) from None
    if not isinstance(data, dict) or not isinstance(data.get("classes"), dict):
        raise ConfError([Diagnostic("error", 1, 1, "a rules file is a mapping with a 'classes' mapping of pattern: class", file)])
    classes = data["classes"]
    rules: list[Rule] = []
    problems: list[Diagnostic] = []
    for pattern, value in classes.items():
        line, column = (n + 1 for n in classes.lc.key(pattern)) if hasattr(classes, "lc") else (1, 1)
        try:
            merge_class = MergeClass(str(value))
        except ValueError:
            choices = ", ".join(m.value for m in MergeClass)
            problems.append(Diagnostic("error", line, column, f"class of '{pattern}' must be one of {choices}, got '{value}'", file))
            continue
        rules.append(Rule(str(pattern), merge_class, f"{file}:{line}"))
    if problems:
        raise ConfError(problems)
    return Rules(tuple(rules))


DEFAULT_RULES_FILE = "rules.yaml"


@cache
def default_rules() -> Rules:
    text = resources.files("confmerge").joinpath(DEFAULT_RULES_FILE).read_text(encoding="utf-8")
    return load_rules(text, f"<default {DEFAULT_RULES_FILE}>")


def rules_with(path: Path | None, text: str | None = None) -> Rules:
    """The defaults, overridden by the rules file at ``path`` if any."""
    if path is None:
        return default_rules()
    return default_rules().then(load_rules(text if text is not None else path.read_text(encoding="utf-8"), str(path)))
