"""Past the queue bound a real server answers 429 with Retry-After: never 500, never a hang."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.serving.conftest import Launcher, ModelDir

pytestmark = pytest.mark.serving


def test_overload_returns_429_with_retry_after(
    start_server: Launcher, classifier_dir: ModelDir
) -> None:
    # A long batch window holds accepted texts in the queue, so the bound is reached
    # deterministically by a burst instead of by racing a fast tiny model.
    server = start_server(
        classifier_dir,
        "--max-queue",
        "4",
        "--max-texts-per-request",
        "2",
        "--max-batch-size",
        "64",
        "--max-batch-delay-ms",
        "3000",
    )
    barrier = threading.Barrier(12)
    responses: list[httpx.Response] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def send(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            response = httpx.post(
                server.url("/predict"), json={"texts": [f"burst {index}"]}, timeout=30
            )
            with lock:
                responses.append(response)
        except BaseException as exc:  # recorded, asserted below
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 4 + [429] * 8, codes
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
            error = response.json()["error"]
            assert "server overloaded" in error and "the limit is 4" in error
            assert "--max-queue / MODELDR_SERVE_MAX_QUEUE" in error
    metrics = httpx.get(server.url("/metrics"), timeout=10).text
    assert 'modeldr_serve_rejected_requests_total{reason="queue_full"} 8.0' in metrics
    # Still healthy afterwards: shedding load is not a failure.
    assert server.status("/v2/health/ready") == 200
    assert httpx.post(server.url("/predict"), json={"texts": ["after"]}, timeout=30).is_success
