"""Why a drill, a step or a fault cannot go as asked: the one refusal the drills raise (a target
not opted in, a fault no provider can make, a member without the capacity to take over), with
the CamelCase reason the run, the step or the finding records."""

from __future__ import annotations

from modeldr.kube.errors import OperatorError


class Refusal(OperatorError):
    """The drill, step or fault cannot go as asked; `reason` is its CamelCase reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
