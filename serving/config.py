"""Server configuration: one pydantic model, settable from flags or the environment.

Pods are configured through environment variables, people through flags, so
every field of ServeConfig is both ``--kebab-case`` and ``MODELDR_SERVE_UPPER``;
a flag wins over the environment, the environment over the default. The CLI
parser is generated from the model so the two can never drift apart.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from modeldr.serving.manifest import normalize_digest

ENV_PREFIX = "MODELDR_SERVE_"

Backend = Literal["auto", "torch", "numpy"]
Device = Literal["auto", "cpu", "cuda"]
DType = Literal["auto", "float32", "float16", "bfloat16"]
Quantize = Literal["none", "dynamic-int8"]
Pooling = Literal["mean", "cls"]


class ServeConfig(BaseModel):
    """Everything `modeldr-serve run` can be told."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_dir: Path = Field(
        description="directory with safetensors weights, config, tokenizer; with a model "
        "source, where the fetched copy is written (a new directory inside it)"
    )
    model_source: str | None = Field(
        default=None,
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$",
        description="s3://bucket/prefix: fetch the model from the store in MODELDR_STORE_* "
        "(or, when it does not answer, MODELDR_FALLBACK_STORE_*) before serving",
    )
    model_name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", description="name served under /v2/models"
    )
    host: str = Field(default="0.0.0.0", description="address to bind")
    port: int = Field(default=8080, ge=0, le=65535, description="port to bind (0: any free)")
    backend: Backend = Field(
        default="auto",
        description="inference backend; auto: torch when it can be imported, else numpy "
        "(CPU, float32, BERT only)",
    )
    device: Device = Field(default="auto", description="auto picks cuda when available")
    dtype: DType = Field(
        default="auto", description="auto: bfloat16 (or float16) on CUDA, float32 on CPU"
    )
    quantize: Quantize = Field(
        default="none", description="dynamic-int8: int8 Linear layers on CPU (faster, approximate)"
    )
    cpu_threads: int | None = Field(
        default=None, ge=1, description="torch intra-op threads (numpy backend: BLAS threads)"
    )
    max_batch_size: int = Field(default=32, ge=1, le=4096, description="texts per batch")
    max_batch_delay_ms: float = Field(
        default=5.0, ge=0, le=10_000, description="how long a batch waits to fill up"
    )
    max_batch_tokens: int | None = Field(
        default=None, ge=1, description="token budget per batch (texts x padded length)"
    )
    max_queue: int = Field(default=256, ge=1, description="texts waiting before 429")
    max_texts_per_request: int = Field(default=64, ge=1, description="texts in one request")
    max_seq_length: int = Field(default=512, ge=2, description="tokens per text, with specials")
    truncate: bool = Field(
        default=False, description="truncate long texts instead of answering 413"
    )
    max_body_bytes: int = Field(default=4 << 20, ge=1024, description="request body limit")
    pooling: Pooling = Field(default="mean", description="feature extraction pooling")
    normalize_embeddings: bool = Field(default=False, description="L2-normalize embeddings")
    expected_digest: str | None = Field(
        default=None, description="sha256 the model manifest must have"
    )
    drain_delay_s: float = Field(
        default=5.0, ge=0, description="after SIGTERM, keep serving this long while not ready"
    )
    grace_period_s: float = Field(
        default=30.0, gt=0, description="the pod's terminationGracePeriodSeconds"
    )
    failure_threshold: int = Field(
        default=3, ge=1, description="consecutive failed batches before turning not ready"
    )
    recovery_probe_interval_s: float = Field(
        default=5.0, gt=0, description="while failing, re-run the warm-up batch this often"
    )
    load_delay_s: float = Field(
        default=0.0, ge=0, description="wait before loading (drills: simulate a slow volume)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info")
    access_log: bool = Field(default=False, description="log every request")

    @field_validator("expected_digest")
    @classmethod
    def _digest(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            # The operator always sends the CRD's required, pattern-checked expectedDigest,
            # so an empty value is a templating mistake, not a request to skip the check.
            raise ValueError(
                "is set but empty; give sha256:<64 hex digits>, or unset it to serve "
                "without a pinned digest"
            )
        return normalize_digest(value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.max_texts_per_request > self.max_queue:
            raise ValueError(
                f"max_texts_per_request ({self.max_texts_per_request}) cannot exceed "
                f"max_queue ({self.max_queue}): such a request could never be queued"
            )
        if self.drain_delay_s >= self.grace_period_s:
            raise ValueError(
                f"drain_delay_s ({self.drain_delay_s}) must be shorter than grace_period_s "
                f"({self.grace_period_s}) or accepted requests would be killed"
            )
        if self.quantize != "none" and self.device == "cuda":
            raise ValueError("quantize=dynamic-int8 is a CPU option; use dtype on CUDA")
        return self


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _is_bool(info: FieldInfo) -> bool:
    return info.annotation is bool


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per ServeConfig field; defaults are None so the environment can fill in."""
    for name, info in ServeConfig.model_fields.items():
        default = "required" if info.is_required() else repr(info.get_default())
        help_text = f"{info.description or ''} [env {env_name(name)}; default {default}]"
        if _is_bool(info):
            parser.add_argument(
                flag_name(name),
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            parser.add_argument(flag_name(name), dest=name, default=None, help=help_text)


# Settings whose empty environment value is refused instead of read as unset: an empty
# digest would otherwise silently turn the artifact pin off.
EMPTY_IS_AN_ERROR = frozenset({"expected_digest"})


def config_from_sources(args: Mapping[str, Any], environ: Mapping[str, str]) -> ServeConfig:
    """Flag, else environment variable, else default; then validate the whole.

    An empty environment variable counts as unset (``FOO=`` in a pod spec), except for
    the fields in EMPTY_IS_AN_ERROR, which then fail validation.
    """
    values: dict[str, Any] = {}
    for name in ServeConfig.model_fields:
        flag_value = args.get(name)
        env_value = environ.get(env_name(name))
        if flag_value is not None:
            values[name] = flag_value
        elif env_value is not None and (env_value != "" or name in EMPTY_IS_AN_ERROR):
            values[name] = env_value
    return ServeConfig.model_validate(values)


def describe_error(error: ValidationError) -> str:
    """Name both spellings of each bad setting, since either may have set it."""
    lines = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        if loc and loc[0] in ServeConfig.model_fields:
            where = f"{flag_name(loc[0])} / {env_name(loc[0])}"
        else:
            where = "configuration"
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "required"
        lines.append(f"{where}: {message}")
    return "; ".join(lines)


def load_config(args: Mapping[str, Any]) -> ServeConfig:
    return config_from_sources(args, os.environ)
