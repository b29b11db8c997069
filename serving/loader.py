"""Load a verified model directory: one code path for tiny and production models.

Only local files are read (HF offline mode, ``local_files_only``), weights only
from safetensors (``use_safetensors=True``: pickle checkpoints are never
unpickled), and only after manifest.verify_model_dir has checked every byte.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any

from modeldr.serving.config import ServeConfig
from modeldr.serving.manifest import Task, VerifiedModel

# Belt and braces: even a hub-looking name can never trigger a download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no tqdm noise in pod logs

log = logging.getLogger(__name__)


class ModelLoadError(Exception):
    pass


@dataclass
class LoadedModel:
    model: Any  # torch.nn.Module; Any because torch is untyped for mypy here
    tokenizer: Any  # transformers PreTrainedTokenizerBase
    task: Task
    labels: tuple[str, ...]
    hidden_size: int
    device: str  # "cpu" or "cuda:0"
    dtype: str  # "float32", "float16", "bfloat16"
    quantize: str
    max_seq_length: int
    pad_token_id: int
    verified: VerifiedModel


def resolve_device(requested: str) -> str:
    import torch

    if requested == "cpu":
        return "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise ModelLoadError("--device cuda was requested but CUDA is not available")
        return "cuda:0"
    return "cuda:0" if torch.cuda.is_available() else "cpu"


def resolve_dtype(requested: str, device: str) -> str:
    import torch

    if requested != "auto":
        if device == "cpu" and requested == "float16":
            # CPU float16 matmuls are slow or missing on most CPUs.
            raise ModelLoadError("--dtype float16 is not supported on CPU (use bfloat16)")
        return requested
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def load_model(config: ServeConfig, verified: VerifiedModel) -> LoadedModel:
    """Build model and tokenizer on the chosen device; raise ModelLoadError with the cause."""
    import torch
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    if config.cpu_threads is not None:
        torch.set_num_threads(config.cpu_threads)
    device = resolve_device(config.device)
    dtype_name = resolve_dtype(config.dtype, device)
    if config.quantize != "none" and device != "cpu":
        raise ModelLoadError("--quantize dynamic-int8 only applies to --device cpu")
    directory = str(verified.directory)
    task = verified.manifest.task
    try:
        model_config = AutoConfig.from_pretrained(directory, local_files_only=True)
        factory = (
            AutoModelForSequenceClassification if task == "sequence-classification" else AutoModel
        )
        model = factory.from_pretrained(
            directory,
            local_files_only=True,
            use_safetensors=True,
            dtype=getattr(torch, dtype_name),
        )
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load model from {directory}: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"{directory}: a fast (tokenizers) tokenizer is required")
    model.eval()
    model.to(device)
    if config.quantize == "dynamic-int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao deprecation notice, not actionable here
            model = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                model, {torch.nn.Linear}, dtype=torch.qint8
            )

    labels: tuple[str, ...] = ()
    if task == "sequence-classification":
        id2label = model_config.id2label or {}
        labels = tuple(str(id2label.get(i, f"LABEL_{i}")) for i in range(model_config.num_labels))
    positions = int(getattr(model_config, "max_position_embeddings", config.max_seq_length))
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    loaded = LoadedModel(
        model=model,
        tokenizer=tokenizer,
        task=task,
        labels=labels,
        hidden_size=int(model_config.hidden_size),
        device=device,
        dtype=dtype_name,
        quantize=config.quantize,
        max_seq_length=min(config.max_seq_length, positions),
        pad_token_id=int(pad_token_id),
        verified=verified,
    )
    log.info(
        "loaded %s model %s (revision %s, digest sha256:%s) on %s as %s%s, %d torch threads",
        task,
        directory,
        verified.manifest.revision,
        verified.digest,
        device,
        dtype_name,
        " (dynamic int8)" if config.quantize != "none" else "",
        torch.get_num_threads(),
    )
    return loaded
