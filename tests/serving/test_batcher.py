"""Dynamic batching logic, in-process with a stand-in for the model's forward pass.

The stand-in returns, per text, its length and first token id, so every test can
check that each caller got exactly its own rows in its own order.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

import numpy as np
import pytest

from modeldr.serving.batcher import BatchLimits, DynamicBatcher, fits
from modeldr.serving.engine import FloatArray
from modeldr.serving.errors import InferenceFailed, Overloaded
from modeldr.serving.health import HealthState
from modeldr.serving.metrics import ServeMetrics

pytestmark = pytest.mark.serving


class FakeModel:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.batches: list[list[list[int]]] = []
        self.fail = False
        self.lock = threading.Lock()

    def __call__(self, batch: list[list[int]]) -> FloatArray:
        with self.lock:
            self.batches.append(batch)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("CUDA error: device-side assert triggered")
        return np.array([[len(row), row[0]] for row in batch], dtype=np.float32)


def limits(**overrides: float | int | None) -> BatchLimits:
    values: dict[str, float | int | None] = {
        "max_batch_size": 8,
        "max_delay_s": 0.05,
        "max_tokens": None,
        "max_queue": 64,
    }
    values.update(overrides)
    return BatchLimits(**values)  # type: ignore[arg-type]


def run(
    model: FakeModel,
    batch_limits: BatchLimits,
    body: Callable[[DynamicBatcher, HealthState], Awaitable[None]],
    failure_threshold: int = 3,
) -> ServeMetrics:
    metrics = ServeMetrics()
    health = HealthState(failure_threshold)

    async def main() -> None:
        batcher = DynamicBatcher(model, batch_limits, metrics, health)
        batcher.start()
        try:
            await asyncio.wait_for(body(batcher, health), timeout=30)
        finally:
            await asyncio.wait_for(batcher.stop(), timeout=30)

    asyncio.run(main())
    return metrics


def ids(first: int, length: int = 3) -> list[int]:
    return [first] + [0] * (length - 1)


def test_fits() -> None:
    assert fits(0, 0, 10_000, limits(max_tokens=16))  # one text always fits
    assert not fits(8, 4, 4, limits())
    assert fits(3, 4, 4, limits(max_tokens=16))
    assert not fits(3, 4, 5, limits(max_tokens=16))  # 4 x 5 = 20 > 16


def test_concurrent_requests_share_batches() -> None:
    model = FakeModel()

    async def body(batcher: DynamicBatcher, _: HealthState) -> None:
        results = await asyncio.gather(*(batcher.submit([ids(i)]) for i in range(1, 21)))
        for i, rows in enumerate(results, start=1):
            assert rows.tolist() == [[3.0, float(i)]]

    run(model, limits(), body)
    sizes = [len(batch) for batch in model.batches]
    assert sum(sizes) == 20
    assert max(sizes) == 8  # full batches, never above the maximum
    assert len(sizes) == 3


def test_large_request_split_and_reassembled_in_order() -> None:
    model = FakeModel()

    async def body(batcher: DynamicBatcher, _: HealthState) -> None:
        rows = await batcher.submit([ids(i, length=i) for i in range(1, 20)])
        assert rows[:, 1].tolist() == list(range(1, 20))
        assert rows[:, 0].tolist() == list(range(1, 20))

    run(model, limits(), body)
    assert [len(b) for b in model.batches] == [8, 8, 3]


def test_token_budget_closes_batches() -> None:
    model = FakeModel()

    async def body(batcher: DynamicBatcher, _: HealthState) -> None:
        await asyncio.gather(*(batcher.submit([ids(i, length=10)]) for i in range(1, 7)))

    run(model, limits(max_tokens=30), body)
    for batch in model.batches:
        assert len(batch) * max(len(row) for row in batch) <= 30
    assert sum(len(b) for b in model.batches) == 6


def test_delay_waits_for_company_but_not_longer() -> None:
    model = FakeModel()

    async def body(batcher: DynamicBatcher, _: HealthState) -> None:
        first = asyncio.ensure_future(batcher.submit([ids(1)]))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(batcher.submit([ids(2)]))
        await asyncio.gather(first, second)

    run(model, limits(max_delay_s=0.5), body)
    assert [len(b) for b in model.batches] == [2]

    model = FakeModel()
    run(model, limits(max_delay_s=0.0), body)
    assert [len(b) for b in model.batches] == [1, 1]


def test_queue_bound_raises_queue_full() -> None:
    model = FakeModel(delay_s=0.2)

    async def body(batcher: DynamicBatcher, _: HealthState) -> None:
        accepted = [asyncio.ensure_future(batcher.submit([ids(i)] * 2)) for i in range(3)]
        await asyncio.sleep(0)  # let them enqueue
        with pytest.raises(Overloaded) as info:
            await batcher.submit([ids(9)])
        assert info.value.limit == 6
        assert info.value.retry_after_s >= 1
        await asyncio.gather(*accepted)

    metrics = run(model, limits(max_queue=6, max_delay_s=0.1), body)
    assert metrics.registry.get_sample_value("modeldr_serve_queue_depth") == 0


def test_failures_turn_unready_and_success_heals() -> None:
    model = FakeModel()

    async def body(batcher: DynamicBatcher, health: HealthState) -> None:
        health.mark_loaded()
        health.mark_warmed()
        model.fail = True
        for failures in (1, 2, 3):
            with pytest.raises(InferenceFailed):
                await batcher.submit([ids(1)])
            assert health.consecutive_failures == failures
            # Ready through the first threshold - 1 failures; the third one takes it out.
            assert health.ready == (failures < 3), f"after {failures} failed batches"
        assert not health.ready
        assert health.not_ready_reason() == "last 3 inference batches failed"
        model.fail = False
        await batcher.submit([ids(1)])
        assert health.ready

    metrics = run(model, limits(max_delay_s=0.0), body)
    assert metrics.registry.get_sample_value("modeldr_serve_inference_failures_total") == 3


def test_stop_finishes_accepted_work() -> None:
    model = FakeModel(delay_s=0.05)
    results: list[FloatArray] = []

    async def body(batcher: DynamicBatcher, _: HealthState) -> None:
        async def one(i: int) -> None:
            results.append(await batcher.submit([ids(i)]))

        tasks = [asyncio.ensure_future(one(i)) for i in range(1, 13)]
        await asyncio.sleep(0)
        await batcher.stop()  # closes while 12 texts are queued or running
        await asyncio.gather(*tasks)

    run(model, limits(max_batch_size=4, max_delay_s=1.0), body)
    assert len(results) == 12


def test_abandoned_requests_are_skipped() -> None:
    model = FakeModel(delay_s=0.1)

    async def body(batcher: DynamicBatcher, _: HealthState) -> None:
        running = asyncio.ensure_future(batcher.submit([ids(1)]))
        await asyncio.sleep(0.02)  # the first batch is now running
        gone = asyncio.ensure_future(batcher.submit([ids(2)]))
        await asyncio.sleep(0)
        gone.cancel()
        await running
        assert batcher.queued_texts == 0

    run(model, limits(max_delay_s=0.0), body)
    assert all(batch[0][0] != 2 for batch in model.batches)
