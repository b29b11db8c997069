"""`make bench-sandbox`: how long the sandbox takes to come up and what it costs idle.

Writes bench/results/sandbox.json and prints the figures. Brings the sandbox down and up
(cold: no cluster state; warm: already running), so run it when nothing else uses it.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from sandbox import daemons
from sandbox.api import RUNTIME, RUNTIME_MARKER, Sandbox
from sandbox.config import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results" / "sandbox.json"


def timed(fn: object) -> float:
    start = time.monotonic()
    fn()  # type: ignore[operator]
    return round(time.monotonic() - start, 2)


def sandbox_rss_mib(sandbox: Sandbox) -> dict[str, float]:
    """Resident memory of every sandbox process, by component, in MiB."""
    root = str(sandbox.paths.root)
    runtime_pid = daemons.running_pid(RUNTIME, RUNTIME_MARKER)
    by_component: dict[str, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            status = (proc / "status").read_text()
        except OSError:
            continue
        argv0 = cmdline[0].decode(errors="replace")
        if root in argv0:
            component = Path(argv0).name
        elif (
            "prometheus" in argv0
            and "--web.listen-address=127.0.0.1" in b" ".join(cmdline).decode()
        ):
            component = "prometheus"
        elif runtime_pid and int(proc.name) == runtime_pid:
            component = "process-runtime"
        else:
            continue
        rss_kib = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")
        )
        by_component[component] = round(by_component.get(component, 0.0) + rss_kib / 1024, 1)
    return dict(sorted(by_component.items()))


def main() -> int:
    sandbox = Sandbox()
    tools = timed(
        lambda: subprocess.run(
            ["bash", "scripts/tools.sh"], cwd=REPO_ROOT, check=True, capture_output=True
        )
    )
    sandbox.down()
    cold = timed(sandbox.up)
    warm = timed(sandbox.up)
    time.sleep(20)  # let the control planes settle before measuring memory
    rss = sandbox_rss_mib(sandbox)
    result = {
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "warm_make_tools_s": tools,
        "sandbox_up_cold_s": cold,
        "sandbox_up_warm_s": warm,
        "idle_rss_mib_total": round(sum(rss.values()), 1),
        "idle_rss_mib_by_component": rss,
        "note": "cold = no cluster state (tools already built); warm = everything already running",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {RESULTS.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
