"""The tests' clusters are the demo's: :mod:`clusterd.local`."""

from clusterd.local import FIXTURES, Cluster, free_base, status_of, wait_for

__all__ = ["FIXTURES", "Cluster", "free_base", "status_of", "wait_for"]
