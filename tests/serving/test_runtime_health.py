"""Readiness through warm-up and through a failure streak, in-process.

The app is driven over httpx's ASGI transport with the real Runtime, loader,
engine and batcher on a tiny model; only the engine's warm-up or forward pass is
wrapped, so a test can hold warm-up open or make inference fail on demand and
watch the probes, the ready gauge and the recovery probe react. (ASGITransport
does not run the lifespan, so the tests start and stop the runtime themselves.)
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modeldr.serving.app import create_app
from modeldr.serving.config import ServeConfig
from modeldr.serving.engine import FloatArray, InferenceEngine
from modeldr.serving.manifest import verify_model_dir
from modeldr.serving.runtime import Runtime
from tests.serving.conftest import ModelDir

pytestmark = pytest.mark.serving

NAME = "tiny"
READY_PATHS = ("/v2/health/ready", f"/v2/models/{NAME}/ready")


def make_runtime(model: ModelDir, **overrides: Any) -> Runtime:
    config = ServeConfig(model_dir=model.path, model_name=NAME, device="cpu", **overrides)
    return Runtime(config, verify_model_dir(model.path, f"sha256:{model.digest}"))


@asynccontextmanager
async def serving(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime)
    runtime.start()  # what the lifespan would do
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://modeldr.test") as client:
            yield client
    finally:
        await runtime.stop()


def run(body: Coroutine[Any, Any, None], timeout: float = 120) -> None:
    asyncio.run(asyncio.wait_for(body, timeout))


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within_s}s waiting for {what}")
        await asyncio.sleep(0.02)


async def metric(client: httpx.AsyncClient, name: str) -> float:
    text = (await client.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} not in /metrics")


async def is_ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/v2/health/ready")).status_code == 200


async def assert_not_ready(client: httpx.AsyncClient, reason: str) -> None:
    """Both probes answer 503 with a reason matching the regex; the gauge says 0."""
    for path in READY_PATHS:
        response = await client.get(path)
        assert response.status_code == 503, (path, response.text)
        body = response.json()
        assert body["ready"] is False
        assert re.fullmatch(reason, body["reason"]), (path, body)
    assert await metric(client, "modeldr_serve_ready") == 0


async def assert_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/health/ready")).json() == {"ready": True}
    assert (await client.get(f"/v2/models/{NAME}/ready")).json() == {"name": NAME, "ready": True}
    assert await metric(client, "modeldr_serve_ready") == 1


def test_not_ready_while_loaded_but_warm_up_is_held(
    classifier_dir: ModelDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered = threading.Event()
    release = threading.Event()
    warmup = InferenceEngine.warmup

    def held_warmup(self: InferenceEngine, batch_size: int) -> None:
        entered.set()
        if not release.wait(timeout=60):
            raise RuntimeError("warm-up was never released")
        warmup(self, batch_size)

    monkeypatch.setattr(InferenceEngine, "warmup", held_warmup)
    runtime = make_runtime(classifier_dir)

    async def body() -> None:
        async with serving(runtime) as client:
            try:
                assert await asyncio.to_thread(entered.wait, 60), "warm-up never started"
                # The weights are loaded; only the warm-up batch is outstanding.
                assert runtime.health.loaded and not runtime.health.warmed
                assert (await client.get("/v2/health/live")).status_code == 200
                await assert_not_ready(client, "model is warming up")
                early = await client.post("/predict", json={"texts": ["too early"]})
                assert early.status_code == 503
                assert "not ready: model is warming up" in early.json()["error"]
                await asyncio.sleep(0.3)  # time alone changes nothing while warm-up is held
                await assert_not_ready(client, "model is warming up")
            finally:
                release.set()
            await eventually(lambda: is_ready(client), 60, "readiness after warm-up")
            await assert_ready(client)
            served = await client.post("/predict", json={"texts": ["now it serves"]})
            assert served.status_code == 200, served.text

    run(body())


def test_failure_streak_turns_not_ready_and_recovery_probe_heals(
    classifier_dir: ModelDir, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="modeldr.serving.runtime")
    broken = threading.Event()
    forward = InferenceEngine.run

    def flaky_run(self: InferenceEngine, batch: list[list[int]]) -> FloatArray:
        if broken.is_set():
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return forward(self, batch)

    monkeypatch.setattr(InferenceEngine, "run", flaky_run)
    runtime = make_runtime(
        classifier_dir, failure_threshold=2, recovery_probe_interval_s=0.2, max_batch_delay_ms=0
    )

    async def predict(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post("/predict", json={"texts": ["is it working"]})

    async def body() -> None:
        async with serving(runtime) as client:
            await eventually(lambda: is_ready(client), 60, "initial readiness")
            assert (await predict(client)).status_code == 200

            broken.set()
            failed = await predict(client)
            assert failed.status_code == 500
            assert failed.json() == {"error": "inference failed; the server logged the cause"}
            await assert_ready(client)  # one failure is below --failure-threshold 2
            assert (await predict(client)).status_code == 500
            await assert_not_ready(client, r"last ([2-9]|\d\d+) inference batches failed")

            # While broken, the probe keeps pushing batches through the real path, and fails.
            await eventually(
                lambda: _at_least(client, "modeldr_serve_inference_failures_total", 4),
                10,
                "recovery probes failing while inference is broken",
            )
            await assert_not_ready(client, r"last \d+ inference batches failed")
            texts_before = await metric(client, "modeldr_serve_texts_total")

            broken.clear()  # inference works again; no client request is sent
            await eventually(lambda: is_ready(client), 10, "the recovery probe to heal")
            await assert_ready(client)
            assert runtime.health.consecutive_failures == 0
            assert await metric(client, "modeldr_serve_texts_total") == texts_before + 1
            assert (await predict(client)).status_code == 200

    run(body())
    messages = [record.getMessage() for record in caplog.records]
    assert "recovery probe failed; staying not ready" in messages
    assert "recovery probe succeeded: inference works again" in messages


async def _at_least(client: httpx.AsyncClient, name: str, value: float) -> bool:
    return await metric(client, name) >= value
