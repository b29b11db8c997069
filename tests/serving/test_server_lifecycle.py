"""Startup refusals, readiness gating and graceful drain of a real server process."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from modeldr.serving.manifest import MANIFEST_NAME, write_manifest
from tests.serving.conftest import Launcher, ModelDir, copy_model, run_cli

pytestmark = pytest.mark.serving


def test_empty_expected_digest_env_refuses_to_start(classifier_dir: ModelDir) -> None:
    done = run_cli(
        "run",
        "--model-dir",
        str(classifier_dir.path),
        "--model-name",
        "tiny",
        env={"MODELDR_SERVE_EXPECTED_DIGEST": ""},
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert (
        "invalid configuration: --expected-digest / MODELDR_SERVE_EXPECTED_DIGEST: is set "
        "but empty" in done.stderr
    )


def test_digest_mismatch_refuses_to_start(start_server: Launcher, classifier_dir: ModelDir) -> None:
    server = start_server(
        classifier_dir, "--expected-digest", "sha256:" + "0" * 64, wait_ready=False
    )
    assert server.wait_exit(timeout=60) == 3
    log = server.log()
    assert "refusing to start: manifest digest mismatch" in log
    assert str(classifier_dir.path / MANIFEST_NAME) in log
    assert f"file has sha256:{classifier_dir.digest}" in log
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url("/v2/health/live"), timeout=2)


def test_tampered_weights_refuse_to_start(
    start_server: Launcher, classifier_dir: ModelDir, tmp_path: Path
) -> None:
    model = ModelDir(copy_model(classifier_dir, tmp_path / "m"), classifier_dir.digest)
    weights = model.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    # The manifest itself is intact, so even the right --expected-digest must not help.
    server = start_server(model, "--expected-digest", model.digest, wait_ready=False)
    assert server.wait_exit(timeout=60) == 3
    assert f"sha256 mismatch for {weights}" in server.log()


def test_pickle_only_checkpoint_refused(
    start_server: Launcher, classifier_dir: ModelDir, tmp_path: Path
) -> None:
    directory = copy_model(classifier_dir, tmp_path / "m")
    (directory / "model.safetensors").rename(directory / "pytorch_model.bin")
    write_manifest(directory, "sequence-classification", "pickled")
    server = start_server(ModelDir(directory, ""), wait_ready=False)
    assert server.wait_exit(timeout=60) == 3
    assert f"pickle-only checkpoint {directory / 'pytorch_model.bin'}" in server.log()


def test_tiny_model_cli_is_reproducible(embedder_dir: ModelDir, tmp_path: Path) -> None:
    target = tmp_path / "cli-model"
    made = run_cli("tiny-model", str(target), "--task", "feature-extraction")
    assert made.returncode == 0, made.stderr
    # Same config, seed and vocabulary in another process: byte-identical artifacts.
    assert made.stdout.strip() == f"sha256:{embedder_dir.digest}"
    checked = run_cli("verify", str(target), "--expected-digest", made.stdout.strip())
    assert checked.returncode == 0, checked.stderr
    manifest = json.loads((target / MANIFEST_NAME).read_text())
    assert {"config.json", "model.safetensors", "vocab.txt"} <= set(manifest["files"])


def test_ready_only_after_load_and_warmup(start_server: Launcher, classifier_dir: ModelDir) -> None:
    server = start_server(classifier_dir, "--load-delay-s", "4", wait_ready=False)
    server.wait_until(lambda: server.status("/v2/health/live") == 200, 60, "liveness")
    ready = httpx.get(server.url("/v2/health/ready"), timeout=5)
    assert ready.status_code == 503
    assert ready.json() == {"ready": False, "reason": "model is loading"}
    assert server.status("/v2/models/tiny/ready") == 503
    early = httpx.post(server.url("/predict"), json={"texts": ["too early"]}, timeout=5)
    assert early.status_code == 503
    assert early.headers["Retry-After"] == "1"
    assert "not ready: model is loading" in early.json()["error"]
    assert "modeldr_serve_ready 0.0" in httpx.get(server.url("/metrics"), timeout=5).text
    server.wait_ready(timeout=60)
    log = server.log()
    assert log.index("loaded sequence-classification model") < log.index("warm-up batch done")
    # Started without --expected-digest: the log says so, naming the digest it serves.
    assert (
        f"WARNING modeldr.serving: no expected digest pinned (--expected-digest / "
        f"MODELDR_SERVE_EXPECTED_DIGEST): serving whatever manifest {classifier_dir.path} "
        f"holds (sha256:{classifier_dir.digest})"
    ) in log
    assert "modeldr_serve_ready 1.0" in httpx.get(server.url("/metrics"), timeout=5).text


def test_sigterm_under_load_loses_no_request(
    start_server: Launcher, classifier_dir: ModelDir
) -> None:
    drain_delay = 3.0
    server = start_server(
        classifier_dir,
        "--drain-delay-s",
        str(drain_delay),
        "--grace-period-s",
        "20",
        "--max-batch-delay-ms",
        "20",
    )
    stop_sending = threading.Event()
    outcomes: list[tuple[float, int | str]] = []
    lock = threading.Lock()

    def load(index: int) -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            for round_ in range(2000):  # bounded; normally stopped by the event
                if stop_sending.is_set():
                    return
                sent = time.monotonic()
                try:
                    outcome: int | str = client.post(
                        "/predict", json={"texts": [f"load {index} {round_}"]}
                    ).status_code
                except httpx.HTTPError as exc:
                    outcome = repr(exc)
                with lock:
                    outcomes.append((sent, outcome))

    threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    signalled = time.monotonic()
    server.signal(signal.SIGTERM)
    # Readiness flips at once while the same server keeps answering requests.
    server.wait_until(lambda: server.status("/v2/health/ready") == 503, 2.0, "not ready")
    assert server.status("/v2/health/live") == 200
    metrics = httpx.get(server.url("/metrics"), timeout=5).text
    assert "modeldr_serve_draining 1.0" in metrics and "modeldr_serve_ready 0.0" in metrics
    # Keep load up through most of the drain window, as endpoints would still route here.
    while time.monotonic() < signalled + drain_delay - 1.0:
        time.sleep(0.05)
    stop_sending.set()
    for thread in threads:
        thread.join(timeout=30)
    assert server.wait_exit(timeout=20) == 0
    failed = [o for o in outcomes if o[1] != 200]
    assert not failed, failed[:5]
    after_signal = [o for o in outcomes if o[0] > signalled]
    assert len(after_signal) >= 10, "load did not continue during the drain"
    assert "drain delay over" in server.log()


def test_accepted_requests_finish_after_listener_closes(
    start_server: Launcher, classifier_dir: ModelDir
) -> None:
    # The batch window (3 s) outlasts the drain delay (0.3 s): when the listener
    # closes, six accepted requests are still queued and must all be answered.
    server = start_server(
        classifier_dir,
        "--drain-delay-s",
        "0.3",
        "--max-batch-delay-ms",
        "3000",
        "--max-batch-size",
        "64",
    )
    results: list[int | str] = []
    finished: list[float] = []
    lock = threading.Lock()

    def send(index: int) -> None:
        try:
            code: int | str = httpx.post(
                server.url("/predict"), json={"texts": [f"in flight {index}"]}, timeout=30
            ).status_code
        except httpx.HTTPError as exc:
            code = repr(exc)
        with lock:
            results.append(code)
            finished.append(time.monotonic())

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    server.wait_until(
        lambda: "modeldr_serve_queue_depth 6.0" in httpx.get(server.url("/metrics")).text,
        10,
        "six queued texts",
    )
    server.signal(signal.SIGTERM)
    refused_at = None
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            httpx.get(server.url("/v2/health/live"), timeout=1)
        except httpx.ConnectError:
            refused_at = time.monotonic()
            break
        time.sleep(0.02)
    assert refused_at is not None, "listener never closed"
    for thread in threads:
        thread.join(timeout=30)
    assert results == [200] * 6
    assert min(finished) > refused_at, "requests finished before the listener closed"
    assert server.wait_exit(timeout=20) == 0
