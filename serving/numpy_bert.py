"""A BERT encoder forward pass in numpy: the torch-free CPU backend.

The server must run the artifact it was given (the digest check, and the ModelCorruption
drill that flips weight bytes, depend on it), so this reads the directory's own
safetensors weights with ``safetensors.numpy``: no torch, no ONNX export. It computes
what transformers' ``BertModel`` / ``BertForSequenceClassification`` compute in eval mode,
in float32 (float16 weights are upcast), for absolute position embeddings and token
type 0 (what the engine sends).

Nothing here imports torch; the loader turns the ValueErrors raised here into
ModelLoadErrors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

SUPPORTED_MODEL_TYPES = ("bert",)
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
# transformers' BertForSequenceClassification keeps the encoder under "bert."; BertModel
# saves it without a prefix.
ENCODER_PREFIXES = ("bert.", "")
_SQRT_HALF = 1.0 / math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
# erfc(z) ~ t * exp(-z^2 + P(t)), t = 1 / (1 + z/2); P's coefficients, highest power first.
_ERFC_COEFFICIENTS = (
    0.17087277,
    -0.82215223,
    1.48851587,
    -1.13520398,
    0.27886807,
    -0.18628806,
    0.09678418,
    0.37409196,
    1.00002368,
    -1.26551223,
)


class UnsupportedModel(ValueError):
    """The directory holds something this backend cannot run; the message says what."""


def _erf(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """erf via Numerical Recipes' erfc Chebyshev fit (``erfcc``), in float64.

    numpy has no erf, and math.erf element by element is ~100x slower than the rest of
    the layer. Against math.erf on a 4e-6 grid of [-8, 8] this fit's largest absolute
    error is 8.3e-8 (near |x| = 0.04): about float32's spacing just below 1, and under the
    1.4e-7 of the shorter Abramowitz-Stegun 7.1.26 fit. In-place steps: this is the
    costliest part of a small model's layer.
    """
    z = np.abs(x)
    t = 0.5 * z
    t += 1.0
    np.reciprocal(t, out=t)
    poly = np.full_like(t, _ERFC_COEFFICIENTS[0])
    for coefficient in _ERFC_COEFFICIENTS[1:]:  # Horner, highest power first
        poly *= t
        poly += coefficient
    z *= z
    poly -= z
    np.exp(poly, out=poly)
    poly *= t  # erfc(|x|)
    np.subtract(1.0, poly, out=poly)
    result: npt.NDArray[np.float64] = np.copysign(poly, x, out=poly)
    return result


def gelu(x: FloatArray) -> FloatArray:
    """Exact (erf) GELU, transformers' "gelu": x/2 (1 + erf(x / sqrt 2))."""
    wide = x.astype(np.float64)
    cdf = _erf(wide * _SQRT_HALF)
    cdf += 1.0
    cdf *= wide
    cdf *= 0.5
    return cdf.astype(np.float32)


def gelu_tanh(x: FloatArray) -> FloatArray:
    """The tanh approximation: transformers' "gelu_new" and "gelu_pytorch_tanh"."""
    inner = np.float32(_SQRT_2_OVER_PI) * (x + np.float32(0.044715) * x * x * x)
    result = np.float32(0.5) * x * (np.float32(1.0) + np.tanh(inner))
    return result.astype(np.float32, copy=False)  # a no-op: for the type checker


def relu(x: FloatArray) -> FloatArray:
    return np.maximum(x, np.float32(0.0))


ACTIVATIONS: dict[str, Callable[[FloatArray], FloatArray]] = {
    "gelu": gelu,
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "relu": relu,
}


def layer_norm(x: FloatArray, weight: FloatArray, bias: FloatArray, eps: float) -> FloatArray:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    variance = (centered * centered).mean(axis=-1, keepdims=True)
    normed: FloatArray = centered / np.sqrt(variance + np.float32(eps))
    return normed * weight + bias


def softmax(x: FloatArray) -> FloatArray:
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    result: FloatArray = shifted / shifted.sum(axis=-1, keepdims=True)
    return result


@dataclass(frozen=True)
class Linear:
    weight_t: FloatArray  # (in, out): torch's (out, in) transposed once at load time
    bias: FloatArray

    def __call__(self, x: FloatArray) -> FloatArray:
        # One (batch*length, in) GEMM: a 3-D @ 2-D matmul would run one GEMM per text.
        flat = x.reshape(-1, x.shape[-1]) @ self.weight_t
        flat += self.bias
        result: FloatArray = flat.reshape(*x.shape[:-1], flat.shape[-1])
        return result


@dataclass(frozen=True)
class Norm:
    weight: FloatArray
    bias: FloatArray
    eps: float

    def __call__(self, x: FloatArray) -> FloatArray:
        return layer_norm(x, self.weight, self.bias, self.eps)


@dataclass(frozen=True)
class EncoderLayer:
    query: Linear
    key: Linear
    value: Linear
    attention_out: Linear
    attention_norm: Norm
    intermediate: Linear
    output: Linear
    output_norm: Norm


@dataclass(frozen=True)
class BertConfigView:
    """The config.json fields the forward pass depends on, checked once."""

    hidden_size: int
    num_layers: int
    num_heads: int
    layer_norm_eps: float
    activation: str

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> BertConfigView:
        model_type = config.get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            architectures = config.get("architectures") or []
            raise UnsupportedModel(
                f"the numpy backend runs model_type {' / '.join(SUPPORTED_MODEL_TYPES)} "
                f"(BertModel, BertForSequenceClassification); config.json has model_type "
                f"{model_type!r} (architectures {architectures}); use --backend torch"
            )
        position_type = config.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise UnsupportedModel(
                f"the numpy backend supports position_embedding_type 'absolute' only; "
                f"config.json has {position_type!r}; use --backend torch"
            )
        activation = str(config.get("hidden_act", "gelu"))
        if activation not in ACTIVATIONS:
            raise UnsupportedModel(
                f"the numpy backend supports hidden_act {', '.join(sorted(ACTIVATIONS))}; "
                f"config.json has {activation!r}; use --backend torch"
            )
        hidden = int(config.get("hidden_size", 768))
        heads = int(config.get("num_attention_heads", 12))
        if hidden % heads:
            raise UnsupportedModel(f"hidden_size {hidden} is not a multiple of {heads} heads")
        return cls(
            hidden_size=hidden,
            num_layers=int(config.get("num_hidden_layers", 12)),
            num_heads=heads,
            layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
            activation=activation,
        )


def read_safetensors(directory: Path) -> dict[str, npt.NDArray[Any]]:
    """Every tensor of model.safetensors, or of the shards an index file names."""
    index = directory / INDEX_FILE
    if index.exists():
        weight_map: dict[str, str] = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        tensors: dict[str, npt.NDArray[Any]] = {}
        for shard in sorted(set(weight_map.values())):
            tensors.update(_load_file(directory / shard))
        return tensors
    single = directory / SINGLE_FILE
    if not single.exists():
        raise UnsupportedModel(f"{directory} has neither {SINGLE_FILE} nor {INDEX_FILE}")
    return _load_file(single)


def _load_file(path: Path) -> dict[str, npt.NDArray[Any]]:
    from safetensors.numpy import load_file

    try:
        loaded: dict[str, npt.NDArray[Any]] = load_file(str(path))
    except TypeError as exc:  # numpy has no bfloat16: "data type 'bfloat16' not understood"
        raise UnsupportedModel(
            f"{path.name} holds tensors numpy cannot represent ({exc}); the numpy backend "
            "reads float32 or float16 weights: convert the checkpoint, or use --backend torch"
        ) from exc
    return loaded


class _Weights:
    """Name lookup that says which tensors are missing or of the wrong dtype."""

    def __init__(self, tensors: Mapping[str, npt.NDArray[Any]], prefix: str) -> None:
        self.tensors = tensors
        self.prefix = prefix

    def get(self, name: str, *, prefixed: bool = True) -> FloatArray:
        key = self.prefix + name if prefixed else name
        if key not in self.tensors:
            raise UnsupportedModel(
                f"the safetensors weights lack {key!r} (a BERT checkpoint as transformers "
                "saves BertModel / BertForSequenceClassification is expected)"
            )
        tensor = self.tensors[key]
        if tensor.dtype == np.float16:
            # Exact, and what the torch backend does with --dtype float32 (auto on a CPU).
            return tensor.astype(np.float32)
        if tensor.dtype != np.float32:
            raise UnsupportedModel(
                f"weight {key!r} is {tensor.dtype}; the numpy backend reads float32 or "
                "float16 weights (computing in float32)"
            )
        result: FloatArray = tensor
        return result

    def linear(self, name: str, *, prefixed: bool = True) -> Linear:
        weight = self.get(f"{name}.weight", prefixed=prefixed)
        # A contiguous transposed copy: x @ W^T would otherwise re-stride on every call.
        return Linear(np.ascontiguousarray(weight.T), self.get(f"{name}.bias", prefixed=prefixed))

    def norm(self, name: str, eps: float) -> Norm:
        return Norm(self.get(f"{name}.weight"), self.get(f"{name}.bias"), eps)


class NumpyBert:
    """BERT encoder (and optional classification head) over float32 numpy weights."""

    def __init__(
        self,
        config: BertConfigView,
        tensors: Mapping[str, npt.NDArray[Any]],
        *,
        classifier: bool,
    ) -> None:
        prefix = next(
            (p for p in ENCODER_PREFIXES if f"{p}embeddings.word_embeddings.weight" in tensors),
            None,
        )
        if prefix is None:
            raise UnsupportedModel(
                "the safetensors weights have no embeddings.word_embeddings.weight "
                "(with or without the 'bert.' prefix): not a BERT checkpoint"
            )
        weights = _Weights(tensors, prefix)
        eps = config.layer_norm_eps
        self.config = config
        self.activation = ACTIVATIONS[config.activation]
        self.word_embeddings = weights.get("embeddings.word_embeddings.weight")
        self.position_embeddings = weights.get("embeddings.position_embeddings.weight")
        # The engine always sends token type 0, so only that row is ever used.
        self.token_type_0 = weights.get("embeddings.token_type_embeddings.weight")[0]
        self.embedding_norm = weights.norm("embeddings.LayerNorm", eps)
        self.layers = [
            EncoderLayer(
                query=weights.linear(f"encoder.layer.{i}.attention.self.query"),
                key=weights.linear(f"encoder.layer.{i}.attention.self.key"),
                value=weights.linear(f"encoder.layer.{i}.attention.self.value"),
                attention_out=weights.linear(f"encoder.layer.{i}.attention.output.dense"),
                attention_norm=weights.norm(f"encoder.layer.{i}.attention.output.LayerNorm", eps),
                intermediate=weights.linear(f"encoder.layer.{i}.intermediate.dense"),
                output=weights.linear(f"encoder.layer.{i}.output.dense"),
                output_norm=weights.norm(f"encoder.layer.{i}.output.LayerNorm", eps),
            )
            for i in range(config.num_layers)
        ]
        self.pooler: Linear | None = None
        self.classifier: Linear | None = None
        if classifier:
            self.pooler = weights.linear("pooler.dense")
            self.classifier = weights.linear("classifier", prefixed=False)

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        tensors: Mapping[str, npt.NDArray[Any]],
        *,
        classifier: bool,
    ) -> NumpyBert:
        """From config.json's fields and the checkpoint's tensors; UnsupportedModel if unfit."""
        return cls(BertConfigView.from_dict(config), tensors, classifier=classifier)

    @property
    def max_positions(self) -> int:
        return int(self.position_embeddings.shape[0])

    def hidden_states(self, input_ids: IntArray, attention_mask: IntArray) -> FloatArray:
        """last_hidden_state, (batch, length, hidden)."""
        length = input_ids.shape[1]
        if length > self.max_positions:
            raise ValueError(f"{length} tokens exceed the {self.max_positions} positions")
        x = self.word_embeddings[input_ids] + self.position_embeddings[:length] + self.token_type_0
        x = self.embedding_norm(x)
        # Additive mask as in transformers: 0 where attended, float32's minimum on padding.
        bias = (1.0 - attention_mask.astype(np.float32)) * np.finfo(np.float32).min
        bias = bias[:, None, None, :]  # broadcast over heads and query positions
        for layer in self.layers:
            x = self._layer(layer, x, bias)
        return x

    def _layer(self, layer: EncoderLayer, x: FloatArray, bias: FloatArray) -> FloatArray:
        batch, length, hidden = x.shape
        heads = self.config.num_heads
        head_size = hidden // heads

        def split(t: FloatArray) -> FloatArray:  # (B, L, H) -> (B, heads, L, head_size)
            return t.reshape(batch, length, heads, head_size).transpose(0, 2, 1, 3)

        query, key, value = split(layer.query(x)), split(layer.key(x)), split(layer.value(x))
        scores = (query @ key.transpose(0, 1, 3, 2)) * np.float32(1.0 / math.sqrt(head_size))
        context = softmax(scores + bias) @ value
        context = context.transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        x = layer.attention_norm(layer.attention_out(context) + x)
        inner = self.activation(layer.intermediate(x))
        return layer.output_norm(layer.output(inner) + x)

    def logits(self, input_ids: IntArray, attention_mask: IntArray) -> FloatArray:
        """Classification logits, (batch, labels): pooler (dense + tanh on [CLS]), classifier."""
        if self.pooler is None or self.classifier is None:
            raise ValueError("this model was loaded without its classification head")
        cls = self.hidden_states(input_ids, attention_mask)[:, 0]
        return self.classifier(np.tanh(self.pooler(cls)))
