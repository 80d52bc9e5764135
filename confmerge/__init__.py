"""confmerge: diff and merge BQN configuration backups, losslessly.

The public engine API: what ``clusterd`` and any other program use, imported
from here and nowhere deeper (``from confmerge import parse, merge``). Text in,
trees and results out (:func:`parse`, :func:`validate`, :func:`diff`,
:func:`merge`, :func:`adopt`, :func:`cluster_part`, :func:`cluster_digest`, :func:`cluster_tree`,
:func:`render`); results as plain data for JSON / YAML (``*_data``, :func:`dump`)
and as text for a person (``*_text``, ``merge_*``, :func:`printable`); the
files at the edge (:func:`read_text`, :func:`write_atomic`, and its parts
:func:`write_temp`, :func:`sync_directory` for a caller that swaps files
itself); and the one way both programs run a command (:func:`run_program`, :func:`guarded`).
"""

__version__ = "0.1.0"

from .check import references, validate
from .cluster import cluster_tree
from .data import change_data, config_data, diff_data, dump, report_data
from .diagnostics import ConfError, Diagnostic, Severity, printable
from .diff import Change, Diff, FieldChange, Op, Scope, diff
from .files import read_text, sync_directory, write_atomic, write_temp
from .merge import (Action, Conflict, Edit, MergeResult, Unclassified, adopt, choose_primary, cluster_digest,
                    cluster_part, merge)
from .parser import parse
from .present import PrintableFormatter, diff_summary, diff_text, merge_conflicts, merge_dry_run, merge_summary
from .render import render
from .rules import Rule, Rules, default_rules, effective_class, rules_with
from .tree import Config, Identity, MergeClass, Node
from .cli import EXIT_DIFFERENT, EXIT_OK, EXIT_TROUBLE, guarded, run_program

__all__ = [
    "__version__",
    # text in, trees and results out
    "parse", "validate", "references", "render", "diff", "merge", "adopt", "cluster_part", "cluster_digest",
    "cluster_tree", "choose_primary",
    # the tree and the rules that classify it
    "Config", "Node", "Identity", "MergeClass", "Rule", "Rules", "default_rules", "rules_with", "effective_class",
    # results
    "Diff", "Change", "FieldChange", "Op", "Scope", "MergeResult", "Conflict", "Edit", "Action", "Unclassified",
    # bad input
    "ConfError", "Diagnostic", "Severity",
    # presentation: plain data, and text for a person
    "config_data", "diff_data", "change_data", "report_data", "dump",
    "diff_text", "diff_summary", "merge_summary", "merge_dry_run", "merge_conflicts", "printable", "PrintableFormatter",
    # the edges: files, and running a command
    "read_text", "write_atomic", "write_temp", "sync_directory", "guarded", "run_program", "EXIT_OK", "EXIT_DIFFERENT", "EXIT_TROUBLE",
]
