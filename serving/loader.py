"""Load a verified model directory: one code path for tiny and production models.

Two backends read the same files: torch (transformers' Auto classes, any device, dtype and
dynamic int8) and numpy (serving/numpy_bert.py: BERT encoders on the CPU in float32, for
images without torch). ``--backend auto`` takes torch whenever it can be imported.

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
    # torch backend: a torch.nn.Module (Any: torch is untyped for mypy here);
    # numpy backend: a modeldr.serving.numpy_bert.NumpyBert.
    model: Any
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
    backend: str = "torch"  # "torch" or "numpy"


def resolve_backend(requested: str) -> str:
    """torch or numpy; auto means torch whenever `import torch` works."""
    if requested == "numpy":
        return "numpy"
    try:
        import torch  # noqa: F401
    except (ImportError, OSError) as exc:  # OSError: a wheel whose shared libraries are missing
        if requested == "torch":
            raise ModelLoadError(
                f"--backend torch was requested but torch cannot be imported: {exc}"
            ) from exc
        log.info("torch cannot be imported (%s): using the numpy backend", exc)
        return "numpy"
    return "torch"


def check_numpy_options(config: ServeConfig) -> None:
    """The numpy backend is CPU float32 only; refuse settings it would silently ignore."""
    if config.device == "cuda":
        raise ModelLoadError(
            "--device cuda needs the torch backend; the numpy backend runs on the CPU only "
            "(use --device cpu or auto, or --backend torch with a CUDA torch)"
        )
    if config.dtype not in ("auto", "float32"):
        raise ModelLoadError(
            f"--dtype {config.dtype} is not supported by the numpy backend, which computes "
            "in float32 only (use --dtype float32 or auto, or --backend torch)"
        )
    if config.quantize != "none":
        raise ModelLoadError(
            f"--quantize {config.quantize} is not supported by the numpy backend "
            "(use --quantize none, or --backend torch)"
        )


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
    """Build model and tokenizer with the chosen backend; raise ModelLoadError with the cause."""
    if resolve_backend(config.backend) == "numpy":
        return _load_numpy(config, verified)
    return _load_torch(config, verified)


def _load_numpy(config: ServeConfig, verified: VerifiedModel) -> LoadedModel:
    """The torch-free path: the same files, a numpy forward pass (serving/numpy_bert.py)."""
    from transformers import AutoConfig

    from modeldr.serving.numpy_bert import NumpyBert, read_safetensors

    check_numpy_options(config)
    directory = str(verified.directory)
    task = verified.manifest.task
    try:
        model_config = AutoConfig.from_pretrained(directory, local_files_only=True)
        # to_dict(): config.json with transformers' defaults filled in (layer_norm_eps, ...).
        model = NumpyBert.from_config(
            model_config.to_dict(),
            read_safetensors(verified.directory),
            classifier=task == "sequence-classification",
        )
        tokenizer = _load_tokenizer(directory)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load model from {directory}: {exc}") from exc
    return _loaded(
        config, verified, model, model_config, tokenizer, "numpy", "cpu", "float32", "none"
    )


def _load_torch(config: ServeConfig, verified: VerifiedModel) -> LoadedModel:
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

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
        tokenizer = _load_tokenizer(directory)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load model from {directory}: {exc}") from exc
    model.eval()
    model.to(device)
    if config.quantize == "dynamic-int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao deprecation notice, not actionable here
            model = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                model, {torch.nn.Linear}, dtype=torch.qint8
            )
    return _loaded(
        config,
        verified,
        model,
        model_config,
        tokenizer,
        "torch",
        device,
        dtype_name,
        config.quantize,
    )


def _load_tokenizer(directory: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"{directory}: a fast (tokenizers) tokenizer is required")
    return tokenizer


def _loaded(
    config: ServeConfig,
    verified: VerifiedModel,
    model: Any,
    model_config: Any,
    tokenizer: Any,
    backend: str,
    device: str,
    dtype_name: str,
    quantize: str,
) -> LoadedModel:
    """What both backends share: labels, limits, the start-up log line."""
    task = verified.manifest.task
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
        quantize=quantize,
        max_seq_length=min(config.max_seq_length, positions),
        pad_token_id=int(pad_token_id),
        verified=verified,
        backend=backend,
    )
    log.info(
        "loaded %s model %s (revision %s, digest sha256:%s) with the %s backend on %s as %s%s, %s",
        task,
        verified.directory,
        verified.manifest.revision,
        verified.digest,
        backend,
        device,
        dtype_name,
        " (dynamic int8)" if quantize != "none" else "",
        _threads(backend),
    )
    return loaded


def _threads(backend: str) -> str:
    if backend == "torch":
        import torch

        return f"{torch.get_num_threads()} torch threads"
    # numpy's wheels use OpenBLAS, sized by OPENBLAS_NUM_THREADS when numpy is first imported
    # (the CLI sets it from --cpu-threads); unset, it uses every core it sees.
    return f"BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS', 'all cores')}"
