"""Traffic providers: how a ModelDeployment's clients are pointed at the active cluster.

`provider_for(name)` returns a new provider for `spec.traffic.provider`; the modules are
imported on first use, so a provider's dependencies load only when it is selected.
"""

from __future__ import annotations

import importlib

from modeldr.operator.traffic.base import (
    ClusterTarget,
    Owner,
    TrafficError,
    TrafficProvider,
    TrafficTarget,
)

# spec.traffic.provider -> (module, class)
PROVIDERS: dict[str, tuple[str, str]] = {
    "endpointslice": ("modeldr.operator.traffic.endpointslice", "EndpointSliceProvider"),
    "gatewayapi": ("modeldr.operator.traffic.gatewayapi", "GatewayAPIProvider"),
    "haproxy": ("modeldr.operator.traffic.haproxy", "HAProxyProvider"),
    "webhook": ("modeldr.operator.traffic.webhook", "WebhookProvider"),
}


def provider_for(name: str) -> TrafficProvider:
    """A new instance of the provider `name`; ValueError for an unknown name.

    Providers may keep per-process state (the webhook remembers what it delivered), so the
    caller should create one per provider name and reuse it.
    """
    try:
        module_name, class_name = PROVIDERS[name]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise ValueError(f"unknown traffic provider {name!r} (known: {known})") from None
    provider: TrafficProvider = getattr(importlib.import_module(module_name), class_name)()
    return provider


__all__ = [
    "PROVIDERS",
    "ClusterTarget",
    "Owner",
    "TrafficError",
    "TrafficProvider",
    "TrafficTarget",
    "provider_for",
]
