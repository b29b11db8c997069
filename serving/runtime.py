"""The server's moving parts and their lifecycle: load, warm up, serve, drain, stop.

Model loading runs in the background after the HTTP listener is up, so
``/v2/health/live`` answers from the first moment while ``/v2/health/ready``
stays 503 until the weights are loaded *and* a warm-up batch has run (readiness
that passes before the model can serve is kserve#799 / pytorch/serve#2099).
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from modeldr.serving.batcher import BatchLimits, DynamicBatcher
from modeldr.serving.config import ServeConfig
from modeldr.serving.engine import FloatArray, InferenceEngine
from modeldr.serving.errors import (
    InputTooLarge,
    InvalidInput,
    NotReady,
    Overloaded,
    ServingError,
    limit_hint,
)
from modeldr.serving.health import HealthState
from modeldr.serving.manifest import Task, VerifiedModel
from modeldr.serving.metrics import ServeMetrics

log = logging.getLogger(__name__)

WARMUP_BATCH = 4


@dataclass(frozen=True)
class ModelCard:
    """What the V2 metadata endpoint says, known from config.json before loading."""

    name: str
    version: str
    digest: str
    task: Task
    labels: tuple[str, ...]
    hidden_size: int

    @property
    def output_names(self) -> list[str]:
        if self.task == "sequence-classification":
            return ["label", "probabilities"]
        return ["embedding"]

    @classmethod
    def from_verified(cls, name: str, verified: VerifiedModel) -> ModelCard:
        config = json.loads((verified.directory / "config.json").read_text(encoding="utf-8"))
        labels: tuple[str, ...] = ()
        if verified.manifest.task == "sequence-classification":
            id2label = {int(k): str(v) for k, v in (config.get("id2label") or {}).items()}
            count = int(config.get("num_labels", len(id2label) or 2))
            labels = tuple(id2label.get(i, f"LABEL_{i}") for i in range(count))
        return cls(
            name=name,
            version=verified.manifest.revision,
            digest=verified.digest,
            task=verified.manifest.task,
            labels=labels,
            hidden_size=int(config.get("hidden_size", 0)),
        )


class Runtime:
    def __init__(self, config: ServeConfig, verified: VerifiedModel) -> None:
        self.config = config
        self.verified = verified
        self.card = ModelCard.from_verified(config.model_name, verified)
        self.health = HealthState(config.failure_threshold)
        self.metrics = ServeMetrics()
        self.metrics.bind_health(lambda: self.health.ready, lambda: self.health.draining)
        self.engine: InferenceEngine | None = None
        self.batcher: DynamicBatcher | None = None
        self.exit_code: int | None = None  # set when the server must stop (load failure)
        self._tokenizer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize")
        self._tasks: list[asyncio.Task[None]] = []

    # Lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._load_and_warm(), name="load-model"))

    def begin_drain(self) -> None:
        if not self.health.draining:
            log.info("draining: readiness is now false; still serving accepted and new requests")
        self.health.begin_drain()

    async def stop(self) -> None:
        """Called after the HTTP server stopped: finish queued texts, then release."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.batcher is not None:
            await self.batcher.stop()
        self._tokenizer_pool.shutdown(wait=True)

    async def _load_and_warm(self) -> None:
        from modeldr.serving.loader import load_model

        config = self.config
        try:
            if config.load_delay_s > 0:
                log.info("waiting %.1fs before loading (--load-delay-s)", config.load_delay_s)
                await asyncio.sleep(config.load_delay_s)
            loaded = await asyncio.to_thread(load_model, config, self.verified)
            self.health.mark_loaded()
            engine = InferenceEngine(
                loaded,
                truncate=config.truncate,
                pooling=config.pooling,
                normalize=config.normalize_embeddings,
            )
            await asyncio.to_thread(engine.warmup, min(config.max_batch_size, WARMUP_BATCH))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("cannot serve model %s: %s", self.verified.directory, exc, exc_info=True)
            self.exit_code = 1
            return
        limits = BatchLimits(
            max_batch_size=config.max_batch_size,
            max_delay_s=config.max_batch_delay_ms / 1000.0,
            max_tokens=config.max_batch_tokens,
            max_queue=config.max_queue,
        )
        self.batcher = DynamicBatcher(engine.run, limits, self.metrics, self.health)
        self.batcher.start()
        self.engine = engine
        self.metrics.model_info.labels(
            model=self.card.name,
            revision=self.card.version,
            digest=f"sha256:{self.card.digest}",
            task=self.card.task,
            device=loaded.device,
            dtype=loaded.dtype,
            quantize=loaded.quantize,
            backend=loaded.backend,
        ).set(1)
        if loaded.device.startswith("cuda"):
            self.metrics.enable_gpu_memory(0)
        self.health.mark_warmed()
        log.info("model %r ready (warm-up batch done)", self.card.name)
        self._tasks.append(asyncio.get_running_loop().create_task(self._recovery_probe()))

    async def _recovery_probe(self) -> None:
        """While failing, push the warm-up text through the real path; success heals."""
        while True:
            await asyncio.sleep(self.config.recovery_probe_interval_s)
            if not self.health.failing or self.engine is None or self.batcher is None:
                continue
            if self.health.draining:
                return
            try:
                ids = await self.tokenize(["modeldr recovery probe"])
                await self.batcher.submit(ids)
                log.info("recovery probe succeeded: inference works again")
            except ServingError:
                log.warning("recovery probe failed; staying not ready")

    # Inference -------------------------------------------------------------------------

    async def tokenize(self, texts: list[str]) -> list[list[int]]:
        assert self.engine is not None
        loop = asyncio.get_running_loop()
        # Off the event loop: a large request's tokenization takes milliseconds.
        return await loop.run_in_executor(self._tokenizer_pool, self.engine.tokenize, texts)

    async def infer(self, texts: list[str]) -> FloatArray:
        """Validate limits, queue, await the batch; a ServingError for every refusal."""
        config = self.config
        if not texts:
            raise InvalidInput("no texts given: send at least one")
        if len(texts) > config.max_texts_per_request:
            self.metrics.rejected.labels(reason="too_many_texts").inc()
            raise InputTooLarge(
                f"request has {len(texts)} texts; the limit is {config.max_texts_per_request} "
                f"per request ({limit_hint('max_texts_per_request')})",
            )
        if self.engine is None or self.batcher is None:
            self.metrics.rejected.labels(reason="not_loaded").inc()
            reason = self.health.not_ready_reason() or "model is not loaded"
            raise NotReady(f"model {self.card.name!r} is not ready: {reason}")
        try:
            ids = await self.tokenize(texts)
        except InputTooLarge:
            self.metrics.rejected.labels(reason="too_long").inc()
            raise
        try:
            return await self.batcher.submit(ids)
        except Overloaded:
            self.metrics.rejected.labels(reason="queue_full").inc()
            raise
