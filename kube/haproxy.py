"""The admin's HAProxy as the operator's settings name it (the haproxy traffic provider writes
there; a drill's probe enters at a ModelDeployment's frontend on its bind address)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from modeldr.kube.errors import ConfigError


@dataclass(frozen=True)
class HAProxySettings:
    """The admin's HAProxy, from the operator's environment (the chart's haproxy values)."""

    config_dir: Path
    master_socket: Path
    runtime_socket: Path
    bind_address: str = "127.0.0.1"
    port_min: int = 1
    port_max: int = 65535

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> HAProxySettings:
        env = dict(os.environ if env is None else env)
        names = ("MODELDR_HAPROXY_CONFIG_DIR", "MODELDR_HAPROXY_MASTER_SOCKET")
        missing = [n for n in (*names, "MODELDR_HAPROXY_RUNTIME_SOCKET") if not env.get(n)]
        if missing:
            raise ConfigError(
                "the haproxy traffic provider is not set up in this operator: "
                + ", ".join(missing)
                + " not set (docs/traffic.md)"
            )
        low, high = parse_ports(env.get("MODELDR_HAPROXY_PORTS", "1-65535"))
        return cls(
            config_dir=Path(env["MODELDR_HAPROXY_CONFIG_DIR"]),
            master_socket=Path(env["MODELDR_HAPROXY_MASTER_SOCKET"]),
            runtime_socket=Path(env["MODELDR_HAPROXY_RUNTIME_SOCKET"]),
            bind_address=env.get("MODELDR_HAPROXY_BIND_ADDRESS", "").strip() or "127.0.0.1",
            port_min=low,
            port_max=high,
        )

    def entry_url(self, frontend_port: int) -> str:
        """Where clients of a ModelDeployment's frontend send their requests."""
        host = f"[{self.bind_address}]" if ":" in self.bind_address else self.bind_address
        return f"http://{host}:{frontend_port}"


def parse_ports(raw: str) -> tuple[int, int]:
    """The range "19400-19499" as (19400, 19499); ConfigError for anything else."""
    low, sep, high = raw.strip().partition("-")
    try:
        bounds = (int(low), int(high if sep else low))
    except ValueError:
        raise ConfigError(
            f"MODELDR_HAPROXY_PORTS={raw!r} is not a port range like 19400-19499"
        ) from None
    if not 1 <= bounds[0] <= bounds[1] <= 65535:
        raise ConfigError(f"MODELDR_HAPROXY_PORTS={raw!r} is not within 1-65535 in order")
    return bounds
