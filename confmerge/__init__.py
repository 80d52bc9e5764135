"""confmerge: diff and merge BQN configuration backups, losslessly."""

__version__ = "0.1.0"
