"""modeldr: serve BERT/Transformer models from a primary and a standby cluster.

Disaster-recovery drills prove that the standby takes over.
"""

__version__ = "0.1.0"
