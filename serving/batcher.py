"""Dynamic batching: merge concurrent requests into padded batches.

Requests are queued as lists of token ids. One collector task forms batches in
arrival order: a batch closes when it holds ``max_batch_size`` texts, when the
next text would push its padded size (texts x longest length) past the token
budget, or when the oldest waiting text has waited ``max_delay_s``. The
deadline counts from the oldest text's arrival, so texts that queued up while
the previous batch ran go out at once instead of waiting a second delay. A
request with more texts than a batch holds is split across batches and answered
when its last row is done.

The forward pass runs on one dedicated worker thread: the event loop keeps
answering health probes and accepting requests while the model computes, and
one batch at a time is the right concurrency for one model on one device.

The queue is bounded in texts; past the bound, submit raises Overloaded with a
Retry-After estimate rather than letting latency grow without limit.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from modeldr.serving.engine import FloatArray
from modeldr.serving.errors import InferenceFailed, Overloaded, ShuttingDown
from modeldr.serving.health import HealthState
from modeldr.serving.metrics import ServeMetrics

log = logging.getLogger(__name__)

RunBatch = Callable[[list[list[int]]], FloatArray]


@dataclass
class _Job:
    token_ids: list[list[int]]
    future: asyncio.Future[FloatArray]
    enqueued: float
    next_index: int = 0
    remaining: int = 0
    started: bool = False
    rows: list[FloatArray | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.remaining = len(self.token_ids)
        self.rows = [None] * len(self.token_ids)

    @property
    def abandoned(self) -> bool:
        return self.future.done()


@dataclass(frozen=True)
class BatchLimits:
    max_batch_size: int
    max_delay_s: float
    max_tokens: int | None
    max_queue: int


def fits(count: int, longest: int, next_length: int, limits: BatchLimits) -> bool:
    """Whether one more text of next_length fits a batch of count texts padded to longest."""
    if count == 0:
        return True  # a batch always takes at least one text, however long
    if count >= limits.max_batch_size:
        return False
    if limits.max_tokens is None:
        return True
    return (count + 1) * max(longest, next_length) <= limits.max_tokens


class DynamicBatcher:
    def __init__(
        self,
        run_batch: RunBatch,
        limits: BatchLimits,
        metrics: ServeMetrics,
        health: HealthState,
    ) -> None:
        self._run_batch = run_batch
        self.limits = limits
        self._metrics = metrics
        self._health = health
        self._queue: deque[_Job] = deque()
        self._queued_texts = 0
        self._arrival = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        # Seconds of inference per text, smoothed: sizes the Retry-After hint.
        self._seconds_per_text = 0.01

    @property
    def queued_texts(self) -> int:
        return self._queued_texts

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._collect(), name="batcher")

    async def stop(self) -> None:
        """Finish every accepted text, then stop: shutdown never fails a request."""
        self._closing = True
        self._arrival.set()
        if self._task is not None:
            await self._task
        self._executor.shutdown(wait=True)

    def retry_after_s(self) -> int:
        return max(1, min(60, math.ceil(self._queued_texts * self._seconds_per_text)))

    async def submit(self, token_ids: list[list[int]]) -> FloatArray:
        """Queue the texts of one request; return one output row per text."""
        if self._closing:
            raise ShuttingDown("server is shutting down")
        if not token_ids:
            return np.zeros((0, 0), dtype=np.float32)
        if self._queued_texts + len(token_ids) > self.limits.max_queue:
            raise Overloaded(self._queued_texts, self.limits.max_queue, self.retry_after_s())
        future: asyncio.Future[FloatArray] = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(token_ids, future, time.monotonic()))
        self._queued_texts += len(token_ids)
        self._metrics.queue_depth.set(self._queued_texts)
        self._arrival.set()
        return await future

    def _drop_abandoned_head(self) -> None:
        """Skip requests whose caller is gone (cancelled or already failed)."""
        while self._queue and self._queue[0].abandoned:
            job = self._queue.popleft()
            self._queued_texts -= len(job.token_ids) - job.next_index
        self._metrics.queue_depth.set(self._queued_texts)

    def _batch_full(self) -> bool:
        """Whether the queue already holds a full batch (then there is no point waiting)."""
        count = longest = 0
        for job in self._queue:
            if job.abandoned:
                continue
            for row in job.token_ids[job.next_index :]:
                if not fits(count, longest, len(row), self.limits):
                    return True
                count += 1
                longest = max(longest, len(row))
        return False

    def _take(self) -> list[tuple[_Job, int]]:
        items: list[tuple[_Job, int]] = []
        longest = 0
        while self._queue:
            self._drop_abandoned_head()
            if not self._queue:
                break
            job = self._queue[0]
            row = job.token_ids[job.next_index]
            if not fits(len(items), longest, len(row), self.limits):
                break
            items.append((job, job.next_index))
            longest = max(longest, len(row))
            job.next_index += 1
            self._queued_texts -= 1
            if job.next_index == len(job.token_ids):
                self._queue.popleft()
        self._metrics.queue_depth.set(self._queued_texts)
        return items

    async def _collect(self) -> None:
        while True:
            self._drop_abandoned_head()
            if not self._queue:
                if self._closing:
                    return
                self._arrival.clear()
                await self._arrival.wait()
                continue
            deadline = self._queue[0].enqueued + self.limits.max_delay_s
            while not self._closing and not self._batch_full():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._arrival.clear()
                try:
                    await asyncio.wait_for(self._arrival.wait(), timeout=remaining)
                except TimeoutError:
                    break
            batch = self._take()
            if batch:
                await self._run(batch)

    def _timed_run(self, rows: list[list[int]]) -> tuple[FloatArray, float]:
        started = time.perf_counter()
        output = self._run_batch(rows)
        return output, time.perf_counter() - started

    async def _run(self, batch: list[tuple[_Job, int]]) -> None:
        now = time.monotonic()
        for job, _ in batch:
            if not job.started:
                job.started = True
                self._metrics.queue_wait.observe(now - job.enqueued)
        rows = [job.token_ids[index] for job, index in batch]
        self._metrics.batch_size.observe(len(rows))
        self._metrics.batch_tokens.observe(len(rows) * max(len(row) for row in rows))
        loop = asyncio.get_running_loop()
        try:
            output, seconds = await loop.run_in_executor(self._executor, self._timed_run, rows)
            if output.shape[0] != len(rows):
                raise RuntimeError(f"model returned {output.shape[0]} rows for {len(rows)} texts")
        except Exception:
            # Logged here with the trace; the client only learns that inference failed.
            log.exception("inference failed for a batch of %d texts", len(rows))
            self._metrics.inference_failures.inc()
            self._health.record_failure()
            for job, _ in batch:
                if not job.future.done():
                    job.future.set_exception(InferenceFailed())
            return
        self._health.record_success()
        self._metrics.inference_duration.observe(seconds)
        self._metrics.texts.inc(len(rows))
        self._seconds_per_text = 0.8 * self._seconds_per_text + 0.2 * (seconds / len(rows))
        for position, (job, index) in enumerate(batch):
            if job.future.done():
                continue
            job.rows[index] = output[position]
            job.remaining -= 1
            if job.remaining == 0:
                job.future.set_result(np.stack([row for row in job.rows if row is not None]))
