"""Benchmark: modeldr-serve against a naive one-at-a-time transformers pipeline server.

Both servers run the same BERT-base-shaped classifier (12 layers, hidden 768,
random weights built from a config: nothing is downloaded) on CPU, behind the
same HTTP stack (Starlette + uvicorn), on 127.0.0.1. A closed-loop client with
C concurrent workers sends single-text requests of exactly 128 tokens; every
phase is bounded in request count and time. Results go to
bench/results/serving.json and a table on stdout.

    .venv/bin/python bench/serving_bench.py            # the whole benchmark
    .venv/bin/python bench/serving_bench.py --quick    # fewer requests, smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "serving.json"
SEQ_LEN = 128
CONCURRENCIES = (1, 4, 16, 32)
# Requests per concurrency level: enough for a stable mean, bounded for a 2-core box.
REQUESTS = {1: 16, 4: 32, 16: 64, 32: 96}
QUICK_REQUESTS = {1: 4, 4: 8, 16: 16, 32: 32}
PHASE_TIMEOUT_S = 150.0
START_TIMEOUT_S = 180.0
TARGET_RATIO = 3.0


# --------------------------------------------------------------------------- baseline


def baseline_server(model_dir: Path, port: int) -> None:
    """The naive server: a transformers pipeline, one request at a time, same HTTP stack."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from transformers import pipeline

    classifier = pipeline("text-classification", model=str(model_dir), device="cpu", top_k=None)
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


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke test)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--baseline-server", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        baseline_server(args.baseline_server, args.port)
        return 0

    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so every server started is stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))

    import torch
    import transformers

    from modeldr.serving.tiny import SHAPES, build_model_dir

    plan = QUICK_REQUESTS if args.quick else REQUESTS
    bench_started = time.monotonic()
    load_at_start = os.getloadavg()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="modeldr-bench-") as tmp:
        workdir = Path(tmp)
        print("building BERT-base-shaped classifier (random weights) ...", flush=True)
        model_dir = workdir / "bert-base"
        digest = build_model_dir(model_dir, "sequence-classification", preset="bert-base")
        configs: list[tuple[str, list[str], str]] = [
            (
                "baseline",
                [sys.executable, __file__, "--baseline-server", str(model_dir)],
                "/health",
            ),
            (
                "modeldr",
                ["--max-batch-size", "8", "--max-batch-delay-ms", "5"],
                "/v2/health/ready",
            ),
            (
                "modeldr-int8",
                [
                    "--max-batch-size",
                    "8",
                    "--max-batch-delay-ms",
                    "5",
                    "--quantize",
                    "dynamic-int8",
                ],
                "/v2/health/ready",
            ),
        ]
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
                # One at a time: concurrent model loads would fight for the two cores.
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

    comparison = []
    for index, concurrency in enumerate(CONCURRENCIES):
        base = results["baseline"]["phases"][index]
        row: dict[str, Any] = {"concurrency": concurrency}
        for name in ("modeldr", "modeldr-int8"):
            ours = results[name]["phases"][index]
            row[f"{name}_throughput_ratio"] = round(
                ours["throughput_rps"] / base["throughput_rps"], 2
            )
            row[f"{name}_p99_ratio"] = round(ours["p99_ms"] / base["p99_ms"], 2)
        comparison.append(row)

    def best(name: str) -> float:
        return float(max(r[f"{name}_throughput_ratio"] for r in comparison))

    shape = SHAPES["bert-base"]
    document = {
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
            "device": "cpu",
        },
        "servers": results,
        "comparison": comparison,
        "target": {
            "throughput_ratio": TARGET_RATIO,
            "with_equal_or_better_p99": True,
            "best_ratio_fp32": best("modeldr"),
            "best_ratio_int8": best("modeldr-int8"),
            "met_fp32": any(
                r["modeldr_throughput_ratio"] >= TARGET_RATIO and r["modeldr_p99_ratio"] <= 1
                for r in comparison
            ),
            "met_int8": any(
                r["modeldr-int8_throughput_ratio"] >= TARGET_RATIO
                and r["modeldr-int8_p99_ratio"] <= 1
                for r in comparison
            ),
        },
        "rss_mb": {
            "tiny_after_warmup": rss_tiny,
            "bert_base_fp32_after_load": results["modeldr"]["rss_mb_after_load"],
            "bert_base_int8_after_load": results["modeldr-int8"]["rss_mb_after_load"],
            "baseline_after_load": results["baseline"]["rss_mb_after_load"],
        },
        "notes": [
            "GPU part skipped: no GPU was available in the session that produced this file; "
            "on a GPU, batching is where the large gains are (a batch of 8-32 costs little "
            "more than a batch of 1).",
            "On CPU at 128 tokens a single sequence already keeps both cores' GEMMs busy "
            "(M = 128 rows), so batching alone adds little throughput; the int8 row uses "
            "--quantize dynamic-int8 (approximate numerics) for the extra factor.",
            "Latency percentiles are nearest-rank over the listed request counts; with "
            "<100 samples p99 is the slowest request.",
            "Client and server share the same 2 cores.",
        ],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print()
    print(
        f"{'conc':>4} | {'baseline rps/p50/p99':>26} | {'modeldr rps/p50/p99':>26} | "
        f"{'int8 rps/p50/p99':>26} | ratio fp32 / int8"
    )
    for index, concurrency in enumerate(CONCURRENCIES):
        cells = []
        for name in ("baseline", "modeldr", "modeldr-int8"):
            p = results[name]["phases"][index]
            cells.append(f"{p['throughput_rps']:6.2f} {p['p50_ms']:8.0f} {p['p99_ms']:8.0f}")
        row = comparison[index]
        print(
            f"{concurrency:>4} | {cells[0]:>26} | {cells[1]:>26} | {cells[2]:>26} | "
            f"{row['modeldr_throughput_ratio']:.2f}x / {row['modeldr-int8_throughput_ratio']:.2f}x"
        )
    print(f"RSS MB: {document['rss_mb']}")
    print(f"wrote {args.output} in {document['duration_s']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
