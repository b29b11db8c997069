"""Benchmark: modeldr-serve against a naive one-at-a-time transformers pipeline server.

Both servers run the same BERT-base-shaped classifier (12 layers, hidden 768,
random weights built from a config: nothing is downloaded) on CPU, behind the
same HTTP stack (Starlette + uvicorn), on 127.0.0.1. A closed-loop client with
C concurrent workers sends single-text requests of exactly 128 tokens; every
phase is bounded in request count and time. Results go to
bench/results/serving.json and a table on stdout.

    .venv/bin/python bench/serving_bench.py            # the whole benchmark
    .venv/bin/python bench/serving_bench.py --quick    # fewer requests, smoke run

On a GPU machine (`--device auto` picks CUDA when present) the same comparison runs with
both servers on the GPU in bf16, modeldr batching up to 64; that writes
bench/results/serving-cuda.json (the CPU file stays):

    .venv/bin/python bench/serving_bench.py --device cuda

Device sweep (issue 3, item 11's GPU part): the same BERT-base-shaped model,
loaded by the server's own loader (bf16 on CUDA), forward passes at 128 tokens
for batch sizes 1..256; sequences/s, achieved TFLOP/s and the share of the
device's dense bf16 peak. On CUDA it is merged into bench/results/serving.json
under "device_sweep" (the CPU results stay); on CPU it goes to
bench/results/serving-device-sweep-cpu.json instead.

    .venv/bin/python bench/serving_bench.py --device-sweep --device cuda
    .venv/bin/python bench/serving_bench.py --device-sweep --device cpu --batch-sizes 1,2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "serving.json"
CUDA_RESULTS = ROOT / "bench" / "results" / "serving-cuda.json"
DEVICE_SWEEP_CPU_RESULTS = ROOT / "bench" / "results" / "serving-device-sweep-cpu.json"
SEQ_LEN = 128
CONCURRENCIES = (1, 4, 16, 32)
# Requests per concurrency level: enough for a stable mean, bounded for a 2-core box.
REQUESTS = {1: 16, 4: 32, 16: 64, 32: 96}
QUICK_REQUESTS = {1: 4, 4: 8, 16: 16, 32: 32}
# On a GPU a request takes milliseconds: more requests for phases of similar length.
CUDA_REQUESTS = {1: 200, 4: 400, 16: 1600, 32: 3200}
PHASE_TIMEOUT_S = 150.0
START_TIMEOUT_S = 180.0
TARGET_RATIO = 3.0


# --------------------------------------------------------------------------- baseline


def baseline_server(model_dir: Path, port: int, device: str = "cpu") -> None:
    """The naive server: a transformers pipeline, one request at a time, same HTTP stack
    (in bf16 on CUDA, as modeldr-serve runs there)."""
    import torch
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from transformers import pipeline

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    classifier = pipeline(
        "text-classification", model=str(model_dir), device=device, dtype=dtype, top_k=None
    )
    lock = asyncio.Lock()

    async def predict(request: Request) -> JSONResponse:
        texts = (await request.json())["texts"]
        async with lock:  # one request at a time through the pipeline
            result = await asyncio.to_thread(classifier, texts, truncation=True, max_length=512)
        return JSONResponse({"predictions": result})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ready": True})

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# --------------------------------------------------------------------------- load


@dataclass
class Phase:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    throughput_rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: with few samples, p99 is the slowest request, not a guess."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def make_texts(count: int, seed: int) -> list[str]:
    """Texts of exactly SEQ_LEN tokens: SEQ_LEN - 2 single-token words plus [CLS], [SEP]."""
    from modeldr.serving.vocab import COMMON_WORDS

    words = [w for w in COMMON_WORDS if w.isalpha() and len(w) > 2]
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(SEQ_LEN - 2)) for _ in range(count)]


def run_phase(url: str, concurrency: int, texts: list[str]) -> Phase:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    queue = list(texts)
    deadline = time.monotonic() + PHASE_TIMEOUT_S

    def worker() -> None:
        nonlocal errors
        with httpx.Client(timeout=120) as client:
            while time.monotonic() < deadline:
                with lock:
                    if not queue:
                        return
                    text = queue.pop()
                started = time.perf_counter()
                try:
                    ok = client.post(url, json={"texts": [text]}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - started
                with lock:
                    if ok:
                        latencies.append(elapsed)
                    else:
                        errors += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    done = len(latencies)
    return Phase(
        concurrency=concurrency,
        requests=done,
        errors=errors,
        seconds=round(seconds, 2),
        throughput_rps=round(done / seconds, 3) if seconds else 0.0,
        p50_ms=round(percentile(latencies, 50) * 1000, 1) if latencies else float("nan"),
        p99_ms=round(percentile(latencies, 99) * 1000, 1) if latencies else float("nan"),
        mean_ms=round(statistics.fmean(latencies) * 1000, 1) if latencies else float("nan"),
    )


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


class Server:
    def __init__(self, name: str, command: list[str], port: int, ready_path: str) -> None:
        self.name = name
        self.port = port
        self.ready_path = ready_path
        self.command = command
        self.startup_s: float | None = None
        handle, path = tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")
        os.close(handle)
        self.log_path = Path(path)
        with self.log_path.open("wb") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self) -> float:
        started = time.monotonic()
        while time.monotonic() - started < START_TIMEOUT_S:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.log_path}")
            try:
                if httpx.get(self.url(self.ready_path), timeout=2).status_code == 200:
                    if self.startup_s is None:  # the first wait measures the start-up
                        self.startup_s = time.monotonic() - started
                    return self.startup_s
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {START_TIMEOUT_S}s: see {self.log_path}")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def serve_command(model_dir: Path, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "modeldr.serving.cli",
        "run",
        "--model-dir",
        str(model_dir),
        "--model-name",
        "bert",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--drain-delay-s",
        "0",
        "--max-seq-length",
        str(SEQ_LEN),
        "--max-queue",
        "1024",
        *extra,
    ]


def measure(servers: dict[str, Server], path: str, plan: dict[int, int]) -> dict[str, Any]:
    """Interleave the servers at each concurrency, so background load on the box hits
    all of them alike instead of whichever happened to run during a busy minute."""
    results: dict[str, Any] = {}
    for name, server in servers.items():
        startup_s = server.wait_ready()
        run_phase(server.url(path), 2, make_texts(4, seed=999))  # warm-up, not measured
        results[name] = {"startup_to_ready_s": round(startup_s, 1), "phases": []}
    for concurrency in CONCURRENCIES:
        texts = make_texts(plan[concurrency], seed=7 + concurrency)  # same texts for all
        for name, server in servers.items():
            phase = run_phase(server.url(path), concurrency, texts)
            print(
                f"  {name:<14} c={concurrency:<3} {phase.throughput_rps:7.2f} req/s  "
                f"p50 {phase.p50_ms:8.1f} ms  p99 {phase.p99_ms:8.1f} ms  "
                f"({phase.requests} ok, {phase.errors} errors)",
                flush=True,
            )
            results[name]["phases"].append(asdict(phase))
    for name, server in servers.items():
        results[name]["rss_mb_after_load"] = rss_mb(server.proc.pid)
    return results


def tiny_rss(workdir: Path) -> float:
    from modeldr.serving.tiny import build_model_dir

    model_dir = workdir / "tiny"
    build_model_dir(model_dir, "sequence-classification")
    port = free_port()
    server = Server("tiny", serve_command(model_dir, port), port, "/v2/health/ready")
    try:
        server.wait_ready()
        for _ in range(8):
            httpx.post(server.url("/predict"), json={"texts": ["hello world"] * 4}, timeout=30)
        return rss_mb(server.proc.pid)
    finally:
        server.stop()


# --------------------------------------------------------------------------- device sweep

SWEEP_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# The figure for one BERT-base sequence of 128 tokens; flops_per_sequence()
# computes it from the model's config (22.35 GFLOP) and a test checks the two agree.
BERT_BASE_GFLOP_PER_SEQUENCE = 22.4
# Nominal dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from NVIDIA's datasheets,
# SXM figures where a product has several forms; matched against
# torch.cuda.get_device_name() in order, so the specific patterns come first.
# --peak-tflops overrides (clocks, power caps and other variants differ).
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    (r"\bH100\b.*\bPCIe\b", 756.0),
    (r"\bH100\b.*\bNVL\b", 835.0),
    (r"\bH200\b.*\bNVL\b", 835.0),
    (r"\bGH200\b", 989.0),
    (r"\bH200\b", 989.0),
    (r"\bH100\b", 989.0),
    (r"\bH800\b", 989.0),
    (r"\bB200\b", 2250.0),
    (r"\bA100\b", 312.0),
    (r"\bA800\b", 312.0),
    (r"\bA10\b", 125.0),
    (r"\bL40S\b", 362.0),
    (r"\bL40\b", 181.0),
    (r"\bL4\b", 121.0),
    (r"\bRTX 4090\b", 165.0),
)
GPU_NOTE_PREFIX = "GPU part"


def flops_per_sequence(
    *,
    hidden_size: int,
    num_hidden_layers: int,
    intermediate_size: int,
    sequence_length: int,
    num_labels: int = 0,
) -> float:
    """Multiply-add FLOPs (2 per MAC) of one BERT encoder forward pass over one sequence.

    Per layer and token: the Q, K, V and output projections (4 h^2 MACs) and the two
    feed-forward matmuls (2 h i); per layer and sequence: Q K^T and the attention-weighted
    sum of V (2 s^2 h). Plus the pooler (h^2) and the classifier (h x labels) on [CLS].
    Embedding lookups, layer norms, softmax and GELU are not matmuls and are left out.
    BERT-base at 128 tokens: 21.74 (matmuls) + 0.60 (attention) GFLOP = 22.35 GFLOP.
    """
    h, i, s = hidden_size, intermediate_size, sequence_length
    per_layer = s * (4 * h * h + 2 * h * i) + 2 * s * s * h
    head = h * h + h * num_labels if num_labels else 0
    return 2.0 * (num_hidden_layers * per_layer + head)


def peak_bf16_tflops(device_name: str, override: float | None = None) -> tuple[float | None, str]:
    """The dense bf16 peak to compare against, and where the figure came from."""
    if override is not None:
        return override, "--peak-tflops"
    for pattern, tflops in PEAK_BF16_TFLOPS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return tflops, f"datasheet table ({pattern})"
    return None, "unknown device: pass --peak-tflops"


def achieved(
    sequences_per_s: float, flop_per_sequence: float, peak_tflops: float | None
) -> tuple[float, float | None]:
    """Achieved TFLOP/s and its share (0..1) of the peak, when the peak is known."""
    tflops = sequences_per_s * flop_per_sequence / 1e12
    return tflops, (tflops / peak_tflops if peak_tflops else None)


def parse_batch_sizes(text: str) -> list[int]:
    sizes = [int(part) for part in text.split(",") if part.strip()]
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"batch sizes must be positive integers: {text!r}")
    return sizes


def gpu_note(sweep: dict[str, Any] | None) -> str:
    """The results file's note on the GPU part, generated from what it holds."""
    if not sweep:
        return (
            f"{GPU_NOTE_PREFIX}: no device sweep recorded (no CUDA device was available "
            "where this file was written); `.venv/bin/python bench/serving_bench.py "
            "--device-sweep --device cuda` on a GPU machine adds `device_sweep`."
        )
    ok = [row for row in sweep.get("results", []) if "sequences_per_s" in row]
    if not ok:
        return f"{GPU_NOTE_PREFIX}: device sweep on {sweep.get('device_name')} gave no result."
    best = max(ok, key=lambda row: row["sequences_per_s"])
    share = best.get("peak_share")
    peak = (
        f"{share:.1%} of the {sweep['peak_bf16_tflops']:g} TFLOP/s dense bf16 peak"
        if share is not None
        else "peak unknown"
    )
    return (
        f"{GPU_NOTE_PREFIX}: device_sweep recorded on {sweep.get('device_name')} "
        f"({sweep.get('dtype')}, {sweep.get('generated_at')}): best "
        f"{best['sequences_per_s']:.0f} sequences/s at batch {best['batch_size']}, "
        f"{best['achieved_tflops']:.1f} TFLOP/s, {peak}."
    )


def with_gpu_note(notes: Sequence[str], sweep: dict[str, Any] | None) -> list[str]:
    return [gpu_note(sweep), *(note for note in notes if not note.startswith(GPU_NOTE_PREFIX))]


def merge_device_sweep(document: dict[str, Any], sweep: dict[str, Any]) -> dict[str, Any]:
    """serving.json with device_sweep set and the GPU note regenerated; the rest kept."""
    merged = dict(document)
    merged["device_sweep"] = sweep
    merged["notes"] = with_gpu_note(document.get("notes", []), sweep)
    return merged


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def keep_device_sweep(document: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """A CPU rerun's document, keeping the device sweep an earlier (GPU) run recorded."""
    sweep = previous.get("device_sweep") or None
    kept = dict(document)
    if sweep:
        kept["device_sweep"] = sweep
    kept["notes"] = with_gpu_note(document.get("notes", []), sweep)
    return kept


def _time_forward(
    model: Any, inputs: dict[str, Any], cuda: bool, warmup: int, seconds: float, repeats: int
) -> tuple[float, int, list[float]]:
    """Median seconds per forward pass over repeats, the iterations per repeat, all repeats."""
    import torch

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    with torch.inference_mode():
        for _ in range(warmup):
            model(**inputs)
        sync()
        started = time.perf_counter()  # one more pass sizes the timed loops
        model(**inputs)
        sync()
        one = max(time.perf_counter() - started, 1e-6)
        iterations = max(3, min(10_000, round(seconds / one)))
        per_pass: list[float] = []
        for _ in range(repeats):
            if cuda:
                start_event = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
                end_event = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
                start_event.record()
                for _ in range(iterations):
                    model(**inputs)
                end_event.record()
                end_event.synchronize()
                elapsed = start_event.elapsed_time(end_event) / 1000.0
            else:
                started = time.perf_counter()
                for _ in range(iterations):
                    model(**inputs)
                elapsed = time.perf_counter() - started
            per_pass.append(elapsed / iterations)
    return statistics.median(per_pass), iterations, per_pass


def device_sweep(
    device: str,
    batch_sizes: Sequence[int],
    *,
    preset: str = "bert-base",
    dtype: str = "auto",
    peak_override: float | None = None,
    warmup: int = 3,
    seconds: float = 1.0,
    repeats: int = 3,
) -> dict[str, Any]:
    """Load the model as the server does and time forward passes per batch size."""
    import torch
    import transformers

    from modeldr.serving.config import ServeConfig
    from modeldr.serving.loader import load_model
    from modeldr.serving.manifest import verify_model_dir
    from modeldr.serving.tiny import SHAPES, build_model_dir

    if dtype == "auto":
        dtype = "bfloat16" if device == "cuda" else "float32"
    with tempfile.TemporaryDirectory(prefix="modeldr-sweep-") as tmp:
        model_dir = Path(tmp) / preset
        print(f"building {preset}-shaped classifier (random weights) ...", flush=True)
        build_model_dir(model_dir, "sequence-classification", preset=preset)  # type: ignore[arg-type]
        config = ServeConfig(
            model_dir=model_dir,
            model_name="bert",
            device=device,  # type: ignore[arg-type]
            dtype=dtype,  # type: ignore[arg-type]
            max_seq_length=SEQ_LEN,
        )
        loaded = load_model(config, verify_model_dir(model_dir, None))
        model_config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    cuda = loaded.device.startswith("cuda")
    name = torch.cuda.get_device_name(loaded.device) if cuda else cpu_name()
    if cuda:
        peak, peak_source = peak_bf16_tflops(name, peak_override)
    elif peak_override is not None:
        peak, peak_source = peak_override, "--peak-tflops"
    else:
        peak, peak_source = None, "no table for CPUs: pass --peak-tflops to compare"
    flop = flops_per_sequence(
        hidden_size=model_config["hidden_size"],
        num_hidden_layers=model_config["num_hidden_layers"],
        intermediate_size=model_config["intermediate_size"],
        sequence_length=SEQ_LEN,
        num_labels=len(loaded.labels),
    )
    vocab = int(model_config["vocab_size"])
    print(
        f"device sweep on {name} ({loaded.device}, {loaded.dtype}), {flop / 1e9:.2f} GFLOP per "
        f"sequence, peak: " + (f"{peak:g} TFLOP/s ({peak_source})" if peak else peak_source),
        flush=True,
    )
    results: list[dict[str, Any]] = []
    generator = torch.Generator().manual_seed(0)
    for batch_size in batch_sizes:
        # Ordinary word ids: above [PAD]/[UNK]/[CLS]/[SEP]/[MASK] and the other low ids.
        low = min(1000, vocab // 2)
        input_ids = torch.randint(low, vocab, (batch_size, SEQ_LEN), generator=generator)
        inputs = {
            "input_ids": input_ids.to(loaded.device),
            "attention_mask": torch.ones_like(input_ids).to(loaded.device),
            "token_type_ids": torch.zeros_like(input_ids).to(loaded.device),
        }
        if cuda:
            torch.cuda.reset_peak_memory_stats(loaded.device)
        try:
            per_pass, iterations, repeats_s = _time_forward(
                loaded.model, inputs, cuda, warmup, seconds, repeats
            )
        except torch.cuda.OutOfMemoryError:
            print(f"  batch {batch_size:>4}: out of device memory; larger sizes skipped")
            results.append({"batch_size": batch_size, "error": "out of device memory"})
            break
        sequences_per_s = batch_size / per_pass
        tflops, share = achieved(sequences_per_s, flop, peak)
        row: dict[str, Any] = {
            "batch_size": batch_size,
            "iterations_per_repeat": iterations,
            "ms_per_batch": round(per_pass * 1000, 3),
            "ms_per_batch_repeats": [round(value * 1000, 3) for value in repeats_s],
            "sequences_per_s": round(sequences_per_s, 2),
            "achieved_tflops": round(tflops, 3),
            "peak_share": round(share, 4) if share is not None else None,
        }
        if cuda:
            row["max_memory_allocated_mb"] = round(
                torch.cuda.max_memory_allocated(loaded.device) / 2**20, 1
            )
        results.append(row)
        print(
            f"  batch {batch_size:>4}: {sequences_per_s:10.1f} seq/s  {per_pass * 1000:9.2f} ms  "
            f"{tflops:8.2f} TFLOP/s  "
            + (f"{share:6.1%} of peak" if share is not None else "peak unknown"),
            flush=True,
        )
    return {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": loaded.device,
        "device_name": name,
        "dtype": loaded.dtype,
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "transformers": transformers.__version__,
        "torch_threads": None if cuda else torch.get_num_threads(),
        "model": {
            "preset": preset,
            "shape": asdict(SHAPES[preset]),  # type: ignore[index]
            "weights": "random (BertConfig), safetensors",
            "loader": "modeldr.serving.loader.load_model (the server's loading path)",
        },
        "sequence_length_tokens": SEQ_LEN,
        "flop_per_sequence": flop,
        "flop_method": "flops_per_sequence(): 2 x MACs of the projections, feed-forward, "
        "attention scores and values, pooler and classifier, from config.json",
        "peak_bf16_tflops": peak,
        "peak_source": peak_source,
        "timing": (
            f"{warmup} warm-up passes, then {repeats} repeats of N forward passes "
            f"(N sized to about {seconds:g} s) timed with "
            f"{'torch.cuda.Event' if cuda else 'time.perf_counter'}; ms_per_batch is the "
            "median repeat; inputs already on the device, torch.inference_mode"
        ),
        "results": results,
    }


def resolve_device(requested: str) -> str | None:
    """cuda or cpu for --device; None (after saying why) when cuda is asked for but absent."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        print("serving_bench: --device cuda but CUDA is not available", file=sys.stderr)
        return None
    return requested


def run_device_sweep(args: argparse.Namespace) -> int:

    device = resolve_device(args.device)
    if device is None:
        return 2
    sweep = device_sweep(
        device,
        args.batch_sizes,
        preset=args.preset,
        dtype=args.dtype,
        peak_override=args.peak_tflops,
        warmup=args.warmup,
        seconds=args.sweep_seconds,
        repeats=args.repeats,
    )
    if device == "cuda":
        output: Path = args.output or RESULTS
        existing: dict[str, Any] = {}
        if output.exists():
            existing = json.loads(output.read_text(encoding="utf-8"))
        document = merge_device_sweep(existing, sweep)
    else:
        output = args.output or DEVICE_SWEEP_CPU_RESULTS
        document = {"benchmark": "serving-device-sweep", "device_sweep": sweep}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {output}")
    return 0


# --------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke test)")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"results file (default {RESULTS.relative_to(ROOT)}; a CPU device sweep: "
        f"{DEVICE_SWEEP_CPU_RESULTS.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cuda", "cpu"),
        default="auto",
        help="where the servers (or the sweep) run; auto: cuda when available. The HTTP "
        f"benchmark on cuda writes {CUDA_RESULTS.relative_to(ROOT)}",
    )
    parser.add_argument("--baseline-server", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--baseline-device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    sweep = parser.add_argument_group(
        "device sweep", "forward passes per batch size instead of the HTTP benchmark"
    )
    sweep.add_argument("--device-sweep", action="store_true", help="run the device sweep")
    sweep.add_argument(
        "--batch-sizes",
        type=parse_batch_sizes,
        default=list(SWEEP_BATCH_SIZES),
        help="comma-separated (default %(default)s)",
    )
    sweep.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="dense bf16 peak of the device in TFLOP/s (default: looked up by device name)",
    )
    sweep.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16", "float16"),
        default="auto",
        help="auto: bfloat16 on CUDA, float32 on CPU",
    )
    sweep.add_argument("--preset", choices=("bert-base", "tiny"), default="bert-base")
    sweep.add_argument("--warmup", type=int, default=3, help="untimed passes per batch size")
    sweep.add_argument(
        "--sweep-seconds", type=float, default=1.0, help="about this long per timed repeat"
    )
    sweep.add_argument("--repeats", type=int, default=3, help="timed repeats per batch size")
    return parser


def main() -> int:
    args = _parser().parse_args()
    if args.baseline_server:
        baseline_server(args.baseline_server, args.port, args.baseline_device)
        return 0
    if args.device_sweep:
        return run_device_sweep(args)
    return run_http_benchmark(args)


def server_configs(model_dir: Path, device: str) -> list[tuple[str, list[str], str]]:
    """(name, baseline command or modeldr-serve options, ready path) of the servers compared."""
    baseline = [sys.executable, __file__, "--baseline-server", str(model_dir)]
    baseline += ["--baseline-device", device]
    ready = "/v2/health/ready"
    if device == "cuda":
        # A GPU runs a batch of 64 in little more time than one sequence: batch wide.
        batching = ["--device", "cuda", "--max-batch-size", "64", "--max-batch-delay-ms", "2"]
        return [("baseline", baseline, "/health"), ("modeldr", batching, ready)]
    batching = ["--max-batch-size", "8", "--max-batch-delay-ms", "5"]
    return [
        ("baseline", baseline, "/health"),
        ("modeldr", batching, ready),
        ("modeldr-int8", [*batching, "--quantize", "dynamic-int8"], ready),
    ]


def compare(results: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    """Per concurrency: each server's throughput and p99 as ratios of the baseline's."""
    comparison = []
    for index, concurrency in enumerate(CONCURRENCIES):
        base = results["baseline"]["phases"][index]
        row: dict[str, Any] = {"concurrency": concurrency}
        for name in names:
            ours = results[name]["phases"][index]
            row[f"{name}_throughput_ratio"] = round(
                ours["throughput_rps"] / base["throughput_rps"], 2
            )
            row[f"{name}_p99_ratio"] = round(ours["p99_ms"] / base["p99_ms"], 2)
        comparison.append(row)
    return comparison


def target_summary(comparison: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Best throughput ratio per server, and whether it reached the target at a p99 no worse
    than the baseline's at the same concurrency."""
    summary: dict[str, Any] = {"throughput_ratio": TARGET_RATIO, "with_equal_or_better_p99": True}
    for name in names:
        summary[f"best_ratio_{name}"] = max(r[f"{name}_throughput_ratio"] for r in comparison)
        summary[f"met_{name}"] = any(
            r[f"{name}_throughput_ratio"] >= TARGET_RATIO and r[f"{name}_p99_ratio"] <= 1
            for r in comparison
        )
    return summary


def run_http_benchmark(args: argparse.Namespace) -> int:
    import torch
    import transformers

    from modeldr.serving.tiny import SHAPES, build_model_dir

    device = resolve_device(args.device)
    if device is None:
        return 2
    output: Path = args.output or (RESULTS if device == "cpu" else CUDA_RESULTS)

    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so every server started is stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))

    plan = QUICK_REQUESTS if args.quick else (CUDA_REQUESTS if device == "cuda" else REQUESTS)
    bench_started = time.monotonic()
    load_at_start = os.getloadavg()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="modeldr-bench-") as tmp:
        workdir = Path(tmp)
        print("building BERT-base-shaped classifier (random weights) ...", flush=True)
        model_dir = workdir / "bert-base"
        digest = build_model_dir(model_dir, "sequence-classification", preset="bert-base")
        configs = server_configs(model_dir, device)
        servers: dict[str, Server] = {}
        try:
            for name, extra, ready_path in configs:
                port = free_port()
                if name == "baseline":
                    command = [*extra, "--port", str(port)]
                else:
                    command = serve_command(model_dir, port, *extra)
                print(f"{name}: {' '.join(command[1:])}", flush=True)
                servers[name] = Server(name, command, port, ready_path)
                # One at a time: concurrent model loads would fight for the cores.
                servers[name].wait_ready()
            results = measure(servers, "/predict", plan)
            for name, server in servers.items():
                results[name]["command"] = server.command[1:]
        finally:
            for name, server in servers.items():
                code = server.stop()
                results.setdefault(name, {})["exit_code"] = code
        print("measuring the tiny model's resident memory ...", flush=True)
        rss_tiny = tiny_rss(workdir)

    names = [name for name, _, _ in configs if name != "baseline"]
    comparison = compare(results, names)
    notes = [
        "Latency percentiles are nearest-rank over the listed request counts; with "
        "<100 samples p99 is the slowest request.",
        f"Client and servers share the machine's {os.cpu_count()} cores.",
    ]
    if device == "cpu":
        notes.insert(
            0,
            "On CPU at 128 tokens a single sequence already keeps both cores' GEMMs busy "
            "(M = 128 rows), so batching alone adds little throughput; the int8 row uses "
            "--quantize dynamic-int8 (approximate numerics) for the extra factor.",
        )
    shape = SHAPES["bert-base"]
    document: dict[str, Any] = {
        "benchmark": "serving",
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "duration_s": round(time.monotonic() - bench_started, 1),
        "quick": args.quick,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "torch_threads": torch.get_num_threads(),
            # Other work on the box skews absolute figures; the ratios are from one run.
            "load_average_1m_start_end": [
                round(load_at_start[0], 2),
                round(os.getloadavg()[0], 2),
            ],
        },
        "model": {
            "shape": asdict(shape),
            "weights": "random (BertConfig), safetensors",
            "digest": f"sha256:{digest}",
            "sequence_length_tokens": SEQ_LEN,
            "texts_per_request": 1,
            "device": device,
            "device_name": torch.cuda.get_device_name() if device == "cuda" else cpu_name(),
        },
        "servers": results,
        "comparison": comparison,
        "target": target_summary(comparison, names),
        "rss_mb": {
            "tiny_after_warmup": rss_tiny,
            **{f"{name}_after_load": results[name]["rss_mb_after_load"] for name, _, _ in configs},
        },
        "notes": notes,
    }
    if device == "cpu":
        previous = json.loads(output.read_text(encoding="utf-8")) if output.exists() else {}
        document = keep_device_sweep(document, previous)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print()
    all_names = ["baseline", *names]
    header = " | ".join(f"{name + ' rps/p50/p99':>28}" for name in all_names)
    print(f"{'conc':>4} | {header} | throughput vs baseline ({', '.join(names)})")
    for index, concurrency in enumerate(CONCURRENCIES):
        cells = []
        for name in all_names:
            p = results[name]["phases"][index]
            cells.append(f"{p['throughput_rps']:8.2f} {p['p50_ms']:8.1f} {p['p99_ms']:8.1f}")
        ratios = " / ".join(f"{comparison[index][f'{n}_throughput_ratio']:.2f}x" for n in names)
        print(f"{concurrency:>4} | " + " | ".join(f"{c:>28}" for c in cells) + f" | {ratios}")
    print(f"RSS MB: {document['rss_mb']}")
    print(f"wrote {output} in {document['duration_s']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
