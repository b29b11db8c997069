"""A run as JUnit XML (junitparser): one test suite per run, a test case per check (each step
expectation, the steady states, each gate, abort condition and model check); failures and
errors carry the measured values; properties hold the verdict, the RTO and the active
cluster; the fault journal is the suite's system-out. CI systems show a failed drill as
failed tests with the numbers that failed them."""

from __future__ import annotations

from junitparser import Error, Failure, Skipped, SystemOut, TestCase, TestSuite

from modeldr.api.base import truncate
from modeldr.client.reportdata import ReportData


def render(data: ReportData) -> str:
    s = data.status
    suite = TestSuite(f"drill {data.namespace}/{data.name}")
    for name, value in (
        ("run", data.name),
        ("plan", data.plan_name),
        ("namespace", data.namespace),
        ("phase", s.phase.value),
        ("reason", s.reason),
        ("message", s.message),
        ("rtoSeconds", None if s.rto_seconds is None else f"{s.rto_seconds:.3f}"),
        ("activeCluster", s.active_cluster),
        ("seed", s.seed),
        ("startedAt", s.started_at.isoformat() if s.started_at else None),
        ("finishedAt", s.finished_at.isoformat() if s.finished_at else None),
        ("dryRun", "true" if data.dry_run else None),
    ):
        if value is not None:
            suite.add_property(name, str(value))
    for check in data.checks():
        case = TestCase(check.name, classname=check.group, time=check.seconds or 0.0)
        if check.outcome == "failed":
            case.result = [Failure(truncate(check.message), "DrillFailure")]
            case.result[0].text = check.message
        elif check.outcome == "error":
            case.result = [Error(truncate(check.message), "DrillError")]
            case.result[0].text = check.message
        elif check.outcome == "skipped":
            case.result = [Skipped(truncate(check.message))]
        suite.add_testcase(case)
    if data.dry_run and s.dry_run is not None:
        for planned in s.dry_run.steps:
            case = TestCase(planned.step, classname="dryRun", time=0.0)
            if planned.reason:
                case.result = [Error(f"{planned.reason}: {planned.message}", planned.reason)]
            suite.add_testcase(case)
    if s.started_at is not None:
        suite.timestamp = s.started_at.isoformat()
    journal = [
        f"{f.type} {f.id} in {f.cluster} on {', '.join(f.targets) or '-'}: {f.state}, applied "
        f"{f.applied_at.isoformat() if f.applied_at else '-'}, undone "
        f"{f.undone_at.isoformat() if f.undone_at else 'NOT UNDONE'}"
        for f in s.faults
    ]
    suite.append(SystemOut("\n".join([f"verdict: {s.phase} ({s.reason}): {s.message}", *journal])))
    # One <testsuite> as the document root (the schema allows it; junitparser's <testsuites>
    # carries a `skipped` attribute the Jenkins/Ant schema does not know).
    suite.update_statistics()
    # The run's wall time, not the sum of its checks (gates measure during steps).
    suite.time = round(data.duration_seconds or 0.0, 3)
    out: bytes = suite.tostring()
    return '<?xml version="1.0" encoding="utf-8"?>\n' + out.decode() + "\n"
