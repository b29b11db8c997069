"""Pure translation of a pod's first container into a local process: command, env, probes.

No I/O here, so it is unit-tested directly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class PodSpecError(ValueError):
    """The pod asks for something the process runtime cannot do; said on the pod's status."""


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known names are replaced, unknown ones kept, $$ escapes."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR_REF.sub(replace, value)


def field_ref(pod: dict[str, Any], field_path: str, pod_ip: str, node_ip: str) -> str:
    """Resolve a downward-API fieldRef the way the kubelet does for the fields we support."""
    metadata = pod.get("metadata", {})
    spec = pod.get("spec", {})
    if field_path == "status.podIP":
        return pod_ip
    if field_path == "status.podIPs":
        return pod_ip
    if field_path == "status.hostIP":
        return node_ip
    if field_path == "metadata.name":
        return str(metadata.get("name", ""))
    if field_path == "metadata.namespace":
        return str(metadata.get("namespace", ""))
    if field_path == "metadata.uid":
        return str(metadata.get("uid", ""))
    if field_path == "spec.nodeName":
        return str(spec.get("nodeName", ""))
    if field_path == "spec.serviceAccountName":
        return str(spec.get("serviceAccountName", "default"))
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", field_path)
    if match:
        return str((metadata.get(match.group(1)) or {}).get(match.group(2), ""))
    raise PodSpecError(f"fieldRef {field_path!r} is not supported by the sandbox process runtime")


#: Reads key `key` of Secret `name` in the pod's namespace: its decoded value, or None when
#: the Secret or the key does not exist.
SecretLookup = Callable[[str, str], "str | None"]


def secret_key_ref(name: str, ref: dict[str, Any], secret: SecretLookup | None) -> str | None:
    """A secretKeyRef's value, as the kubelet resolves it (None: optional and missing)."""
    secret_name, key = str(ref.get("name", "")), str(ref.get("key", ""))
    value = secret(secret_name, key) if secret is not None else None
    if value is None and not ref.get("optional"):
        # The kubelet's CreateContainerConfigError message for a missing Secret or key.
        raise PodSpecError(
            f"env {name}: couldn't find key {key} in Secret {secret_name} (or the Secret)"
        )
    return value


def container_env(
    pod: dict[str, Any],
    container: dict[str, Any],
    pod_ip: str,
    node_ip: str,
    secret: SecretLookup | None = None,
) -> dict[str, str]:
    """The container's environment: literal values (with $(VAR) expansion), fieldRefs and
    secretKeyRefs (read through `secret`)."""
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        name = item["name"]
        value_from = item.get("valueFrom") or {}
        if "value" in item and item["value"] is not None:
            env[name] = expand(str(item["value"]), env)
        elif value_from.get("fieldRef"):
            env[name] = field_ref(pod, value_from["fieldRef"]["fieldPath"], pod_ip, node_ip)
        elif value_from.get("secretKeyRef"):
            value = secret_key_ref(name, value_from["secretKeyRef"], secret)
            if value is not None:
                env[name] = value
        elif value_from:
            raise PodSpecError(
                f"env {name}: only literal values, fieldRef and secretKeyRef are supported by "
                "the sandbox"
            )
        else:
            env[name] = ""
    return env


def container_argv(container: dict[str, Any], env: dict[str, str]) -> list[str]:
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    if not command:
        raise PodSpecError(
            f"container {container.get('name')!r} has no command: the process runtime cannot "
            "read an image's entrypoint, so the pod must name its command"
        )
    return [expand(str(part), env) for part in command + args]


@dataclass(frozen=True)
class Probe:
    kind: str  # "httpGet" | "tcpSocket" | "exec"
    port: int = 0
    path: str = "/"
    scheme: str = "HTTP"
    command: tuple[str, ...] = ()
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3


def _port(value: Any, container: dict[str, Any]) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    for port in container.get("ports") or []:
        if port.get("name") == value:
            return int(port["containerPort"])
    raise PodSpecError(f"probe port {value!r} names no container port")


def parse_probe(probe: dict[str, Any] | None, container: dict[str, Any]) -> Probe | None:
    if not probe:
        return None
    common = {
        "initial_delay": float(probe.get("initialDelaySeconds") or 0),
        "period": float(probe.get("periodSeconds") or 10),
        "timeout": float(probe.get("timeoutSeconds") or 1),
        "success_threshold": int(probe.get("successThreshold") or 1),
        "failure_threshold": int(probe.get("failureThreshold") or 3),
    }
    if "httpGet" in probe:
        http = probe["httpGet"]
        return Probe(
            "httpGet",
            port=_port(http["port"], container),
            path=str(http.get("path") or "/"),
            scheme=str(http.get("scheme") or "HTTP"),
            **common,  # type: ignore[arg-type]
        )
    if "tcpSocket" in probe:
        return Probe("tcpSocket", port=_port(probe["tcpSocket"]["port"], container), **common)  # type: ignore[arg-type]
    if "exec" in probe:
        return Probe("exec", command=tuple(probe["exec"].get("command") or ()), **common)  # type: ignore[arg-type]
    raise PodSpecError(f"probe kind {sorted(probe)} is not supported by the sandbox")


@dataclass
class ProbeTracker:
    """Consecutive success/failure counting with Kubernetes' thresholds."""

    probe: Probe
    healthy: bool
    successes: int = 0
    failures: int = 0

    def record(self, ok: bool) -> bool:
        """Record one result; return True when the healthy state flipped."""
        if ok:
            self.successes += 1
            self.failures = 0
            if not self.healthy and self.successes >= self.probe.success_threshold:
                self.healthy = True
                return True
        else:
            self.failures += 1
            self.successes = 0
            if self.healthy and self.failures >= self.probe.failure_threshold:
                self.healthy = False
                return True
        return False


def restart_backoff(restarts: int) -> float:
    """Seconds to wait before restarting an exited container (CrashLoopBackOff, compressed)."""
    return float(min(10, 2 ** max(0, restarts - 1))) if restarts else 0.0


def should_restart(policy: str, exit_code: int) -> bool:
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return exit_code != 0
    return False


# The kubelet's bounds on a termination message taken from the log (FallbackToLogsOnError).
LOG_MESSAGE_MAX_LINES = 80
LOG_MESSAGE_MAX_BYTES = 2048
START_MARKER = "--- "  # the runtime's line before each start in a pod's log file


def termination_message(container: dict[str, Any], exit_code: int, log_text: str) -> str:
    """What the kubelet puts in `terminated.message` when no termination-log file is written:
    with `terminationMessagePolicy: FallbackToLogsOnError` and a failed exit, the tail of
    the container's log of this run (at most 80 lines and 2048 bytes); otherwise nothing."""
    if container.get("terminationMessagePolicy") != "FallbackToLogsOnError" or exit_code == 0:
        return ""
    lines = log_text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(START_MARKER)]
    run = lines[starts[-1] + 1 :] if starts else lines
    tail = "\n".join(run[-LOG_MESSAGE_MAX_LINES:])
    return tail.encode()[-LOG_MESSAGE_MAX_BYTES:].decode(errors="ignore")
