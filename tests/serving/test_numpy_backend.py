"""The torch-free numpy backend: same answers as torch, chosen by `auto` without torch.

Parity is checked in-process on the committed trained classifier and on random-weight
embedders (every pooling/normalize setting, every supported activation), then end to end:
real `modeldr-serve` processes with --backend torch, --backend numpy and --backend auto
with torch hidden from the import system must answer /predict alike.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pydantic import ValidationError
from safetensors.numpy import load_file, save_file

from modeldr.serving.config import Backend, ServeConfig, config_from_sources, describe_error
from modeldr.serving.engine import InferenceEngine
from modeldr.serving.loader import ModelLoadError, load_model, resolve_backend
from modeldr.serving.manifest import Task, verify_model_dir, write_manifest
from modeldr.serving.numpy_bert import _erf
from tests.serving.conftest import Launcher, ModelDir, ServerProcess, copy_model
from tests.serving.test_server_api import metric

pytestmark = pytest.mark.serving

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests/fixtures/models/tiny-review-bert"
TOLERANCE = 1e-5
# Varied lengths, so every batch below is padded: one token up to the 128-position limit.
TEXTS = [
    "The delivery took three weeks, but the sound is excellent. I would buy it again.",
    "The parcel arrived on time, but the screen stopped working. I want a refund.",
    "a",
    "",
    "Although the delivery was slow, the battery is not reliable. " * 4,
    "good",
    "the screen is excellent and the sound is excellent",
    "unknown words zyxq qqq, punctuation!?",
]
LONG = " ".join(["excellent"] * 120)  # 122 tokens with [CLS]/[SEP]


def engine_for(directory: Path, backend: Backend, task: Task, **settings: Any) -> InferenceEngine:
    verified = verify_model_dir(directory, None)
    assert verified.manifest.task == task
    config = ServeConfig(model_dir=directory, model_name="m", backend=backend, cpu_threads=1)
    return InferenceEngine(load_model(config, verified), truncate=False, **settings)


def batches(engine: InferenceEngine) -> Iterator[list[list[int]]]:
    ids = engine.tokenize([*TEXTS, LONG])
    yield ids  # everything in one padded batch
    yield ids[:1]
    yield ids[2:4]  # the shortest ones
    yield [ids[-1], ids[2]]  # the longest with the shortest


def assert_same_outputs(torch_engine: InferenceEngine, numpy_engine: InferenceEngine) -> None:
    assert numpy_engine.loaded.backend == "numpy" and torch_engine.loaded.backend == "torch"
    for batch in batches(torch_engine):
        expected = torch_engine.run(batch)
        got = numpy_engine.run(batch)
        assert got.dtype == np.float32 and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)


def test_erf_matches_math_erf() -> None:
    import math

    x = np.linspace(-6.0, 6.0, 120_001)
    expected = np.array([math.erf(value) for value in x])
    assert np.abs(_erf(x) - expected).max() < 1e-7


def test_trained_classifier_same_probabilities() -> None:
    task: Task = "sequence-classification"
    torch_engine = engine_for(FIXTURE, "torch", task)
    numpy_engine = engine_for(FIXTURE, "numpy", task)
    assert numpy_engine.loaded.labels == torch_engine.loaded.labels == ("negative", "positive")
    assert_same_outputs(torch_engine, numpy_engine)
    rows = numpy_engine.run(numpy_engine.tokenize(TEXTS[:2]))
    assert list(rows.argmax(axis=1)) == [1, 0]  # it really classifies: positive, negative
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-6)


def write_bert(directory: Path, task: Task, **config: Any) -> Path:
    """A random-weight tiny BERT with config overrides, laid out like every model dir."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    from modeldr.serving.tiny import save_model_dir
    from modeldr.serving.vocab import build_vocabulary

    tokens = build_vocabulary(None)
    bert_config = BertConfig(
        vocab_size=len(tokens),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=256,
        **config,
    )
    torch.manual_seed(3)
    factory = BertModel if task == "feature-extraction" else BertForSequenceClassification
    save_model_dir(directory, factory(bert_config), tokens, task, "r1", 256)
    return directory


@pytest.mark.parametrize(("pooling", "normalize"), [("mean", False), ("cls", True)])
def test_embedder_same_embeddings(embedder_dir: ModelDir, pooling: str, normalize: bool) -> None:
    settings = {"pooling": pooling, "normalize": normalize}
    task: Task = "feature-extraction"
    torch_engine = engine_for(embedder_dir.path, "torch", task, **settings)
    numpy_engine = engine_for(embedder_dir.path, "numpy", task, **settings)
    assert_same_outputs(torch_engine, numpy_engine)
    if normalize:
        rows = numpy_engine.run(numpy_engine.tokenize(TEXTS))
        np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize(
    ("activation", "task", "pooling", "normalize"),
    [
        ("gelu_new", "feature-extraction", "cls", False),
        ("relu", "feature-extraction", "mean", True),
        ("gelu_pytorch_tanh", "sequence-classification", "mean", False),
    ],
)
def test_other_activations_and_eps(
    tmp_path: Path, activation: str, task: Task, pooling: str, normalize: bool
) -> None:
    directory = write_bert(tmp_path / "m", task, hidden_act=activation, layer_norm_eps=1e-5)
    settings = {"pooling": pooling, "normalize": normalize}
    assert_same_outputs(
        engine_for(directory, "torch", task, **settings),
        engine_for(directory, "numpy", task, **settings),
    )


# Refusals ------------------------------------------------------------------------------


def load_numpy(directory: Path, **settings: Any) -> None:
    config = ServeConfig(model_dir=directory, model_name="m", backend="numpy", **settings)
    load_model(config, verify_model_dir(directory, None))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"device": "cuda"}, "--device cuda needs the torch backend"),
        ({"dtype": "bfloat16"}, "--dtype bfloat16 is not supported by the numpy backend"),
        ({"quantize": "dynamic-int8"}, "--quantize dynamic-int8 is not supported by the numpy"),
    ],
)
def test_numpy_refuses_what_it_cannot_do(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load_numpy(FIXTURE, **settings)


def edited_copy(source: Path, destination: Path, **config: Any) -> Path:
    copy_model(ModelDir(source, ""), destination)
    (destination / "modeldr-manifest.json").unlink()
    path = destination / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    write_manifest(destination, "sequence-classification", "edited")
    return destination


def test_unsupported_model_type_names_what_is_supported(tmp_path: Path) -> None:
    directory = edited_copy(
        FIXTURE, tmp_path / "m", model_type="roberta", architectures=["RobertaModel"]
    )
    with pytest.raises(ModelLoadError, match=r"runs model_type bert .*'roberta'.*--backend torch"):
        load_numpy(directory)


def test_unsupported_activation(tmp_path: Path) -> None:
    directory = edited_copy(FIXTURE, tmp_path / "m", hidden_act="silu")
    with pytest.raises(ModelLoadError, match=r"hidden_act gelu, gelu_new, .*'silu'"):
        load_numpy(directory)


def test_missing_weight_is_named(tmp_path: Path) -> None:
    directory = copy_model(ModelDir(FIXTURE, ""), tmp_path / "m")
    weights = directory / "model.safetensors"
    tensors = load_file(str(weights))
    del tensors["bert.encoder.layer.1.output.dense.weight"]
    save_file(tensors, str(weights), metadata={"format": "pt"})
    (directory / "modeldr-manifest.json").unlink()
    write_manifest(directory, "sequence-classification", "damaged")
    with pytest.raises(
        ModelLoadError, match=r"lack 'bert\.encoder\.layer\.1\.output\.dense\.weight'"
    ):
        load_numpy(directory)


def test_sharded_float16_checkpoint(tmp_path: Path) -> None:
    """Shards + index, float16 weights: both backends upcast to float32 and agree."""
    directory = copy_model(ModelDir(FIXTURE, ""), tmp_path / "m")
    tensors = load_file(str(directory / "model.safetensors"))
    (directory / "model.safetensors").unlink()
    names = sorted(tensors)
    shards = {
        "model-00001-of-00002.safetensors": names[::2],
        "model-00002-of-00002.safetensors": names[1::2],
    }
    for shard, keys in shards.items():
        half = {key: tensors[key].astype(np.float16) for key in keys}
        save_file(half, str(directory / shard), metadata={"format": "pt"})
    index = {
        "metadata": {"total_size": sum(t.size * 2 for t in tensors.values())},
        "weight_map": {key: shard for shard, keys in shards.items() for key in keys},
    }
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    (directory / "modeldr-manifest.json").unlink()
    write_manifest(directory, "sequence-classification", "half")
    task: Task = "sequence-classification"
    assert_same_outputs(engine_for(directory, "torch", task), engine_for(directory, "numpy", task))


def test_bfloat16_checkpoint_refused_clearly(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file as save_torch_file

    directory = copy_model(ModelDir(FIXTURE, ""), tmp_path / "m")
    weights = directory / "model.safetensors"
    tensors = {k: torch.from_numpy(v).bfloat16() for k, v in load_file(str(weights)).items()}
    save_torch_file(tensors, str(weights), metadata={"format": "pt"})
    (directory / "modeldr-manifest.json").unlink()
    write_manifest(directory, "sequence-classification", "bf16")
    with pytest.raises(ModelLoadError, match=r"bfloat16.*reads float32 or float16 weights"):
        load_numpy(directory)


def test_auto_picks_torch_when_importable_else_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_backend("auto") == "torch"
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    assert resolve_backend("auto") == "numpy"
    assert resolve_backend("numpy") == "numpy"
    with pytest.raises(ModelLoadError, match="--backend torch was requested but torch cannot"):
        resolve_backend("torch")


def test_backend_setting() -> None:
    base = {"model_dir": "/m", "model_name": "m"}
    assert ServeConfig.model_validate(base).backend == "auto"
    from_env = config_from_sources(base, {"MODELDR_SERVE_BACKEND": "numpy"})
    assert from_env.backend == "numpy"
    assert config_from_sources({**base, "backend": "torch"}, {"MODELDR_SERVE_BACKEND": "numpy"})
    with pytest.raises(ValidationError) as error:
        config_from_sources(base, {"MODELDR_SERVE_BACKEND": "onnx"})
    assert describe_error(error.value).startswith("--backend / MODELDR_SERVE_BACKEND: ")
    assert "'torch'" in describe_error(error.value)


# Real servers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> ModelDir:
    return ModelDir(FIXTURE, verify_model_dir(FIXTURE, None).digest)


@pytest.fixture(scope="module")
def torch_hidden(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for a server process in which `import torch` fails, as without torch."""
    directory = tmp_path_factory.mktemp("no-torch")
    # importlib treats a None entry in sys.modules as "cannot be imported": `import torch`
    # raises ModuleNotFoundError and importlib.util.find_spec("torch") is None, which is
    # also how transformers decides that torch is missing.
    (directory / "sitecustomize.py").write_text('import sys\nsys.modules["torch"] = None\n')
    path = os.pathsep.join(p for p in (str(directory), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path}


def predict(server: ServerProcess, texts: list[str]) -> list[dict[str, float]]:
    answer = httpx.post(server.url("/predict"), json={"texts": texts}, timeout=30)
    assert answer.status_code == 200, answer.text
    return [row["probabilities"] for row in answer.json()["predictions"]]


def test_servers_answer_alike(
    module_launcher: Launcher, trained: ModelDir, torch_hidden: dict[str, str]
) -> None:
    pin = ("--expected-digest", f"sha256:{trained.digest}")
    # Started together (no wait), so the three loads overlap.
    servers = {
        "torch": module_launcher(trained, "--backend", "torch", *pin, wait_ready=False),
        "numpy": module_launcher(trained, "--backend", "numpy", *pin, wait_ready=False),
        "auto": module_launcher(trained, *pin, wait_ready=False, env=torch_hidden),
    }
    for server in servers.values():
        server.wait_ready()
    requests = [TEXTS, [TEXTS[0]], [LONG, "a"]]
    expected = [predict(servers["torch"], texts) for texts in requests]
    for backend in ("numpy", "auto"):
        for texts, rows in zip(requests, expected, strict=True):
            got = predict(servers[backend], texts)
            for got_row, row in zip(got, rows, strict=True):
                assert got_row.keys() == row.keys()
                assert all(abs(got_row[k] - row[k]) <= TOLERANCE for k in row), (got_row, row)
    for backend, server in servers.items():
        text = httpx.get(server.url("/metrics"), timeout=10).text
        effective = "torch" if backend == "torch" else "numpy"
        labels = {"backend": effective, "device": "cpu", "dtype": "float32"}
        assert metric(text, "modeldr_serve_model_info", **labels) == 1, backend
        assert f"with the {effective} backend on cpu as float32" in server.log()
    assert "torch cannot be imported" in servers["auto"].log()
