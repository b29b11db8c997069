"""The pure parts of bench/serving_bench.py's device sweep: FLOPs, peaks, results merge."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

import bench.serving_bench as bench
from bench.serving_bench import (
    BERT_BASE_GFLOP_PER_SEQUENCE,
    GPU_NOTE_PREFIX,
    achieved,
    flops_per_sequence,
    gpu_note,
    keep_device_sweep,
    merge_device_sweep,
    parse_batch_sizes,
    peak_bf16_tflops,
    with_gpu_note,
)

pytestmark = pytest.mark.serving

BERT_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "intermediate_size": 3072}


def test_bert_base_flops_match_the_issue_figure() -> None:
    flop = flops_per_sequence(**BERT_BASE, sequence_length=128, num_labels=2)
    # 12 x 128 x (4 x 768^2 + 2 x 768 x 3072) MACs + 12 x 2 x 128^2 x 768 + pooler + head
    macs = 12 * 128 * (4 * 768**2 + 2 * 768 * 3072) + 12 * 2 * 128**2 * 768 + 768**2 + 768 * 2
    assert flop == 2 * macs
    assert flop / 1e9 == pytest.approx(BERT_BASE_GFLOP_PER_SEQUENCE, rel=0.005)


def test_flops_scale_with_sequence_length() -> None:
    short = flops_per_sequence(**BERT_BASE, sequence_length=64)
    long = flops_per_sequence(**BERT_BASE, sequence_length=128)
    # Linear in the matmuls, quadratic in attention: a little more than twice.
    assert 2.0 < long / short < 2.1
    assert flops_per_sequence(**BERT_BASE, sequence_length=128, num_labels=0) < long + 1


def test_achieved_tflops_and_peak_share() -> None:
    tflops, share = achieved(10_000.0, 22.4e9, 989.0)
    assert tflops == pytest.approx(224.0)
    assert share == pytest.approx(224.0 / 989.0)
    unknown_tflops, unknown_share = achieved(10_000.0, 22.4e9, None)
    assert unknown_tflops == pytest.approx(224.0)
    assert unknown_share is None


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA GH200 480GB", 989.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA A100 80GB PCIe", 312.0),
        ("NVIDIA A10", 125.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA L40", 181.0),
        ("NVIDIA GeForce RTX 4090", 165.0),
        ("NVIDIA A10G", None),  # not in NVIDIA's public datasheets: no guess
        ("Tesla T4", None),  # no bf16 tensor cores
    ],
)
def test_peak_lookup_by_device_name(name: str, peak: float | None) -> None:
    found, source = peak_bf16_tflops(name)
    assert found == peak
    assert ("table" in source) == (peak is not None)


def test_peak_override_wins() -> None:
    assert peak_bf16_tflops("NVIDIA H100 80GB HBM3", 700.0) == (700.0, "--peak-tflops")
    assert peak_bf16_tflops("some new accelerator", 123.0) == (123.0, "--peak-tflops")


def test_parse_batch_sizes() -> None:
    assert parse_batch_sizes("1,2, 4,256") == [1, 2, 4, 256]
    for bad in ("", "0,1", "1,-2"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_batch_sizes(bad)


SWEEP = {
    "device_name": "NVIDIA H200",
    "dtype": "bfloat16",
    "generated_at": "2030-01-01T00:00:00Z",
    "peak_bf16_tflops": 989.0,
    "results": [
        {"batch_size": 1, "sequences_per_s": 900.0, "achieved_tflops": 20.2, "peak_share": 0.02},
        {"batch_size": 256, "sequences_per_s": 9000.0, "achieved_tflops": 201.2, "peak_share": 0.2},
        {"batch_size": 512, "error": "out of device memory"},
    ],
}


def test_gpu_note_follows_what_was_recorded() -> None:
    missing = gpu_note(None)
    assert missing.startswith(GPU_NOTE_PREFIX) and "no device sweep recorded" in missing
    assert "--device-sweep --device cuda" in missing
    recorded = gpu_note(SWEEP)
    assert recorded.startswith(f"{GPU_NOTE_PREFIX}: device_sweep recorded on NVIDIA H200")
    assert "best 9000 sequences/s at batch 256, 201.2 TFLOP/s, 20.0% of the 989 TFLOP/s" in (
        recorded
    )


def test_merge_keeps_cpu_results_and_replaces_the_gpu_note() -> None:
    cpu = {
        "benchmark": "serving",
        "servers": {"modeldr": {"phases": [1, 2]}},
        "comparison": [{"concurrency": 1}],
        "notes": ["GPU part skipped: no GPU was available ...", "Client and server share."],
    }
    merged = merge_device_sweep(cpu, SWEEP)
    assert merged["device_sweep"] is SWEEP
    assert merged["servers"] == cpu["servers"] and merged["comparison"] == cpu["comparison"]
    assert merged["notes"] == [gpu_note(SWEEP), "Client and server share."]
    assert "device_sweep" not in cpu  # the input is not modified
    # Regenerating again (e.g. after a CPU rerun) keeps exactly one GPU note.
    assert with_gpu_note(merged["notes"], None) == [gpu_note(None), "Client and server share."]


def test_cpu_rerun_keeps_a_recorded_sweep() -> None:
    fresh = {"servers": {"modeldr": {}}, "notes": ["Client and server share."]}
    kept = keep_device_sweep(fresh, {"servers": {"old": {}}, "device_sweep": SWEEP})
    assert kept["servers"] == fresh["servers"] and kept["device_sweep"] is SWEEP
    assert kept["notes"] == [gpu_note(SWEEP), "Client and server share."]
    none = keep_device_sweep(fresh, {})
    assert "device_sweep" not in none
    assert none["notes"] == [gpu_note(None), "Client and server share."]


def _sweep_args(output: Path, device: str) -> argparse.Namespace:
    return bench._parser().parse_args(
        ["--device-sweep", "--device", device, "--batch-sizes", "1,2", "--output", str(output)]
    )


def test_cuda_sweep_merges_into_the_results_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    calls: list[dict[str, Any]] = []

    def fake_sweep(device: str, batch_sizes: list[int], **options: Any) -> dict[str, Any]:
        calls.append({"device": device, "batch_sizes": batch_sizes, **options})
        return SWEEP

    monkeypatch.setattr(bench, "device_sweep", fake_sweep)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    output = tmp_path / "serving.json"
    cpu = {"benchmark": "serving", "servers": {"modeldr": {"phases": []}}, "notes": ["x"]}
    output.write_text(json.dumps(cpu))
    assert bench.run_device_sweep(_sweep_args(output, "cuda")) == 0
    written = json.loads(output.read_text())
    assert written == {**cpu, "device_sweep": SWEEP, "notes": [gpu_note(SWEEP), "x"]}
    assert calls[0]["device"] == "cuda" and calls[0]["batch_sizes"] == [1, 2]
    assert calls[0]["dtype"] == "auto"  # bfloat16 on CUDA


def test_cpu_sweep_goes_to_its_own_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "device_sweep", lambda *args, **kwargs: SWEEP)
    output = tmp_path / "cpu.json"
    assert bench.run_device_sweep(_sweep_args(output, "cpu")) == 0
    assert json.loads(output.read_text()) == {
        "benchmark": "serving-device-sweep",
        "device_sweep": SWEEP,
    }
    args = bench._parser().parse_args(["--device-sweep", "--device", "cpu"])
    assert args.output is None  # run_device_sweep then writes DEVICE_SWEEP_CPU_RESULTS
    assert bench.DEVICE_SWEEP_CPU_RESULTS.name == "serving-device-sweep-cpu.json"


def _phase(rps: float, p99: float) -> dict[str, float]:
    return {"throughput_rps": rps, "p99_ms": p99}


def test_compare_and_target_summary() -> None:
    levels = len(bench.CONCURRENCIES)
    results = {
        "baseline": {"phases": [_phase(10, 100)] * levels},
        "modeldr": {"phases": [_phase(20, 90)] * (levels - 1) + [_phase(35, 110)]},
    }
    comparison = bench.compare(results, ["modeldr"])
    assert [row["concurrency"] for row in comparison] == list(bench.CONCURRENCIES)
    assert comparison[0]["modeldr_throughput_ratio"] == 2.0
    assert comparison[0]["modeldr_p99_ratio"] == 0.9
    summary = bench.target_summary(comparison, ["modeldr"])
    assert summary["best_ratio_modeldr"] == 3.5
    # 3.5x only where p99 is worse than the baseline's: the target is not met.
    assert summary["met_modeldr"] is False
    results["modeldr"]["phases"][-1] = _phase(35, 100)
    assert bench.target_summary(bench.compare(results, ["modeldr"]), ["modeldr"])["met_modeldr"]


def test_server_configs_per_device(tmp_path: Path) -> None:
    cpu = bench.server_configs(tmp_path, "cpu")
    assert [name for name, _, _ in cpu] == ["baseline", "modeldr", "modeldr-int8"]
    cuda = bench.server_configs(tmp_path, "cuda")
    assert [name for name, _, _ in cuda] == ["baseline", "modeldr"]
    baseline_cmd, modeldr_opts = cuda[0][1], cuda[1][1]
    assert baseline_cmd[-2:] == ["--baseline-device", "cuda"]
    assert modeldr_opts[:2] == ["--device", "cuda"]
    assert "--quantize" not in modeldr_opts  # int8 is a CPU-only option
