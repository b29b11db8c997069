"""Prometheus metrics of the model server.

Latencies are histograms, never summaries: a summary's quantiles cannot be
aggregated across replicas (triton#3060), while histogram buckets sum, so
``histogram_quantile(0.99, sum by (le) (rate(..._bucket[5m])))`` is the p99 of
the whole Deployment: what a drill's Prometheus gate needs. Each server gets its
own registry so tests and embedding never collide with the global one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "modeldr_serve"
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
TOKEN_BUCKETS = (16, 64, 256, 1024, 4096, 16384, 65536, 262144)


class ServeMetrics:
    def __init__(self) -> None:
        # *_created series only double the scrape size; nothing here reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes, cpu seconds, fds
        PlatformCollector(registry=r)
        # Registration order is the exposition's order: keep it when adding a metric.
        self._register_http(r)
        self._register_batching(r)
        self._register_load(r)
        self._register_model_state(r)

    def _register_http(self, r: CollectorRegistry) -> None:
        """Every HTTP request, by route template (MetricsMiddleware in app.py)."""
        self.requests = Counter(
            f"{PREFIX}_requests",
            "HTTP requests answered, by route template, method and status code",
            ["route", "method", "code"],
            registry=r,
        )
        self.request_duration = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Time from request start to the end of the response, by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def _register_batching(self, r: CollectorRegistry) -> None:
        """The batcher's queue and the model's batches (batcher.py)."""
        self.queue_wait = Histogram(
            f"{PREFIX}_queue_wait_seconds",
            "Time an accepted request waited in the batch queue before its first batch ran",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            f"{PREFIX}_batch_size",
            "Texts per inference batch",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_tokens = Histogram(
            f"{PREFIX}_batch_padded_tokens",
            "Tokens per inference batch after padding to the longest text",
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.inference_duration = Histogram(
            f"{PREFIX}_inference_duration_seconds",
            "Model forward time of one batch, including host/device copies",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_failures = Counter(
            f"{PREFIX}_inference_failures",
            "Inference batches that raised",
            registry=r,
        )
        self.texts = Counter(f"{PREFIX}_texts", "Texts inferred", registry=r)

    def _register_load(self, r: CollectorRegistry) -> None:
        """How much work the server holds or refuses right now."""
        self.rejected = Counter(
            f"{PREFIX}_rejected_requests",
            "Requests refused before inference, by reason",
            ["reason"],
            registry=r,
        )
        self.inflight = Gauge(
            f"{PREFIX}_inflight_requests",
            "Inference requests being handled right now",
            registry=r,
        )
        self.queue_depth = Gauge(
            f"{PREFIX}_queue_depth",
            "Texts accepted and waiting for a batch",
            registry=r,
        )

    def _register_model_state(self, r: CollectorRegistry) -> None:
        """What is served and whether it serves: the info gauge and the health gauges."""
        self.model_info = Gauge(
            f"{PREFIX}_model_info",
            "The served model (always 1): name, revision, manifest digest, device, dtype, backend",
            ["model", "revision", "digest", "task", "device", "dtype", "quantize", "backend"],
            registry=r,
        )
        self.ready = Gauge(f"{PREFIX}_ready", "1 when /v2/health/ready answers 200", registry=r)
        self.draining = Gauge(f"{PREFIX}_draining", "1 after SIGTERM, until exit", registry=r)

    def bind_health(self, ready: Callable[[], bool], draining: Callable[[], bool]) -> None:
        """Evaluate at scrape time, so the gauge can never disagree with the probe."""
        self.ready.set_function(lambda: 1.0 if ready() else 0.0)
        self.draining.set_function(lambda: 1.0 if draining() else 0.0)

    def enable_gpu_memory(self, device_index: int) -> None:
        self.registry.register(_GpuMemoryCollector(device_index))

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _GpuMemoryCollector(Collector):
    """CUDA memory of this process's PyTorch allocator, read at scrape time."""

    def __init__(self, device_index: int) -> None:
        self.device_index = device_index

    def collect(self) -> Iterator[Metric]:
        import torch

        index = str(self.device_index)
        for name, value, text in (
            ("allocated", torch.cuda.memory_allocated(self.device_index), "held by tensors"),
            ("reserved", torch.cuda.memory_reserved(self.device_index), "reserved by allocator"),
            ("max_allocated", torch.cuda.max_memory_allocated(self.device_index), "peak"),
        ):
            family = GaugeMetricFamily(
                f"{PREFIX}_gpu_memory_{name}_bytes", f"CUDA memory {text}", labels=["device"]
            )
            family.add_metric([index], float(value))
            yield family
        free, total = torch.cuda.mem_get_info(self.device_index)
        family = GaugeMetricFamily(
            f"{PREFIX}_gpu_memory_total_bytes", "CUDA device memory", labels=["device"]
        )
        family.add_metric([index], float(total))
        yield family
        family = GaugeMetricFamily(
            f"{PREFIX}_gpu_memory_free_bytes", "CUDA device memory free", labels=["device"]
        )
        family.add_metric([index], float(free))
        yield family
