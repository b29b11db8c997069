"""A dry run's step plan: for each step, what it would touch, in which member cluster, and
who would act, resolved with the fault drivers' read-only `plan()` and the target's status
now, touching nothing (no journal entry, no inject, no switch). Blocking (member reads);
the run calls it in a worker thread.

`cluster: active` is resolved with the cluster active now: a step after a failover would
aim at the cluster active then, which the step's message says.
"""

from __future__ import annotations

from modeldr.api.base import truncate
from modeldr.api.drillplan import Action, DrillPlanSpec, Step
from modeldr.api.drillstatus import PlannedStep
from modeldr.drills.faults.base import Aim
from modeldr.drills.faults.params import FaultParameters
from modeldr.drills.faults.registry import driver_for
from modeldr.drills.refusal import Refusal
from modeldr.drills.target import Target, resolve_role
from modeldr.kube.constants import Role
from modeldr.kube.members import MemberRegistry

# Who performs a step's action: the operator's own switch (the ModelDeployment annotation).
ACTION_PROVIDER = "operator"


def action_plan(action: Action, cluster: str, role: Role) -> str:
    """What an action step would do, in words."""
    if action.type == "Load":
        ramp = f", reached over {action.ramp_seconds} s" if action.ramp_seconds else ""
        return f"the probe would send {action.rate_per_second:g} requests/s{ramp}"
    if action.type in ("Failover", "Failback"):
        return f"the operator would switch traffic to {cluster} ({role})"
    return "touches nothing; measures for the step's duration"


def plan_step(
    members: MemberRegistry,
    plan: DrillPlanSpec,
    target: Target,
    step: Step,
    seed: int,
    active: str | None,
) -> PlannedStep:
    if step.action is not None:
        role: Role = "standby" if step.action.type == "Failover" else "primary"
        moves = step.action.type in ("Failover", "Failback")
        return PlannedStep(
            step=step.name,
            kind="action",
            type=step.action.type,
            cluster=target.cluster(role) if moves else None,
            role=role if moves else None,
            provider=ACTION_PROVIDER if moves else None,
            message=action_plan(step.action, target.cluster(role), role),
        )
    fault = step.fault
    assert fault is not None
    planned = PlannedStep(step=step.name, kind="fault", type=fault.type)
    try:
        driver = driver_for(fault.type)
        planned.provider = driver.provider
        role = resolve_role(target, fault.cluster, active)
        where = target.placement(role)
        planned.cluster, planned.role = where.cluster, role
        chosen_seed = fault.seed if fault.seed is not None else seed
        aim = Aim(where, fault, chosen_seed, plan.blast_radius.max_pods_percent)
        result = driver.choose(members, aim)
    except Refusal as exc:
        planned.reason, planned.message = exc.reason, truncate(exc.message)
        return planned
    except Exception as exc:  # a member unreachable, no member Secret
        planned.reason, planned.message = (
            "MemberUnavailable",
            truncate(f"{type(exc).__name__}: {exc}"),
        )
        return planned
    planned.targets = list(result.targets)
    planned.seed = result.seed if result.seed is not None else chosen_seed
    note = ""
    if fault.cluster == "active":
        note = f" (cluster active resolved now: {where.cluster}; at the step's start it may differ)"
    node = FaultParameters.of(result.parameters).node
    on_node = f" on node {node}" if node and node not in result.targets else ""
    planned.message = truncate(
        f"{fault.type} would act on {', '.join(result.targets) or 'nothing'}{on_node} in "
        f"{where.cluster} ({role}) through {driver.provider}{note}"
    )
    return planned


def plan_steps(
    members: MemberRegistry, plan: DrillPlanSpec, target: Target, seed: int, active: str | None
) -> list[PlannedStep]:
    return [plan_step(members, plan, target, step, seed, active) for step in plan.steps]
