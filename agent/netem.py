"""Is tc netem (the kernel's delay qdisc, sch_netem) available? Asked once at start.

The honest test is to try: add a netem qdisc on the loopback of a fresh, empty network
namespace (`unshare -n`), which touches no interface anyone uses and vanishes with the
namespace. Creating a namespace needs CAP_SYS_ADMIN, which the agent's DaemonSet does not
grant; without it the answer comes from the kernel's module list (a loaded or built-in
sch_netem shows in /sys/module, a loadable one under /lib/modules). Either way the reason is
kept, so an unsupported Latency order says why.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Netem:
    available: bool
    why: str


def _module_files(release: str) -> list[Path]:
    base = Path("/lib/modules") / release / "kernel/net/sched"
    return sorted(base.glob("sch_netem.ko*")) if base.is_dir() else []


def detect() -> Netem:
    release = platform.release()
    tc, unshare = shutil.which("tc"), shutil.which("unshare")
    if tc is None:
        return Netem(False, "the tc command (iproute2) is not installed on the agent")
    if unshare is not None:
        argv = [unshare, "-n", tc, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is not None and done.returncode == 0:
            return Netem(True, f"a netem qdisc was added in a scratch namespace (kernel {release})")
        if done is not None:
            lines = (done.stderr or done.stdout).strip().splitlines()
            text = lines[-1] if lines else "no output"
            if not text.lower().startswith("unshare"):  # tc itself answered: the kernel said no
                return Netem(
                    False,
                    f"kernel {release} has no tc netem (sch_netem): adding a netem qdisc in a "
                    f"scratch network namespace failed: {text}",
                )
    if Path("/sys/module/sch_netem").exists():
        return Netem(True, f"sch_netem is loaded in kernel {release}")
    if files := _module_files(release):
        return Netem(True, f"sch_netem is a loadable module of kernel {release}: {files[0]}")
    return Netem(
        False,
        f"kernel {release} has no tc netem: sch_netem is neither loaded (/sys/module) nor "
        f"under /lib/modules/{release} (uid {os.getuid()}, no scratch namespace to try in)",
    )
