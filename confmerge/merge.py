"""Unify a cluster's backups: :func:`merge`, :func:`adopt`, and the daemon's :func:`cluster_part` and :func:`cluster_digest`.

The engine is pure: trees in, new trees and a report out. It works in two
steps, each a module: *deciding* (:mod:`confmerge.decide`) compares the inputs
entry by entry and says, for each cluster-wide entry, whether the outputs have
it and which input's line they take; *building* (:mod:`confmerge.build`) edits
a copy of each input to match, touching only the lines that change, brings
what an added entry names, and checks every output. What it did is reported
in the values of :mod:`confmerge.result`; the cluster-wide part of a backup is
:mod:`confmerge.cluster`'s.

Server-specific and unclassified content is never decided: each output keeps
its own. A statement whose class a rule sets overrides its section's class.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from .build import Output, lookup
from .check import not_a_backup
from .cluster import cluster_digest, cluster_part, ordered
from .decide import Decider, decide_adoption, unclassified
from .diagnostics import ConfError, Diagnostic
from .resolve import Choice, ConflictKey
from .result import Action, Conflict, Edit, MergeResult, Unclassified
from .tree import Config, MergeClass, collector_paused

__all__ = [
    "Action", "Conflict", "Edit", "MergeResult", "Unclassified",
    "adopt", "choose_primary", "cluster_digest", "cluster_part", "merge",
]


def adopt(server: Config, cluster: Config) -> Config:
    """``server`` with its cluster-wide content replaced by ``cluster``'s: what a secondary applies.

    Cluster-wide entries the cluster lacks are removed, the ones it has are
    added or changed, and the rules take the cluster's order; server-specific
    and unclassified content stays byte for byte, and so does every entry that
    is equal in normal form. ``cluster`` may be :func:`cluster_part` text
    parsed, or a whole backup (only its cluster-wide content is read). Raises
    :class:`ConfError` if the result would not pass ``validate``.
    """
    with collector_paused():
        output = Output(server, {})
        output.apply(decide_adoption(server.root, cluster.root, MergeClass.UNCLASSIFIED, cluster), None, None, (), True)
        output.order([s.identity for s in cluster.root.entries if ordered(s)], "cluster")
        output.close_references(lambda target, origin: lookup((cluster, server), target, origin))
        output.finish()
        return output.config


def merge(configs: Sequence[Config], primary: int | None = None, base: Config | None = None,
          resolutions: Mapping[ConflictKey, Choice] | None = None) -> MergeResult:
    """Unify the cluster-wide content of ``configs``; one output per input, in input order.

    ``primary`` is an index into ``configs``; by default the input with the
    lowest ``bqn-id`` (none: 0), and a tie raises :class:`ConfError`. Without
    ``base``, entries are united and differing values resolved by priority
    (the primary, then by ``bqn-id``, hostname and text). With ``base`` (the last unified
    configuration or any common ancestor), a change or removal since the base
    made on some inputs and not on others is taken; changes that disagree are
    conflicts, resolved by priority.

    ``resolutions`` overrides that priority per conflict: a conflict's
    ``(section, statement)`` mapped to the input (an index) whose state of the
    entry every output takes, or :data:`~confmerge.resolve.BASE` for the
    base's; a rule-order conflict takes that input's (or the base's) rule
    order. A choice the conflict cannot take raises :class:`ConfError`.
    """
    if len(configs) < 2:
        raise ValueError("merge needs two configurations or more")
    if primary is None:
        primary = choose_primary(configs)
    elif not 0 <= primary < len(configs):
        raise ValueError(f"primary {primary} is not an input index")
    with collector_paused():
        decider = Decider(configs, primary, base, resolutions or {})
        decisions, order, reason = decider.decide_all()
        ranked = [configs[i] for i in decider.priority]
        positions: dict[int, dict[int, int]] = {}
        outputs = []
        for config in configs:
            output = Output(config, positions)
            output.apply(decisions, None, None, (), True)
            output.order(order, reason)
            output.close_references(lambda target, origin: lookup(ranked, target, origin))
            output.finish()
            outputs.append(output)
        return MergeResult(
            outputs=tuple(output.config for output in outputs),
            primary=primary,
            conflicts=tuple(decider.conflicts),
            edits=tuple(tuple(output.edits) for output in outputs),
            unclassified=tuple(item for number, config in enumerate(configs) for item in unclassified(config, number)),
        )


def choose_primary(configs: Sequence[Config]) -> int:
    """The input with the lowest ``bqn-id`` (a backup without one has 0, as a new BQN does).

    Two inputs sharing the lowest id raise :class:`ConfError` at their
    ``bqn-id`` lines: the guide's election cannot tell them apart. A file with
    nothing of a backup in it (``check.not_a_backup``: a server not configured
    yet, or no backup at all) can gain the cluster's configuration but is never
    the primary: an empty file must not win with the ``bqn-id`` it lacks.
    """
    refused = {i: problem for i, config in enumerate(configs) if (problem := not_a_backup(config)) is not None}
    if len(refused) == len(configs):
        raise ConfError(list(refused.values()))
    ids = {i: config.bqn_id or 0 for i, config in enumerate(configs) if i not in refused}
    lowest = min(ids.values())
    tied = [i for i, value in ids.items() if value == lowest]
    if len(tied) == 1:
        return tied[0]
    names = ", ".join(configs[i].file for i in tied)
    problems = []
    for i in tied:
        section = configs[i].section("bqn-id")
        line, column = (section.line, section.indent + 1) if section is not None else (1, 1)
        problems.append(Diagnostic(
            "error", line, column,
            f"bqn-id {lowest} is the lowest and is shared by {names}; name the primary (--primary FILE)",
            configs[i].file,
        ))
    raise ConfError(problems)

