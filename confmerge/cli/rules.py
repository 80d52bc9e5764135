"""``confmerge rules``: the merge classes in effect, and how they classify a backup.

Without a backup it prints the rules as a rules file that can be saved and
edited (the defaults, then ``--rules``; a pattern given again keeps only its
last class, at its last place, which decides the same way). With a backup it
prints the class of every section, and of every statement whose class differs
from its section's, with the rule that decided it.
"""

from __future__ import annotations

import argparse
import json
import re
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from ..data import dump
from ..diagnostics import printable
from ..rules import Rule, Rules, statement_class
from ..tree import Config, MergeClass, Node
from . import EXIT_OK, command, load, load_rules, rules_option

_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/*?-]*$")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, nargs="?", metavar="FILE",
                        help="a backup: print the class of each of its sections and the rule that decided it")
    rules_option(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="text (a rules file, or a table for a backup) or json")


@command("rules", "print the merge classes in effect (defaults, overridden by --rules), or how they classify a backup",
         _arguments)
def run(args: argparse.Namespace) -> int:
    rules = load_rules(args)
    if args.file is None:
        effective = effective_rules(rules)
        if args.format == "json":
            dump([_rule_data(rule) for rule in effective], "json")
        else:
            print(printable(rules_text(rules, effective)), end="")
        return EXIT_OK
    rows = classify(load(args.file, rules), rules)
    if args.format == "json":
        dump(rows, "json")
    else:
        width = max((len(_where(row)) for row in rows), default=0)
        for row in rows:
            print(printable(f"{_where(row):<{width}}  {row['class']:<12}  {row['source'] or '(no rule)'}", one_line=True))
    return EXIT_OK


def effective_rules(rules: Rules) -> list[Rule]:
    """Each pattern once, with its last class at its last place: decides exactly as ``rules`` does."""
    last = {rule.pattern: k for k, rule in enumerate(rules.rules)}
    return [rule for k, rule in enumerate(rules.rules) if last[rule.pattern] == k]


def rules_text(rules: Rules, effective: list[Rule]) -> str:
    overridden: dict[str, list[Rule]] = {}
    for rule in rules.rules:
        if rule not in effective:
            overridden.setdefault(rule.pattern, []).append(rule)
    lines = ["# confmerge rules in effect: the defaults, then --rules (a later pattern wins).",
             "# A section no pattern names is unclassified.", "classes:"]
    entries = [(f"  {_key(rule.pattern)}: {rule.merge_class.value}", rule) for rule in effective]
    width = max(len(entry) for entry, _ in entries) if entries else 0
    for entry, rule in entries:
        note = rule.source
        if rule.pattern in overridden:
            note += "; overrides " + ", ".join(f"{r.merge_class.value} at {r.source}" for r in overridden[rule.pattern])
        lines.append(f"{entry:<{width}}  # {note}")
    return "\n".join(lines) + "\n"


def _key(pattern: str) -> str:
    return pattern if _PLAIN.match(pattern) else json.dumps(pattern)


def _rule_data(rule: Rule) -> dict[str, Any]:
    return {"pattern": rule.pattern, "class": rule.merge_class.value, "source": rule.source}


def _deciding(rules: Rules, text: str, statement_level: bool) -> Rule | None:
    return next((r for r in reversed(rules.rules) if r.statement_level == statement_level and fnmatchcase(text, r.pattern)),
                None)


def classify(config: Config, rules: Rules) -> list[dict[str, Any]]:
    """Each section's class and deciding rule; each statement whose class differs from its block's."""
    rows: list[dict[str, Any]] = []
    for section in config.root.entries:
        cls = section.merge_class or MergeClass.UNCLASSIFIED
        rule = _deciding(rules, str(section.identity), False)
        rows.append({"section": str(section.identity), "statement": None, "line": section.line, "class": cls.value,
                     "source": f"{rule.source} ({rule.pattern})" if rule else None})
        _statements(section, section, cls, str(section.identity), (), rules, rows)
    return rows


def _statements(section: Node, parent: Node, inherited: MergeClass, path: str, where: tuple[str, ...],
                rules: Rules, rows: list[dict[str, Any]]) -> None:
    for child in parent.entries:
        child_path = f"{path} / {child.identity}"
        child_where = (*where, str(child.identity))
        cls = statement_class(child, parent, inherited)
        if child.merge_class is not None:
            rule = _deciding(rules, child_path, True)
            source = f"{rule.source} ({rule.pattern})" if rule else None
        else:
            source = "not in the format" if cls is not inherited else None
        if cls is not inherited:
            rows.append({"section": str(section.identity), "statement": " / ".join(child_where), "line": child.line,
                         "class": cls.value, "source": source})
        _statements(section, child, cls, child_path, child_where, rules, rows)


def _where(row: dict[str, Any]) -> str:
    return f"{row['section']} / {row['statement']}" if row["statement"] else row["section"]
