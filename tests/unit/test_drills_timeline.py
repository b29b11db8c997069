"""drills/timeline.py's ready replicas per role (the report's replicas chart) and
drills/readiness.py's reading of them from the ModelDeployment's status."""

from __future__ import annotations

from modeldr.drills import timeline as module
from modeldr.drills.readiness import ready_replicas
from modeldr.drills.timeline import Timeline


def test_ready_replicas_are_kept_per_role_bounded_and_unknown_stays_unknown() -> None:
    line = Timeline(wall_offset=0.0, open_seconds=1.0)
    line.add_replicas(10.0, {"primary": 2, "standby": 1})
    line.add_replicas(12.0, None)  # the status unreadable: a gap, not 0
    line.add_replicas(14.0, {"standby": 3})
    assert [r.to_row() for r in line.replicas()] == [
        [10.0, 2, 1],
        [12.0, None, None],
        [14.0, None, 3],
    ]
    # An unreachable cluster's count is stale: left out.
    status = {"primary": {"readyReplicas": 2, "reachable": False}, "standby": {"readyReplicas": 1}}
    assert ready_replicas(status) == {"standby": 1}
    assert ready_replicas({}) is None
    many = Timeline(wall_offset=0.0, open_seconds=1.0)
    for i in range(module.MAX_REPLICA_POINTS + 1):
        many.add_replicas(float(i), {"primary": 1})
    kept = many.replicas()
    assert len(kept) <= module.MAX_REPLICA_POINTS // 2 + 1 and kept[0].t == 0.0
