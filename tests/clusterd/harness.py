"""The tests' clusters are the demo's: :mod:`clusterd.local` (``Supervised`` restarts a daemon that exits)."""

from clusterd.local import FIXTURES, Cluster, Supervised, free_base, status_of, wait_for

__all__ = ["FIXTURES", "Cluster", "Supervised", "free_base", "status_of", "wait_for"]
