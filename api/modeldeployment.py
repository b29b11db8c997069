"""Pydantic models of the ModelDeployment spec (crds/modeldr.io_modeldeployments.yaml).

The apiserver validates and defaults every object; these models give the operator typed access
and repeat the defaults so that a spec read before defaulting (or in a unit test) means the
same thing. Unknown fields are ignored: the CRD prunes them anyway.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from modeldr.api.base import ApiModel


class _Model(ApiModel):
    model_config = ConfigDict(frozen=True)


DEFAULT_STORE_SECRET = "modeldr-model-store"


class ModelStore(_Model):
    """spec.model.store: the object store of an s3:// source, as Secrets in each member
    namespace (keys endpoint, region, accessKeyId, secretAccessKey). The operator only names
    them in the pod; it never reads the credentials."""

    secret_name: str = DEFAULT_STORE_SECRET
    fallback_secret_name: str | None = None


class ModelSpec(_Model):
    name: str
    task: Literal["sequence-classification", "feature-extraction"]
    source: str
    expected_digest: str
    revision: str | None = None
    store: ModelStore = Field(default_factory=lambda: ModelStore.model_validate({}))


class Batching(_Model):
    max_batch_size: int = 32
    max_batch_delay_ms: int = 5
    max_queue: int = 256


class EnvVar(_Model):
    name: str
    value: str = ""


class RuntimeSpec(_Model):
    image: str
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent",
    )
    port: int = 8080
    batching: Batching = Field(default_factory=lambda: Batching.model_validate({}))
    env: list[EnvVar] = Field(default_factory=list)


class Resources(_Model):
    gpus_per_replica: int = 1
    gpu_product: str | None = None
    cpu: str | None = None
    memory: str | None = None


class MemberRuntime(_Model):
    """spec.clusters.<role>.runtime: what differs from spec.runtime in one cluster."""

    env: list[EnvVar] = Field(default_factory=list)


class MemberResources(_Model):
    """spec.clusters.<role>.resources: what differs from spec.resources in one cluster."""

    gpu_product: str | None = None


class MemberRef(_Model):
    cluster: str
    namespace: str
    runtime: MemberRuntime = Field(default_factory=lambda: MemberRuntime.model_validate({}))
    resources: MemberResources = Field(default_factory=lambda: MemberResources.model_validate({}))


class StandbyRef(MemberRef):
    mode: Literal["hot", "warm", "cold"]
    replicas: int | None = None


class Clusters(_Model):
    primary: MemberRef
    standby: StandbyRef


class Failback(_Model):
    mode: Literal["manual", "automatic"] = "manual"
    hold_down_seconds: int = 300


class ProbeURLs(_Model):
    """failover.probe.urls: the entry point clients use in each cluster (its load balancer,
    ingress or gateway), for members whose pod addresses the hub cannot route to."""

    primary: str | None = None
    standby: str | None = None


class ClientProbe(_Model):
    """failover.probe: each check of a cluster also asks, from the hub, the addresses clients
    reach, and the cluster fails the check when too few answer in time. On by default (the
    servers' own readiness, every entry address): a control plane that has just restarted
    reports its pods' stale Ready state, and only an answer says a server serves."""

    enabled: bool = True
    request: Literal["inference", "readiness"] = "readiness"
    text: str = "modeldr health probe"
    # 2 s: one lost SYN costs a second of retransmission, which a 1 s deadline would count
    # as a dead server (a lossy path must not fail a cluster over by itself).
    timeout_milliseconds: int = 2000
    # None: every entry address (at most MAX_PROBED of them), so that the traffic lists
    # only addresses that answered; a number: that many drawn at random each check.
    sample_size: int | None = None
    min_success_percent: int = 50
    urls: ProbeURLs = Field(default_factory=lambda: ProbeURLs.model_validate({}))

    def url_for(self, role: Literal["primary", "standby"]) -> str | None:
        return self.urls.primary if role == "primary" else self.urls.standby


class Failover(_Model):
    automatic: bool = True
    health_interval_seconds: int = 5
    failure_threshold: int = 3
    health_query: str | None = None
    # How long a requested switch (the annotation, a drill's Failover or Failback) waits for
    # its target to answer before it is dropped with a Warning.
    switch_wait_seconds: int = 300
    probe: ClientProbe = Field(default_factory=lambda: ClientProbe.model_validate({}))
    failback: Failback = Field(default_factory=lambda: Failback.model_validate({}))

    @field_validator("probe", mode="before")
    @classmethod
    def _probe_default(cls, value: Any) -> Any:
        # `probe: null` (a merge patch that removes it) means the default probe, not none:
        # the off switch is `enabled: false`.
        return {} if value is None else value


class EndpointSliceTraffic(_Model):
    service_name: str | None = None
    # What the hub slice lists: the active cluster's ready pod addresses (a flat network: the
    # sandbox, a multi-cluster mesh), or the addresses of the member nodes that run a ready
    # pod, on a NodePort of the member Service (pod addresses not routable: kind, most VPCs).
    addresses: Literal["pods", "nodePorts"] = "pods"
    node_port: int | None = Field(None, ge=30000, le=32767)

    @property
    def node_ports(self) -> bool:
        return self.addresses == "nodePorts"


class HTTPRouteRef(_Model):
    name: str
    namespace: str | None = None


class GatewayAPITraffic(_Model):
    http_route: HTTPRouteRef
    primary_backend: str | None = None
    standby_backend: str | None = None


class WebhookTraffic(_Model):
    url: str
    timeout_seconds: int = 5


class HAProxyTraffic(_Model):
    """traffic.haproxy: the frontend the operator keeps in the admin's HAProxy for this
    ModelDeployment (its port within the range the operator's settings allow)."""

    frontend_port: int = Field(ge=1, le=65535)


class ClusterWeights(_Model):
    """traffic.weights: each cluster's share of the requests in activeActive mode."""

    primary: int = Field(50, ge=0, le=100)
    standby: int = Field(50, ge=0, le=100)

    def of(self, role: Literal["primary", "standby"]) -> int:
        return self.primary if role == "primary" else self.standby


class Traffic(_Model):
    provider: Literal["endpointslice", "gatewayapi", "webhook", "haproxy"] = "endpointslice"
    # activeStandby: one cluster serves, the other waits (failover switches). activeActive:
    # both serve by their weights (haproxy, gatewayapi); one failing its health check loses
    # its weight.
    mode: Literal["activeStandby", "activeActive"] = "activeStandby"
    weights: ClusterWeights = Field(default_factory=lambda: ClusterWeights.model_validate({}))
    # How the haproxy provider spreads requests over the servers (HAProxy's `balance`).
    balance: Literal["roundrobin", "leastconn"] = "roundrobin"
    endpoint_slice: EndpointSliceTraffic = Field(
        default_factory=lambda: EndpointSliceTraffic.model_validate({}),
    )
    gateway_api: GatewayAPITraffic | None = None
    webhook: WebhookTraffic | None = None
    haproxy: HAProxyTraffic | None = None

    @property
    def active_active(self) -> bool:
        return self.mode == "activeActive"


class GoldenSetConfigMap(_Model):
    name: str
    key: str = "golden.jsonl"


class GoldenSetSource(_Model):
    config_map_ref: GoldenSetConfigMap


class Evaluation(_Model):
    """Re-evaluation of the model after every switch of the active cluster."""

    golden_set: GoldenSetSource
    min_agreement: float = Field(0.99, ge=0, le=1)
    min_accuracy: float | None = Field(None, ge=0, le=1)
    min_f1: float | None = Field(None, ge=0, le=1)
    on_failure: Literal["alert", "failBack"] = "alert"


class Rollout(_Model):
    """A new spec.model verified on the standby before the primary gets it."""

    drill_plan: str | None = None
    min_agreement: float | None = Field(None, ge=0, le=1)
    max_f1_drop: float = Field(0.0, ge=0, le=1)


class ReplicaRange(_Model):
    """autoscaling.<role>: the replicas the cluster's HorizontalPodAutoscaler may choose."""

    min_replicas: int = Field(1, ge=1)
    max_replicas: int = Field(ge=1)


class Autoscaling(_Model):
    """A HorizontalPodAutoscaler per member on the server's own load: its average number of
    inference requests in flight per pod (the custom metric modeldr_inflight_requests)."""

    target_inflight_per_pod: float = Field(gt=0)
    primary: ReplicaRange
    # The standby's range (default: the primary's): its maximum must carry the primary's load.
    standby: ReplicaRange | None = None
    # The HPA's scale-down stabilization window; also how long a cluster that took over keeps
    # the replicas its failed peer ran before the autoscaler may shrink it.
    scale_down_stabilization_seconds: int = Field(300, ge=0, le=3600)

    def range_of(self, role: Literal["primary", "standby"]) -> ReplicaRange:
        return self.primary if role == "primary" or self.standby is None else self.standby


class ModelDeploymentSpec(_Model):
    model: ModelSpec
    runtime: RuntimeSpec
    resources: Resources = Field(default_factory=lambda: Resources.model_validate({}))
    replicas: int
    clusters: Clusters
    failover: Failover = Field(default_factory=lambda: Failover.model_validate({}))
    traffic: Traffic = Field(default_factory=lambda: Traffic.model_validate({}))
    evaluation: Evaluation | None = None
    rollout: Rollout | None = None
    autoscaling: Autoscaling | None = None

    @classmethod
    def parse(cls, spec: Any) -> ModelDeploymentSpec:
        return cls.model_validate(dict(spec))

    def standby_replicas(self) -> int:
        """Replicas the standby runs while it is not active (hot: as many as the primary)."""
        standby = self.clusters.standby
        if standby.mode == "hot":
            return self.replicas
        if standby.mode == "cold":
            return 0
        return standby.replicas if standby.replicas is not None else 1

    def service_name(self, name: str) -> str:
        """The hub Service whose EndpointSlice the endpointslice provider keeps."""
        return self.traffic.endpoint_slice.service_name or name

    def member(self, role: Literal["primary", "standby"]) -> MemberRef:
        return self.clusters.primary if role == "primary" else self.clusters.standby

    def env_for(self, role: Literal["primary", "standby"]) -> list[EnvVar]:
        """The server's user env in the role's cluster: spec.runtime.env with
        clusters.<role>.runtime.env merged by name. An override of a name in spec.runtime.env
        replaces its value where it stands; other override names follow, in their order."""
        override = {var.name: var for var in self.member(role).runtime.env}
        merged = [override.pop(var.name, var) for var in self.runtime.env]
        return merged + list(override.values())

    def gpu_product_for(self, role: Literal["primary", "standby"]) -> str | None:
        """The GPU product the role's replicas run on: clusters.<role>.resources.gpuProduct,
        else spec.resources.gpuProduct (None: any product)."""
        return self.member(role).resources.gpu_product or self.resources.gpu_product
