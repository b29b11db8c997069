"""The one place the operator loads the hub's client configuration: a kubeconfig (and
context), or the pod's in-cluster credentials. Member clusters' kubeconfigs come from hub
Secrets instead (modeldr.kube.members)."""

from __future__ import annotations

import os

from kubernetes import client, config


def load_client_configuration(
    kubeconfig: str | None = None, context: str | None = None
) -> client.Configuration:
    """A kubeconfig when one is named (or when not in a pod: $KUBECONFIG, ~/.kube/config),
    else in-cluster credentials. Blocking: an exec credential plugin may run."""
    cfg = client.Configuration()
    if kubeconfig or context or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
    else:
        config.load_incluster_config(client_configuration=cfg)
    return cfg


def hub_configuration() -> client.Configuration:
    """The default configuration when `modeldr operator` set one (from --kubeconfig), else
    loaded as above (a bare `kopf run`)."""
    cfg = client.Configuration.get_default_copy()
    if cfg.host and "localhost" not in cfg.host:
        return cfg
    return load_client_configuration()
