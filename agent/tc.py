"""Running tc and ip for Latency: the route lookups, `tc -j qdisc show`, the commands of
tcrules' plan (one device at a time, undone on failure) and the removal of this agent's
roots. The decisions are tcrules'; this module only runs them."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from modeldr.agent import tcrules

log = logging.getLogger("modeldr.agent")
TIMEOUT_S = 10.0
# A device removed meanwhile (the pod's veth goes with the pod) takes its qdiscs with it;
# a root already gone is what a removal wants.
_GONE = ("Cannot find device", "No such device", "Invalid handle", "No such file")


class TcError(RuntimeError):
    pass


@dataclass(frozen=True)
class Outcome:
    state: str  # Applied | Unsupported | Error
    message: str = ""
    devices: tuple[str, ...] = ()


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    path = shutil.which(argv[0])
    if path is None:
        raise TcError(f"the {argv[0]} command (iproute2) is not installed on the agent")
    try:
        return subprocess.run(
            [path, *argv[1:]], capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TcError(f"{' '.join(argv)}: {exc}") from None


def _check(argv: list[str]) -> str:
    done = _run(argv)
    if done.returncode != 0:
        raise TcError(f"{' '.join(argv)} failed: {(done.stderr or done.stdout).strip()[:400]}")
    return done.stdout


def route_device(ip: str) -> str:
    family = "-6" if ":" in ip else "-4"
    try:
        listing = json.loads(_check(["ip", "-j", family, "route", "get", ip]) or "[]")
        return tcrules.route_device(listing, ip)
    except (ValueError, TcError) as exc:
        raise TcError(str(exc)) from None


def qdiscs() -> Any:
    try:
        return json.loads(_check(["tc", "-j", "qdisc", "show"]) or "[]")
    except ValueError as exc:
        raise TcError(f"tc -j qdisc show: {exc}") from None


def _delete(device: str) -> None:
    done = _run(tcrules.delete_command(device))
    text = (done.stderr or done.stdout).strip()
    if done.returncode != 0 and not any(word in text for word in _GONE):
        raise TcError(f"removing {tcrules.HANDLE} from {device} failed: {text[:400]}")


def make(delay: tcrules.Delay, tag: str) -> Outcome:
    """Routes, a check of every device, then the commands device by device. A device that
    fails is undone, and so is every device done before it: all of the order or nothing."""
    try:
        routes = {ip: route_device(ip) for ip in delay.ips}
        listing = qdiscs()
    except TcError as exc:
        return Outcome("Error", f"{exc}; nothing was changed")
    planned = tcrules.plan(delay, routes, listing, tag)
    if isinstance(planned, tcrules.Refusal):
        return Outcome("Unsupported", planned.why)
    done: list[str] = []
    for device, commands in planned.commands.items():
        made_root = False
        for argv in commands:
            result = _run(argv)
            if result.returncode != 0:
                why = f"{' '.join(argv)} failed: {(result.stderr or result.stdout).strip()[:400]}"
                # Our root is deleted only where this agent's own `add` made it.
                undone = undo(done + ([device] if made_root else []))
                return Outcome("Error", f"{why}; {undone}")
            made_root = made_root or (argv[2] == "add" and "root" in argv)
        done.append(device)
    return Outcome("Applied", "", tuple(done))


def undo(devices: list[str]) -> str:
    """Deletes modeldr's root on these devices (made by this agent); says what happened."""
    failed = []
    for device in devices:
        try:
            _delete(device)
        except TcError as exc:
            failed.append(str(exc))
    return "; ".join(failed) if failed else "nothing was left changed"


def sweep(tag: str, backed: set[str], half_made: bool) -> list[str]:
    """Deletes this agent's roots on devices no held order backs (and half-made ones at
    start); returns the devices. TcError when the listing or a deletion fails."""
    stale = tcrules.stale(qdiscs(), tag, backed, half_made)
    for device in stale:
        _delete(device)
    return stale
