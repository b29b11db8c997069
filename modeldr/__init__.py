"""modeldr: serve BERT/Transformer models from a primary and a standby cluster, and prove failover with drills."""

__version__ = "0.1.0"
