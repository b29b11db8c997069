"""The operator's errors: one base, so a caller can tell "the operator said no, and why"
(a message an SRE can act on) from a bug. Each module raises the subclass of its concern.
"""

from __future__ import annotations


class OperatorError(Exception):
    """Base of every error the operator raises on purpose; the message says what to fix."""


class ConfigError(OperatorError, ValueError):
    """A MODELDR_* variable holds a value the operator cannot use; the message names it."""


class RenderError(OperatorError, ValueError):
    """The spec cannot be rendered (e.g. a model source this version cannot mount)."""


class ConflictError(OperatorError):
    """An object of the wanted name exists and belongs to someone else."""


class MemberError(OperatorError):
    """A member cluster cannot be used: no Secret, a bad kubeconfig, unreadable Secrets."""

    def __init__(self, cluster: str, message: str) -> None:
        super().__init__(f"member cluster {cluster!r}: {message}")
        self.cluster = cluster
        self.detail = message


class TrafficError(OperatorError):
    """The provider could not switch; the message says why in words an SRE can act on."""


class TrafficConflict(TrafficError):
    """A traffic object the provider would write is not this ModelDeployment's (another's, a
    person's, in another namespace): never adopted, never patched; Ready=False says which."""


class Closing(OperatorError):
    """The ModelDeployment is being deleted: no more writes to members or traffic."""
