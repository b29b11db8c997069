"""The sandbox's infrastructure provider: the webhook the drill engine asks for `NodeFailure`
and `ClusterOutage` (docs/infrastructure-webhook.md is the protocol), served on
127.0.0.1:INFRA_WEBHOOK_PORT only.

`python -m sandbox infra-webhook` runs it in the foreground; `ensure_running()` starts it as
a sandbox daemon (pid file `.sandbox/state/infra-webhook.pid`, log
`.sandbox/logs/infra-webhook.log`), reusing a running one. Every call but GET /healthz needs
the bearer token of `.sandbox/state/infra-webhook.token` (made on first use); every request is
audited in `.sandbox/state/infra-faults-audit.jsonl`. `make operator-up` starts it and
registers its URL and token in both member Secrets; it outlives `make operator-down` (a restarted
operator must be able to undo what a drill injected) and `make sandbox-down` stops it.

What each fault does: ClusterOutage → `Sandbox.outage(cluster)`, undone by `restore`;
NodeFailure → `Sandbox.fail_node(cluster, node)`, undone by `recover_node`; ModelStoreOutage
→ the region's SeaweedFS store stopped (`objectstores.stop`), started again at undo;
ModelStoreLoss → the backup it names proven restorable, then the model's objects deleted from
the region's store, restored from that backup (verified) at undo or expiry. Only the member
clusters (primary, standby) and their existing nodes are accepted.

State: every fault is written to `.sandbox/state/infra-faults.json` before it is acted on
(state `injecting`, then `active`; `undoing` while it is undone), so a restarted webhook
still knows what to undo. A fault with `expiresAt` is undone by the webhook itself once that
time has passed (checked every second, and at start); a failed undo is retried every
RETRY_S. Changes are serialized: one inject or undo at a time. Two faults on the same target
(the same cluster for ClusterOutage, the same node for NodeFailure) share it: the target is
broken by the first and repaired only when the last of them is undone.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from modeldr.drills.infra import CLUSTER_OUTAGE, MODEL_STORE_LOSS, MODEL_STORE_OUTAGE, NODE_FAILURE
from sandbox import infra_daemon, kube, objectstores
from sandbox.api import Sandbox
from sandbox.config import CLUSTERS, INFRA_WEBHOOK_PORT, Paths, sandbox_paths
from sandbox.webhook_server import (
    HOST,
    RequestError,
    Webhook,
    accepts,
    serve_webhook,
    token_from,
)

log = logging.getLogger("sandbox.infra-webhook")
STATE_FILE = "infra-faults.json"
#: How long an outage may take to close its apiserver's port.
OUTAGE_WAIT_S = 30.0


def state_file(paths: Paths | None = None) -> Path:
    return (paths or sandbox_paths()).state / STATE_FILE


class SandboxActions:
    """Inject and undo through the sandbox's own API (the same calls `make sandbox-*` make)."""

    def __init__(self, sandbox: Sandbox | None = None) -> None:
        self.sandbox = sandbox or Sandbox()

    def check(self, fault_type: str, cluster: str, node: str | None) -> None:
        """RequestError if the fault cannot be made here (4xx), or cannot be checked (503)."""
        if fault_type != NODE_FAILURE or node is None:
            return
        if self.sandbox.paths.outage_marker(cluster).exists():
            raise RequestError(
                409, f"cluster {cluster!r} is in an outage: none of its nodes can fail now"
            )
        try:
            items = kube.core(cluster).list_node(_request_timeout=5).items
        except Exception as exc:
            raise RequestError(
                503, f"cannot list the nodes of cluster {cluster!r}: {exc}"
            ) from None
        names = sorted(n.metadata.name for n in items)
        if node not in names:
            raise RequestError(
                400,
                f"node {node!r} does not exist in cluster {cluster!r} "
                f"(nodes: {', '.join(names) or 'none'})",
            )

    def inject(self, fault: dict[str, Any]) -> None:
        if fault["type"] == MODEL_STORE_LOSS:
            lose_model(fault)
            return
        if fault["type"] == MODEL_STORE_OUTAGE:
            # The region's store stops (its data stays): connections are refused.
            store = objectstores.STORES[fault["cluster"]]
            objectstores.stop(store.name)
            kube.wait_for(
                lambda: not accepts(HOST, store.s3_port),
                timeout=OUTAGE_WAIT_S,
                interval=0.05,
                what=f"the object store of {fault['cluster']} (port {store.s3_port}) to refuse",
            )
            return
        if fault["type"] == CLUSTER_OUTAGE:
            self.sandbox.outage(fault["cluster"])
            # kwokctl returns once it has signalled the control plane, a moment before the
            # apiserver closes its port: in effect means refusing connections.
            port = CLUSTERS[fault["cluster"]].apiserver_port
            kube.wait_for(
                lambda: not accepts(HOST, port),
                timeout=OUTAGE_WAIT_S,
                interval=0.05,
                what=f"the apiserver of {fault['cluster']} (port {port}) to refuse connections",
            )
        else:
            self.sandbox.fail_node(fault["cluster"], fault["node"])

    def undo(self, fault: dict[str, Any]) -> str | dict[str, Any] | None:
        if fault["type"] == MODEL_STORE_LOSS:
            return restore_model(fault)
        if fault["type"] == MODEL_STORE_OUTAGE:
            objectstores.restart(fault["cluster"])
            return None
        if fault["type"] == CLUSTER_OUTAGE:
            self.sandbox.restore(fault["cluster"])
        else:
            self.sandbox.recover_node(fault["cluster"], fault["node"])
        return None


def _backup_point(fault: dict[str, Any]) -> tuple[Any, Any]:
    """The backup store's location and the listed backup the fault names (BackupError when
    it is not there or its manifest was changed)."""
    from modeldr.kube import backups
    from modeldr.kube.backupmanifest import BackupError

    restore = fault["model"]["restoreFrom"]
    where = objectstores.location(restore["store"], restore["url"])
    listed, _refused = backups.history(where)
    for item in listed:
        if item.manifest.id == restore["id"]:
            if item.manifest.model_digest != restore["modelDigest"]:
                raise BackupError(
                    f"backup {restore['id']} holds model {item.manifest.model_digest}, "
                    f"not {restore['modelDigest']}"
                )
            return where, item
    raise BackupError(f"no backup {restore['id']} in {where}")


def lose_model(fault: dict[str, Any]) -> None:
    """ModelStoreLoss: the backup it names proven restorable (nothing written), then every
    object under the model's prefix deleted from the cluster's own store."""
    from modeldr.kube import backups, objectstore

    where, item = _backup_point(fault)
    backups.restore(where, item, None)  # this provider's expiry restores it: it must work
    store = objectstores.STORES[fault["cluster"]]
    target = objectstores.location(store.name, fault["model"]["source"])
    s3 = target.client()
    names = [name for name, _size in objectstore.list_keys(s3, target.store, target.url)]
    for name in names:
        s3.delete_object(Bucket=target.url.bucket, Key=target.url.key(name))
    log.info("ModelStoreLoss %s: %d objects of %s deleted", fault["id"], len(names), target)


def restore_model(fault: dict[str, Any]) -> dict[str, Any]:
    """Undo ModelStoreLoss: the named backup restored into the cluster's store, every file
    verified before the model's manifest is written; what was restored, for the caller."""
    from modeldr.kube import backups

    where, item = _backup_point(fault)
    store = objectstores.STORES[fault["cluster"]]
    target = objectstores.location(store.name, fault["model"]["source"])
    result = backups.restore(where, item, target)
    return {
        "backup": item.manifest.id,
        "modelDigest": result.model_digest,
        "files": result.copied.objects,
        "bytes": result.copied.bytes,
        "seconds": round(result.copied.seconds, 3),
        "target": str(target),
    }


def serve(port: int = INFRA_WEBHOOK_PORT, paths: Paths | None = None) -> None:
    """Serve the webhook in the foreground until SIGTERM/SIGINT."""
    paths = paths or sandbox_paths()
    webhook = Webhook(state_file(paths), SandboxActions(Sandbox(paths)))
    serve_webhook(webhook, [HOST], port, token_from(infra_daemon.token_file(paths)))


def main() -> None:
    serve()
