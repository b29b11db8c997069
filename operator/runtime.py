"""What the operator builds once at startup and every handler shares: the settings, the hub
client, the member registry, the per-cluster monitors and one instance per traffic
provider. It reaches handlers through kopf's memo (the operator memo, which kopf copies into
every object's memo), so there is no module-level state and a test builds its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import kopf
from kubernetes import client

from modeldr.kube import journalkey
from modeldr.kube.activedrills import ActiveDrills
from modeldr.kube.config import OperatorConfig
from modeldr.kube.constants import RUNTIME_KEY
from modeldr.kube.kubeconfig import hub_configuration
from modeldr.kube.members import MemberRegistry
from modeldr.kube.seal import JournalSeal
from modeldr.kube.tenancy import Tenancy
from modeldr.operator.daemonstate import Writes
from modeldr.operator.monitor import Monitors
from modeldr.operator.traffic import TrafficProvider, provider_for

# Keys in kopf's memos.
CONFIG_KEY = "config"  # the operator memo: the settings `modeldr operator` parsed
WAKE_KEY = "wake"  # an object's memo: wakes its daemon
WRITES_KEY = "writes"  # an object's memo: its daemon's write guard


@dataclass
class Runtime:
    config: OperatorConfig
    hub: client.ApiClient
    members: MemberRegistry
    monitors: Monitors
    providers: dict[str, TrafficProvider] = field(default_factory=dict)
    drills: ActiveDrills = field(default_factory=ActiveDrills)
    # The TenantPolicies and freeze labels (what each hub namespace may do).
    tenancy: Tenancy = field(init=False)
    # The drills' journal seal: its key is read (or made) at startup (load_seal).
    seal: JournalSeal | None = None

    def __post_init__(self) -> None:
        self.tenancy = Tenancy(self.hub, self.config.namespace)

    @classmethod
    def build(cls, config: OperatorConfig, hub: client.ApiClient | None = None) -> Runtime:
        hub = hub or client.ApiClient(hub_configuration())
        members = MemberRegistry(hub, config)
        return cls(config, hub, members, Monitors(members))

    def provider(self, name: str) -> TrafficProvider:
        # One instance per provider: the webhook remembers what it delivered.
        if name not in self.providers:
            self.providers[name] = provider_for(name)
        return self.providers[name]

    def load_seal(self) -> None:
        """Blocking: the journal key from its Secret in the operator's namespace."""
        self.seal = JournalSeal(journalkey.load_or_create(self.hub, self.config.namespace))

    def stop(self) -> None:
        self.monitors.stop()


def config_of(memo: kopf.Memo) -> OperatorConfig:
    """The settings `modeldr operator` put in the memo; from the environment under a bare
    `kopf run`."""
    config = memo.get(CONFIG_KEY)
    return config if isinstance(config, OperatorConfig) else OperatorConfig.from_env()


def runtime_of(memo: kopf.Memo | dict[str, Any]) -> Runtime:
    runtime = memo.get(RUNTIME_KEY)
    if not isinstance(runtime, Runtime):
        raise RuntimeError("the operator runtime is not in kopf's memo: did startup run?")
    return runtime


def wake_event(memo: kopf.Memo | dict[str, Any]) -> asyncio.Event:
    """The object's wake-up: set by the event handler, awaited by its daemon."""
    event = memo.get(WAKE_KEY)
    if not isinstance(event, asyncio.Event):
        event = memo[WAKE_KEY] = asyncio.Event()
    return event


def writes_of(memo: kopf.Memo | dict[str, Any]) -> Writes:
    """The object's write guard, shared by its daemon and its deletion handler."""
    writes = memo.setdefault(WRITES_KEY, Writes())
    assert isinstance(writes, Writes)
    return writes
