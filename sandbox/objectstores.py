"""The sandbox's S3 object stores: one SeaweedFS (`weed mini`) per region, on loopback.

Three stores, as a real deployment would have them: the primary region's and the standby
region's (their `models` bucket holds what each cluster's pods load) and a backup store
beside the hub (its `modeldr-backups` bucket holds the backups, its `models` bucket copies
that pods load when their own region's store is gone). Each answers S3 on
127.0.0.1:<cluster port base + 8>; its other components (master, volume, filer, admin) listen
on loopback ports of their own and telemetry is off (the network rule: nothing leaves the
machine). Credentials are made once per sandbox and kept in its state directory.

Pods find their store through Secrets in their member namespace (`put_member_secrets`:
`modeldr-model-store` = the region's store, `modeldr-backup-store` = the backup store); the
backups find every store through Secrets in the hub namespace (`put_hub_secrets`).
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from sandbox import daemons, kube
from sandbox.config import CLUSTERS, sandbox_paths, tool

MARKER = "weed mini"
REGION = "sandbox-1"
MODELS_BUCKET = "models"
BACKUP_BUCKET = "modeldr-backups"
#: The hub namespace Secret of each store, and the member Secrets pods read.
OWN_STORE_SECRET = "modeldr-model-store"
BACKUP_STORE_SECRET = "modeldr-backup-store"


@dataclass(frozen=True)
class Store:
    name: str  # primary | standby | backup
    cluster: str  # whose port range it uses
    buckets: tuple[str, ...]

    @property
    def s3_port(self) -> int:
        return CLUSTERS[self.cluster].port_base + 8

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def daemon(self) -> str:
        return f"objectstore-{self.name}"

    def internal_port(self, offset: int) -> int:
        """Master, volume, filer, admin: a range of their own, 1000 above the cluster's."""
        return CLUSTERS[self.cluster].port_base + 1000 + offset


STORES: dict[str, Store] = {
    "primary": Store("primary", "primary", (MODELS_BUCKET,)),
    "standby": Store("standby", "standby", (MODELS_BUCKET,)),
    # Its `models` bucket holds copies pods can load when their region's store is gone.
    "backup": Store("backup", "hub", (MODELS_BUCKET, BACKUP_BUCKET)),
}


def hub_secret_name(store: str) -> str:
    return f"modeldr-store-{store}"


def credentials(store: Store) -> dict[str, str]:
    """The store's access key pair, made at its first start and kept with the sandbox."""
    path = sandbox_paths().state / store.daemon / "credentials.json"
    if path.is_file():
        saved: dict[str, str] = json.loads(path.read_text())
        return saved
    path.parent.mkdir(parents=True, exist_ok=True)
    made = {
        "accessKeyId": f"modeldr-{store.name}-{secrets.token_hex(4)}",
        "secretAccessKey": secrets.token_urlsafe(24),
    }
    path.write_text(json.dumps(made))
    path.chmod(0o600)
    return made


def store_values(name: str) -> dict[str, str]:
    """The four keys of a store Secret (kube.objectstore.STORE_SECRET_KEYS)."""
    store = STORES[name]
    return {"endpoint": store.endpoint, "region": REGION, **credentials(store)}


def start(store: Store) -> int:
    state = sandbox_paths().state / store.daemon
    data = state / "data"
    data.mkdir(parents=True, exist_ok=True)
    keys = credentials(store)
    config = state / "s3.json"
    identity = {
        "name": "modeldr",
        "credentials": [{"accessKey": keys["accessKeyId"], "secretKey": keys["secretAccessKey"]}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    config.chmod(0o600)
    port = store.internal_port
    argv = [
        tool("weed"),
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={port(1)}",
        f"-master.port.grpc={port(2)}",
        f"-volume.port={port(3)}",
        f"-volume.port.grpc={port(4)}",
        f"-filer.port={port(5)}",
        f"-filer.port.grpc={port(6)}",
        f"-s3.port={store.s3_port}",
        f"-s3.port.grpc={port(7)}",
        f"-admin.port={port(8)}",
        f"-admin.port.grpc={port(9)}",
        "-admin.port.legacy=0",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        # Anonymous usage reports go to a public address: never from the sandbox.
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-s3.config={config}",
    ]
    return daemons.start(store.daemon, argv, MARKER)


def s3_client(name: str) -> Any:
    from modeldr.kube.objectstore import StoreConfig
    from modeldr.kube.objectstore import client as s3_client_for

    return s3_client_for(StoreConfig.from_values(name, store_values(name)), timeout=2.0)


def ready(store: Store) -> bool:
    """The store answers S3 with our credentials and has its buckets (made here if not)."""
    try:
        s3 = s3_client(store.name)
        names = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        for bucket in store.buckets:
            if bucket not in names:
                s3.create_bucket(Bucket=bucket)
        return True
    except Exception:
        return False


def install_all(timeout: float = 120.0) -> None:
    for store in STORES.values():
        start(store)
    for store in STORES.values():
        kube.wait_for(
            lambda s=store: ready(s), timeout=timeout, what=f"object store {store.name} (S3)"
        )


def stop_all() -> None:
    for store in STORES.values():
        daemons.stop(store.daemon, MARKER)


def _secret_body(name: str, values: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "modeldr-sandbox"}},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
    }


def _apply_secret(cluster: str, namespace: str, body: dict[str, Any]) -> None:
    core = client.CoreV1Api(kube.api_client(cluster))
    try:
        core.create_namespaced_secret(namespace, body)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        core.replace_namespaced_secret(body["metadata"]["name"], namespace, body)


def put_member_secrets(namespace: str, clusters: tuple[str, ...] = ("primary", "standby")) -> None:
    """In each member's `namespace`: its region's store and the backup store, as the
    ModelDeployment's spec.model.store names them by default (and as its fallback)."""
    for cluster in clusters:
        kube.ensure_namespace(cluster, namespace)
        _apply_secret(cluster, namespace, _secret_body(OWN_STORE_SECRET, store_values(cluster)))
        _apply_secret(cluster, namespace, _secret_body(BACKUP_STORE_SECRET, store_values("backup")))


def put_hub_secrets(namespace: str) -> None:
    """In the hub's `namespace`: every store, for `modeldr backup` (modeldr-store-<name>)."""
    kube.ensure_namespace("hub", namespace)
    for name in STORES:
        _apply_secret("hub", namespace, _secret_body(hub_secret_name(name), store_values(name)))


def stop(name: str) -> None:
    """Stop one store (its data stays): its clients see connection refused, an outage."""
    store = STORES[name]
    daemons.stop(store.daemon, MARKER)


def restart(name: str, timeout: float = 60.0) -> None:
    store = STORES[name]
    start(store)
    kube.wait_for(lambda: ready(store), timeout=timeout, what=f"object store {name} (S3)")


#: The examples' model versions, as sandbox/operator_up.py and sandbox/model_versions.py
#: write them on the machine, and where the examples' s3:// sources find them.
EXAMPLE_MODELS = ("tiny-bert", "tiny-bert-v2", "tiny-bert-swapped")
DEMO_NAMESPACE = "modeldr-demo"
OPERATOR_NAMESPACE = "modeldr-system"  # the sandbox operator's (sandbox/operator_up.py)


def location(store: str, url: str) -> Any:
    """A backups.Location in one of the sandbox's stores."""
    from modeldr.kube import backups
    from modeldr.kube.objectstore import S3Url, StoreConfig

    return backups.Location(StoreConfig.from_values(store, store_values(store)), S3Url.parse(url))


def publish_examples(models_dir: Path, namespace: str = DEMO_NAMESPACE) -> list[str]:
    """The examples' models in every store (s3://models/<name>: published to the primary
    region's store, mirrored to the standby's and the backup store's), and the store Secrets
    in `namespace` of the members and the hub. Idempotent: unchanged files are not copied.
    Returns one line per model, for people to read."""
    from modeldr.kube import backups

    lines = []
    for name in EXAMPLE_MODELS:
        url = f"s3://{MODELS_BUCKET}/{name}"
        primary = location("primary", url)
        published = backups.publish(models_dir / name, primary)
        for other in ("standby", "backup"):
            backups.mirror(primary, location(other, url))
        lines.append(
            f"{url}: {published.model_digest} ({published.copied.objects} files copied) in the "
            "primary, standby and backup stores"
        )
    for cluster in ("primary", "standby"):
        # A member in an outage (an operator restarted mid-drill) gets them at the next
        # operator-up; its pods keep the values they started with.
        try:
            put_member_secrets(namespace, (cluster,))
        except Exception as exc:
            lines.append(f"store Secrets not written in {cluster}/{namespace}: {exc}")
    put_hub_secrets(namespace)  # for `modeldr backup -n modeldr-demo` (the admin's CLI)
    put_hub_secrets(OPERATOR_NAMESPACE)  # for ModelBackups (the operator reads them there)
    return lines
