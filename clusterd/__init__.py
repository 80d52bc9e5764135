"""clusterd: the BQN cluster daemon (membership, election, configuration sync)."""

__version__ = "0.1.0"
