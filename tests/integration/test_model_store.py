"""Models in object stores on the sandbox: the real SeaweedFS S3 stores `make sandbox-up`
starts (one per region and a backup store), the real model server fetching its model, the
operator wiring the member's store Secret into the pod, and backups between the stores with
`modeldr backup` (full, incremental, differential, restore, mirror)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from modeldr.kube import backups
from modeldr.kube.artifact import MANIFEST_NAME
from modeldr.kube.objectstore import S3Url
from modeldr.serving.manifest import write_manifest
from sandbox import kube, objectstores
from sandbox.api import Sandbox
from sandbox.config import sandbox_paths
from tests.integration.modeldeployments import (
    NAME,
    create,
    manifest,
    policy_body,
    put_policy,
    wait_status,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests/fixtures/models/tiny-review-bert"
FIXTURE_DIGEST = "sha256:7dddd2ad3ab141aaa06601673671f5a88ddc1851dbc07f453e84cf0df8e69a8b"


location = objectstores.location


def upload_dir(directory: Path, where: backups.Location) -> None:
    s3 = where.client()
    names = sorted(p.name for p in directory.iterdir() if p.is_file())
    # The manifest last, as a publisher should: a reader never sees it before the files.
    for name in sorted(names, key=lambda n: n == MANIFEST_NAME):
        s3.upload_file(str(directory / name), where.url.bucket, where.url.key(name))


def put_object(where: backups.Location, key: str, body: bytes) -> None:
    where.client().put_object(Bucket=where.url.bucket, Key=key, Body=body)


def modeldr(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(sandbox_paths().kubeconfig)}
    return subprocess.run(
        [sys.executable, "-m", "modeldr.cli", *args, "--context", "hub", "-n", "default"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def run_json(*args: str) -> dict[str, Any]:
    result = modeldr(*args, "--json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.fixture(scope="module")
def stores(sandbox: Sandbox) -> None:
    objectstores.put_hub_secrets("default")


@pytest.fixture
def prefix() -> str:
    return f"t{int(time.time() * 1000) % 10**9:09d}"


def test_backup_modes_copy_what_changed_and_restores_verify(
    stores: None, prefix: str, tmp_path: Path
) -> None:
    model = f"s3://models/{prefix}/tiny-bert"
    kept = f"s3://modeldr-backups/{prefix}/tiny-bert"
    work = tmp_path / "model"
    work.mkdir()
    for path in FIXTURE.iterdir():
        (work / path.name).write_bytes(path.read_bytes())
    upload_dir(work, location("primary", model))
    run = ("backup", "run", model, "--store", "primary", "--to", kept, "--backup-store", "backup")

    refused = modeldr(*run, "--mode", "incremental")
    assert refused.returncode == 1 and "no full backup here yet" in refused.stderr
    full = run_json(*run, "--mode", "full")
    total = sum(p.stat().st_size for p in work.iterdir())
    assert (full["copiedObjects"], full["copiedBytes"]) == (6, total)
    assert full["modelDigest"] == FIXTURE_DIGEST

    def change(name: str, text: str) -> int:
        """A new revision: one file changed, the manifest rewritten; the bytes a backup of
        the change must copy (the file and the manifest)."""
        (work / name).write_text(text)
        write_manifest(work, "sequence-classification", f"rev-{name}")
        upload_dir(work, location("primary", model))
        return (work / name).stat().st_size + (work / MANIFEST_NAME).stat().st_size

    first = change("tokenizer_config.json", '{"do_lower_case": true, "note": "one"}\n')
    incremental_1 = run_json(*run, "--mode", "incremental")
    assert (incremental_1["copiedObjects"], incremental_1["copiedBytes"]) == (2, first)
    second = change("config.json", (FIXTURE / "config.json").read_text() + "\n")
    incremental_2 = run_json(*run, "--mode", "incremental")
    # Since the last backup: the second change only.
    assert (incremental_2["copiedObjects"], incremental_2["copiedBytes"]) == (2, second)
    differential = run_json(*run, "--mode", "differential")
    # Since the last full: both changed files and the manifest.
    both = sum((work / n).stat().st_size for n in ("tokenizer_config.json", "config.json"))
    both += (work / MANIFEST_NAME).stat().st_size
    assert (differential["copiedObjects"], differential["copiedBytes"]) == (3, both)
    assert differential["base"] == full["id"] and incremental_2["base"] == incremental_1["id"]

    listed = run_json("backup", "list", kept, "--backup-store", "backup")
    assert [b["mode"] for b in listed["backups"]] == [
        "full",
        "incremental",
        "incremental",
        "differential",
    ]

    # A restore to the first backup gives back the fixture, byte for byte, in another store.
    target = f"s3://models/{prefix}/restored"
    restore_first = ("backup", "restore", kept, "--backup-store", "backup", "--backup", full["id"])
    restored = run_json(*restore_first, "--to", target, "--store", "standby")
    assert restored["modelDigest"] == FIXTURE_DIGEST and restored["verified"] is True
    manifest_now, raw = backups.read_model(location("standby", target))
    assert raw == (FIXTURE / MANIFEST_NAME).read_bytes()
    assert set(manifest_now.files) == {p.name for p in FIXTURE.iterdir()} - {MANIFEST_NAME}
    # The latest is the last change: its model digest, restored from three sets.
    latest = run_json("backup", "restore", kept, "--backup-store", "backup", "--verify-only")
    said = modeldr("backup", "restore", kept, "--backup-store", "backup", "--verify-only", "-q")
    assert said.returncode == 0, said.stderr
    assert f"backup {latest['id']} verified (nothing written): 6 files" in said.stdout
    assert latest["id"] == differential["id"]
    assert latest["modelDigest"] == differential["modelDigest"] != FIXTURE_DIGEST

    # A damaged or tampered object in a set: the restore refuses it and writes nothing.
    weights = f"{S3Url.parse(kept).key('sets/' + full['id'] + '/model.safetensors')}"
    put_object(location("backup", kept), weights, b"not the weights")
    untouched = f"s3://models/{prefix}/untouched"
    tampered = modeldr(*restore_first, "--to", untouched, "--store", "standby", "-q")
    assert tampered.returncode == 1, tampered.stderr
    assert "model.safetensors" in tampered.stderr and "refusing it" in tampered.stderr
    assert not list(
        location("standby", untouched)
        .client()
        .list_objects_v2(Bucket="models", Prefix=f"{prefix}/untouched/")
        .get("Contents", [])
    )
    # A manifest changed after it was written no longer matches its name: listed as refused.
    digest = listed["backups"][1]["manifestDigest"].removeprefix("sha256:")
    key = S3Url.parse(kept).key(f"manifests/{digest}.json")
    put_object(location("backup", kept), key, b'{"tampered": true}')
    after = modeldr("backup", "list", kept, "--backup-store", "backup", "--json")
    assert after.returncode == 1
    assert len(json.loads(after.stdout)["refused"]) == 1


def test_mirror_copies_only_changes_and_reports_the_copy_age(stores: None, prefix: str) -> None:
    model = f"s3://models/{prefix}/tiny-bert"
    upload_dir(FIXTURE, location("primary", model))
    args = ("backup", "mirror", model, "--store", "primary", "--to-store", "standby")
    first = run_json(*args)
    assert (first["copiedObjects"], first["unchanged"]) == (6, 0)
    again = run_json(*args)
    assert (again["copiedObjects"], again["unchanged"]) == (0, 6)
    age = backups.mirror_age(location("standby", model))
    assert age is not None and 0 <= age[0] < 60 and age[1] == FIXTURE_DIGEST


@contextlib.contextmanager
def store_down(name: str) -> Iterator[None]:
    objectstores.stop(name)
    try:
        yield
    finally:
        objectstores.restart(name)


def pods(cluster: str, namespace: str) -> list[Any]:
    core = client.CoreV1Api(kube.api_client(cluster))
    return list(core.list_namespaced_pod(namespace, label_selector="modeldr.io/role").items)


def pod_log(cluster: str, namespace: str, pod: str) -> str:
    path = sandbox_paths().processes / cluster / namespace / f"{pod}.log"
    return path.read_text() if path.exists() else ""


@pytest.fixture
def s3_hub_ns(hub_ns: str, prefix: str) -> str:
    """A hub namespace whose TenantPolicy allows the test's s3:// prefix; the member
    namespaces hold the sandbox's store Secrets (the admin's part)."""
    put_policy(policy_body(hub_ns, model_sources=(f"s3://models/{prefix}/",)))
    objectstores.put_member_secrets(hub_ns)
    return hub_ns


def test_pods_load_from_their_store_and_from_the_fallback_when_it_is_gone(
    s3_hub_ns: str, prefix: str
) -> None:
    model = f"s3://models/{prefix}/tiny-bert"
    for store in ("primary", "standby", "backup"):
        upload_dir(FIXTURE, location(store, model))
    md = manifest(s3_hub_ns)
    md["spec"]["model"]["source"] = model
    md["spec"]["model"]["store"] = {"fallbackSecretName": objectstores.BACKUP_STORE_SECRET}
    create(s3_hub_ns, md)
    wait_status(
        s3_hub_ns,
        lambda s: (
            s.get("phase") == "Ready"
            and (s.get("primary") or {}).get("readyReplicas") == 1
            and (s.get("standby") or {}).get("readyReplicas") == 1
        ),
        "both clusters serving the model fetched from their stores",
    )
    first = pods("primary", s3_hub_ns)[0].metadata.name
    assert "from store own" in pod_log("primary", s3_hub_ns, first)

    # The primary region's store is gone: a pod that starts now loads from the fallback.
    with store_down("primary"):
        core = client.CoreV1Api(kube.api_client("primary"))
        core.delete_namespaced_pod(first, s3_hub_ns, grace_period_seconds=0)
        replacement = kube.wait_for(
            lambda: next(
                (
                    p
                    for p in pods("primary", s3_hub_ns)
                    if p.metadata.name != first
                    and any(c.ready for c in (p.status.container_statuses or []))
                ),
                None,
            ),
            timeout=90,
            what="a replacement primary pod Ready",
        )
        text = pod_log("primary", s3_hub_ns, replacement.metadata.name)
        assert "trying the fallback store fallback" in text
        assert "from store fallback" in text


def test_a_pod_refuses_a_changed_model_and_an_unreachable_store(
    s3_hub_ns: str, prefix: str
) -> None:
    model = f"s3://models/{prefix}/tiny-bert"
    upload_dir(FIXTURE, location("primary", model))
    # The standby's copy has damaged weights under the same (pinned) manifest.
    upload_dir(FIXTURE, location("standby", model))
    put_object(location("standby", model), S3Url.parse(model).key("model.safetensors"), b"damaged")
    md = manifest(s3_hub_ns)
    md["spec"]["model"]["source"] = model
    create(s3_hub_ns, md)

    def refused(cluster: str, words: str) -> str:
        """The pod's termination message (the tail of its log: FallbackToLogsOnError)."""

        def message() -> str | None:
            for pod in pods(cluster, s3_hub_ns):
                for status in pod.status.container_statuses or []:
                    for state in (status.state, status.last_state):
                        done = state.terminated if state else None
                        if done and words in (done.message or ""):
                            return str(done.message)
            return None

        return str(kube.wait_for(message, timeout=60, what=f"{cluster} pod refusing: {words}"))

    text = refused("standby", "mismatch for")
    assert "model.safetensors" in text
    wait_status(
        s3_hub_ns,
        lambda s: (s.get("primary") or {}).get("readyReplicas") == 1,
        "the primary serving from its intact copy",
    )
    # No fallback store and the region's store gone: a starting pod says so, and stays down.
    with store_down("primary"):
        first = pods("primary", s3_hub_ns)[0].metadata.name
        core = client.CoreV1Api(kube.api_client("primary"))
        core.delete_namespaced_pod(first, s3_hub_ns, grace_period_seconds=0)
        text = refused("primary", "no store answered")
        assert "store unreachable" in text and "127.0.0.1:16428" in text


def test_a_pod_waits_for_its_store_secret_as_the_kubelet_does(hub_ns: str, prefix: str) -> None:
    model = f"s3://models/{prefix}/tiny-bert"
    put_policy(policy_body(hub_ns, model_sources=(f"s3://models/{prefix}/",)))
    for store in ("primary", "standby"):
        upload_dir(FIXTURE, location(store, model))
    md = manifest(hub_ns)
    md["spec"]["model"]["source"] = model
    create(hub_ns, md)

    def waiting_reason() -> str | None:
        for pod in pods("primary", hub_ns):
            for status in pod.status.container_statuses or []:
                waiting = status.state.waiting if status.state else None
                if waiting and waiting.reason == "CreateContainerConfigError":
                    return str(waiting.message)
        return None

    message = kube.wait_for(waiting_reason, timeout=60, what="CreateContainerConfigError")
    assert "Secret modeldr-model-store" in message
    # The admin's part arrives: the same pod starts without being recreated.
    objectstores.put_member_secrets(hub_ns)
    wait_status(
        hub_ns,
        lambda s: (
            (s.get("primary") or {}).get("readyReplicas") == 1
            and (s.get("standby") or {}).get("readyReplicas") == 1
        ),
        "both clusters serving once the store Secrets exist",
    )


def modelbackup(name: str, prefix: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modeldr.io/v1alpha1",
        "kind": "ModelBackup",
        "metadata": {"name": name},
        "spec": {
            "modelDeployment": NAME,
            "sourceStore": "primary",
            "standbyStore": "standby",
            "backupStore": "backup",
            "backupPrefix": f"s3://modeldr-backups/{prefix}/tiny-bert",
            **spec,
        },
    }


def backup_status(hub_ns: str, name: str) -> dict[str, Any]:
    body = client.CustomObjectsApi(kube.api_client("hub")).get_namespaced_custom_object(
        "modeldr.io", "v1alpha1", hub_ns, "modelbackups", name
    )
    return dict(body.get("status") or {})


def wait_backup(hub_ns: str, name: str, predicate: Any, what: str, timeout: float = 60) -> Any:
    last: dict[str, Any] = {}

    def check() -> dict[str, Any] | None:
        nonlocal last
        last = backup_status(hub_ns, name)
        return last if predicate(last) else None

    try:
        return kube.wait_for(check, timeout=timeout, what=what)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}; status {json.dumps(last, indent=1)}")


def allow_backups(hub_ns: str, prefix: str) -> None:
    """The namespace's policy: the test's models and its backups in the sandbox's stores."""
    put_policy(
        policy_body(
            hub_ns,
            model_sources=(f"s3://models/{prefix}/",),
            backups={
                "stores": ["primary", "standby", "backup"],
                "prefixes": [f"s3://modeldr-backups/{prefix}/"],
            },
        )
    )


def test_a_modelbackup_runs_its_schedules_mirrors_and_keeps_its_retention(
    s3_hub_ns: str, prefix: str, tmp_path: Path
) -> None:
    hub_ns = s3_hub_ns
    allow_backups(hub_ns, prefix)
    model = f"s3://models/{prefix}/tiny-bert"
    work = tmp_path / "model"
    work.mkdir()
    for path in FIXTURE.iterdir():
        (work / path.name).write_bytes(path.read_bytes())
    upload_dir(work, location("primary", model))
    md = manifest(hub_ns)
    md["spec"]["model"]["source"] = model
    create(hub_ns, md)
    custom = client.CustomObjectsApi(kube.api_client("hub"))
    # A full backup every 20 s, an incremental one every 5 s; keep one full backup.
    body = modelbackup(
        "tiny-bert",
        prefix,
        schedules={"full": "*/20 * * * * *", "incremental": "*/5 * * * * *"},
        keepFull=1,
    )
    custom.create_namespaced_custom_object("modeldr.io", "v1alpha1", hub_ns, "modelbackups", body)
    status = wait_backup(
        hub_ns,
        "tiny-bert",
        lambda s: ((s.get("lastRuns") or {}).get("full") or {}).get("result") == "Succeeded",
        "a full backup",
    )
    full = status["lastRuns"]["full"]
    total = sum(p.stat().st_size for p in FIXTURE.iterdir())
    assert (full["objects"], full["bytes"]) == (6, total)
    assert full["modelDigest"] == FIXTURE_DIGEST
    assert status["standbyCopy"]["upToDate"] is True
    assert status["standbyCopy"]["modelDigest"] == FIXTURE_DIGEST
    assert (
        backups.read_model(location("standby", model))[1] == (FIXTURE / MANIFEST_NAME).read_bytes()
    )

    # A new revision of the model in the primary store: the next incremental copies the
    # changed file and the manifest; the standby copy follows it.
    (work / "tokenizer_config.json").write_text('{"do_lower_case": true, "rev": 2}\n')
    digest = "sha256:" + write_manifest(work, "sequence-classification", "rev-2")
    upload_dir(work, location("primary", model))
    changed = (work / "tokenizer_config.json").stat().st_size + (
        work / MANIFEST_NAME
    ).stat().st_size
    status = wait_backup(
        hub_ns,
        "tiny-bert",
        lambda s: ((s.get("lastRuns") or {}).get("incremental") or {}).get("modelDigest") == digest,
        "an incremental backup of the new revision",
    )
    # The first backup of the new revision copied the change: an incremental one the changed
    # file and the manifest; a full one (when its due time came first) everything.
    listed, _ = backups.history(location("backup", f"s3://modeldr-backups/{prefix}/tiny-bert"))
    first = next(b.manifest for b in listed if b.manifest.model_digest == digest)
    if first.mode == "incremental":
        assert (first.copied_objects, first.copied_bytes) == (2, changed)
    else:
        assert (first.mode, first.copied_bytes) == ("full", first.total_bytes)
    assert status["standbyCopy"]["modelDigest"] == digest

    # Retention keeps one full backup and what builds on it: once a second full backup ran,
    # nothing older than it is left in the store.
    first_full = full["id"]
    status = wait_backup(
        hub_ns,
        "tiny-bert",
        lambda s: (s["lastRuns"].get("full") or {}).get("id") not in (None, first_full),
        "a second full backup",
        timeout=45,
    )
    listed, refused = backups.history(
        location("backup", f"s3://modeldr-backups/{prefix}/tiny-bert")
    )
    assert not refused
    assert [b.manifest.mode for b in listed].count("full") == 1
    assert all(b.manifest.id >= status["lastRuns"]["full"]["id"] for b in listed)

    # The standby region's store gone: the standby copy is no longer up to date, its time
    # stays (its age grows: the RPO), and the backups go on.
    with store_down("standby"):
        kept = status["standbyCopy"]["mirroredAt"]
        status = wait_backup(
            hub_ns,
            "tiny-bert",
            lambda s: s["standbyCopy"]["upToDate"] is False,
            "the standby copy reported stale",
            timeout=30,
        )
        assert "standby copy not updated" in status["standbyCopy"]["message"]
        assert status["standbyCopy"]["mirroredAt"] >= kept
    wait_backup(
        hub_ns,
        "tiny-bert",
        lambda s: s["standbyCopy"]["upToDate"] is True,
        "the standby copy up to date again",
        timeout=30,
    )


def test_a_modelbackup_outside_its_policy_touches_no_store(s3_hub_ns: str, prefix: str) -> None:
    # The namespace's policy lists no backup store or prefix (hub_ns's default).
    custom = client.CustomObjectsApi(kube.api_client("hub"))
    body = modelbackup("elsewhere", prefix, schedules={"full": "*/5 * * * * *"})
    custom.create_namespaced_custom_object(
        "modeldr.io", "v1alpha1", s3_hub_ns, "modelbackups", body
    )
    status = wait_backup(
        s3_hub_ns, "elsewhere", lambda s: s.get("phase") == "PolicyDenied", "PolicyDenied"
    )
    assert "backups.stores" in status["message"]
    time.sleep(6)  # a due time passes: still nothing written
    s3 = location("backup", "s3://modeldr-backups/x").client()
    found = s3.list_objects_v2(Bucket="modeldr-backups", Prefix=f"{prefix}/").get("Contents", [])
    assert not found


def serve_from_stores(
    hub_ns: str, model: str, stores: tuple[str, ...], fallback: str | None = None
) -> None:
    """The fixture in `stores` at `model`, a ModelDeployment serving it, its primary Ready."""
    for store in stores:
        upload_dir(FIXTURE, location(store, model))
    md = manifest(hub_ns)
    md["spec"]["model"]["source"] = model
    if fallback:
        md["spec"]["model"]["store"] = {"fallbackSecretName": fallback}
    create(hub_ns, md)
    wait_status(
        hub_ns,
        lambda s: s.get("phase") == "Ready" and (s.get("primary") or {}).get("readyReplicas") == 1,
        "the primary serving",
    )


def test_model_corruption_of_an_s3_model_refuses_and_leaves_nothing(
    s3_hub_ns: str, prefix: str
) -> None:
    """The ModelCorruption drill on a model served from a store: its replica fetches the
    model (verified), flips a byte of the copy, and the server refuses it."""
    from tests.integration.test_drill_replica_faults import apply_plan, explain, plan, run_status

    serve_from_stores(s3_hub_ns, f"s3://models/{prefix}/tiny-bert", ("primary", "standby"))
    step = {
        "name": "corrupt",
        "fault": {"type": "ModelCorruption", "cluster": "primary"},
        "durationSeconds": 8,
        "expect": {"activeCluster": "unchanged", "maxErrorRatio": 0.0},
    }
    name = apply_plan(s3_hub_ns, plan("corrupt", [step]))
    status = kube.wait_for(
        lambda: (
            (s := run_status(s3_hub_ns, name)).get("phase") in ("Passed", "Failed", "Error") and s
        ),
        timeout=120,
        what="the corruption drill's verdict",
    )
    assert status["phase"] == "Passed", explain(status)
    assert "naming the bad file model.safetensors" in status["steps"][0]["message"]
    assert status["faults"][0]["state"] == "Undone"
    # Neither the corrupted copy nor the fetched one is left in the pod's scratch space.
    assert not list(Path("/tmp").glob("modeldr-corrupted-*"))


@pytest.mark.parametrize("fallback", [True, False], ids=["fallback", "no-fallback"])
def test_a_store_outage_drill_restarts_a_pod_into_it(
    s3_hub_ns: str, prefix: str, fallback: bool
) -> None:
    """ModelStoreOutage through the infrastructure webhook: the primary region's store stops,
    a primary pod restarts into the outage. With a fallback store the replacement loads the
    model there and the step passes; without one it refuses, and the step fails naming why.
    Either way the store is back afterwards."""
    from tests.integration.test_drill_replica_faults import apply_plan, explain, plan, run_status

    model = f"s3://models/{prefix}/tiny-bert"
    fallback_store = objectstores.BACKUP_STORE_SECRET if fallback else None
    serve_from_stores(s3_hub_ns, model, ("primary", "standby", "backup"), fallback_store)
    step = {
        "name": "store-outage",
        "fault": {"type": "ModelStoreOutage", "cluster": "primary", "mode": "one"},
        "durationSeconds": 15,
        "expect": {"minReplicas": {"primary": 1}},
    }
    name = apply_plan(s3_hub_ns, plan("store-outage", [step]))
    status = kube.wait_for(
        lambda: (
            (s := run_status(s3_hub_ns, name)).get("phase") in ("Passed", "Failed", "Error") and s
        ),
        timeout=150,
        what="the store outage drill's verdict",
    )
    message = status["steps"][0]["message"]
    if fallback:
        assert status["phase"] == "Passed", explain(status)
        assert "loaded the model from the fallback store" in message
    else:
        assert status["phase"] == "Failed", explain(status)
        assert "could not load the model while the store was unreachable" in message
        assert "no store answered" in message
    assert status["faults"][0]["state"] == "Undone"
    # The store is back: it answers with the model.
    assert (
        backups.read_model(location("primary", model))[1] == (FIXTURE / MANIFEST_NAME).read_bytes()
    )


def backed_up_model(hub_ns: str, prefix: str) -> tuple[str, str]:
    """An s3 ModelDeployment serving from the primary and standby stores (no fallback), a
    ModelBackup the namespace's policy allows, its schedule a year away, asked for a full
    backup at once by annotation; the model's URL and that backup's id."""
    allow_backups(hub_ns, prefix)
    model = f"s3://models/{prefix}/tiny-bert"
    serve_from_stores(hub_ns, model, ("primary", "standby"))
    body = modelbackup("nightly", prefix, schedules={"full": "0 3 1 1 *"})
    body["metadata"]["annotations"] = {"modeldr.io/backup-now": "full"}
    custom = client.CustomObjectsApi(kube.api_client("hub"))
    custom.create_namespaced_custom_object("modeldr.io", "v1alpha1", hub_ns, "modelbackups", body)
    status = wait_backup(
        hub_ns,
        "nightly",
        lambda s: ((s.get("lastRuns") or {}).get("full") or {}).get("result") == "Succeeded",
        "the full backup asked for by annotation",
    )
    # One ask, one run: the operator took the annotation away when it started.
    meta = custom.get_namespaced_custom_object(
        "modeldr.io", "v1alpha1", hub_ns, "modelbackups", "nightly"
    )["metadata"]
    assert "modeldr.io/backup-now" not in (meta.get("annotations") or {})
    return model, str(status["lastRuns"]["full"]["id"])


def drill_verdict(hub_ns: str, name: str, timeout: float = 150) -> dict[str, Any]:
    from tests.integration.test_drill_replica_faults import run_status

    return dict(
        kube.wait_for(
            lambda: (
                (s := run_status(hub_ns, name)).get("phase") in ("Passed", "Failed", "Error") and s
            ),
            timeout=timeout,
            what=f"the verdict of {name}",
        )
    )


def test_a_store_loss_drill_fails_over_and_restores_the_backup(s3_hub_ns: str, prefix: str) -> None:
    """ModelStoreLoss on the primary: the model's objects deleted from the primary's store
    (the backup proven restorable first), its pod restarted into the loss refuses, traffic
    fails over to the standby; undo restores the backup into the store, verified, timed
    against maxRestoreSeconds; the primary serves again from the restored model."""
    from tests.integration.test_drill_replica_faults import apply_plan, explain, plan

    model, backup_id = backed_up_model(s3_hub_ns, prefix)
    step = {
        "name": "lose-store",
        "fault": {
            "type": "ModelStoreLoss",
            "cluster": "primary",
            "mode": "all",
            "maxBackupAgeSeconds": 600,
        },
        "durationSeconds": 15,
        "expect": {"activeCluster": "standby", "maxRestoreSeconds": 30},
    }
    status = drill_verdict(s3_hub_ns, apply_plan(s3_hub_ns, plan("lose-store", [step])))
    assert status["phase"] == "Passed", explain(status)
    taken = status["steps"][0]
    assert 0 < taken["restoreSeconds"] <= 30, taken
    assert f"backup {backup_id} restored into the store and verified" in taken["message"]
    fault = status["faults"][0]
    assert fault["state"] == "Undone"
    assert fault["parameters"]["backupId"] == backup_id
    # The store holds the backed-up model again, byte for byte, and the primary loads it.
    restored = backups.read_model(location("primary", model))[1]
    assert restored == (FIXTURE / MANIFEST_NAME).read_bytes()
    wait_status(
        s3_hub_ns,
        lambda s: (s.get("primary") or {}).get("readyReplicas") == 1,
        "the primary Ready again from the restored store",
        timeout=90,
    )


def test_a_store_loss_drill_without_a_recent_backup_deletes_nothing(
    s3_hub_ns: str, prefix: str
) -> None:
    """Preflight refuses ModelStoreLoss when the newest backup is older than the plan allows
    (Failed: the RPO does not hold) and when there is no backup (Error): nothing deleted."""
    from tests.integration.test_drill_replica_faults import apply_plan, plan

    model, backup_id = backed_up_model(s3_hub_ns, prefix)
    time.sleep(2.1)  # the backup is now older than the plan's second
    loss: dict[str, Any] = {"type": "ModelStoreLoss", "cluster": "primary"}
    step = {"name": "lose-store", "fault": {**loss, "maxBackupAgeSeconds": 1}, "durationSeconds": 5}
    status = drill_verdict(s3_hub_ns, apply_plan(s3_hub_ns, plan("too-old", [step])))
    assert (status["phase"], status["reason"]) == ("Failed", "BackupTooOld"), status
    assert backup_id in status["message"] and "maxBackupAgeSeconds" in status["message"]
    # No ModelBackup of the model left: nothing to restore from, so nothing is deleted.
    client.CustomObjectsApi(kube.api_client("hub")).delete_namespaced_custom_object(
        "modeldr.io", "v1alpha1", s3_hub_ns, "modelbackups", "nightly"
    )
    step["fault"] = loss
    status = drill_verdict(s3_hub_ns, apply_plan(s3_hub_ns, plan("no-backup", [step])))
    assert (status["phase"], status["reason"]) == ("Error", "NoBackup"), status
    assert not status.get("faults")
    assert (
        backups.read_model(location("primary", model))[1] == (FIXTURE / MANIFEST_NAME).read_bytes()
    )


def test_a_store_loss_nobody_renews_is_restored_by_the_provider_itself(
    stores: None, prefix: str
) -> None:
    """The sandbox's infrastructure provider, asked directly as the operator asks it: the
    model's objects are gone while the fault is in force, and once its expiry passes with no
    renewal (an operator that died mid-drill) the provider restores the named backup by
    itself, verified; the operator's late undo then finds nothing to do."""
    from datetime import UTC, datetime, timedelta

    from modeldr.drills.infra import InfrastructureProvider
    from sandbox import infra_daemon

    model = f"s3://models/{prefix}/tiny-bert"
    upload_dir(FIXTURE, location("standby", model))
    backup = location("backup", f"s3://modeldr-backups/{prefix}/tiny-bert")
    made = backups.run_backup(location("standby", model), backup, "full")
    provider = InfrastructureProvider(infra_daemon.ensure_running(), infra_daemon.token())
    fault_id = f"f-{prefix}"
    provider.inject(
        fault_id,
        "ModelStoreLoss",
        "standby",
        expires_at=datetime.now(UTC) + timedelta(seconds=3),
        model={
            "source": model,
            "restoreFrom": {
                "store": "backup",
                "url": str(backup.url),
                "id": made.manifest.id,
                "modelDigest": made.manifest.model_digest,
            },
        },
    )
    s3 = location("standby", model).client()
    gone = s3.list_objects_v2(Bucket="models", Prefix=f"{prefix}/").get("Contents", [])
    assert not gone  # every object of the model deleted

    def restored() -> bool:
        with contextlib.suppress(Exception):
            raw = backups.read_model(location("standby", model))[1]
            return raw == (FIXTURE / MANIFEST_NAME).read_bytes()
        return False

    kube.wait_for(restored, timeout=30, what="the provider to restore the model at expiry")
    assert not any(f["id"] == fault_id for f in provider.faults())
    assert provider.undo(fault_id) == {"id": fault_id, "undone": False}
    # Every file back and byte for byte the backup's (the restore verified each on its way).
    for name, _size in objectstore_names(location("standby", model)):
        assert (FIXTURE / name).read_bytes() == s3.get_object(
            Bucket="models", Key=f"{prefix}/tiny-bert/{name}"
        )["Body"].read()


def objectstore_names(where: backups.Location) -> list[tuple[str, int]]:
    from modeldr.kube import objectstore

    return list(objectstore.list_keys(where.client(), where.store, where.url))
