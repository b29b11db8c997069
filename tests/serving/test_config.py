"""Configuration precedence (flag > environment > default) and validation messages."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from pydantic import ValidationError

from modeldr.serving.config import (
    ServeConfig,
    add_config_arguments,
    config_from_sources,
    describe_error,
)

pytestmark = pytest.mark.serving


def parse(argv: list[str], environ: dict[str, str]) -> ServeConfig:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return config_from_sources(vars(parser.parse_args(argv)), environ)


BASE = ["--model-dir", "/models/m", "--model-name", "m"]


def test_defaults() -> None:
    config = parse(BASE, {})
    assert config.model_dir == Path("/models/m")
    assert config.port == 8080
    assert config.truncate is False
    assert config.expected_digest is None


def test_environment_fills_everything() -> None:
    config = parse(
        [],
        {
            "MODELDR_SERVE_MODEL_DIR": "/m",
            "MODELDR_SERVE_MODEL_NAME": "bert",
            "MODELDR_SERVE_PORT": "9000",
            "MODELDR_SERVE_MAX_BATCH_DELAY_MS": "2.5",
            "MODELDR_SERVE_TRUNCATE": "true",
            "MODELDR_SERVE_DEVICE": "cpu",
            "MODELDR_SERVE_MAX_BATCH_TOKENS": "4096",
        },
    )
    assert (config.model_name, config.port, config.max_batch_delay_ms) == ("bert", 9000, 2.5)
    assert config.truncate is True
    assert config.max_batch_tokens == 4096


def test_flag_beats_environment() -> None:
    config = parse(
        [*BASE, "--port", "7000", "--no-truncate"],
        {
            "MODELDR_SERVE_PORT": "9000",
            "MODELDR_SERVE_TRUNCATE": "1",
        },
    )
    assert config.port == 7000
    assert config.truncate is False


def test_every_field_has_a_flag_and_env() -> None:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    help_text = parser.format_help()
    for name in ServeConfig.model_fields:
        assert "--" + name.replace("_", "-") in help_text
        assert "MODELDR_SERVE_" + name.upper() in help_text


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        ([], {}, "--model-dir / MODELDR_SERVE_MODEL_DIR: required"),
        (BASE, {"MODELDR_SERVE_PORT": "http"}, "--port / MODELDR_SERVE_PORT: Input should be"),
        ([*BASE, "--device", "tpu"], {}, "--device / MODELDR_SERVE_DEVICE: Input should be"),
        ([*BASE, "--max-texts-per-request", "10", "--max-queue", "5"], {}, "cannot exceed"),
        ([*BASE, "--drain-delay-s", "40"], {}, "must be shorter than grace_period_s"),
        ([*BASE, "--model-name", "bad name"], {}, "--model-name / MODELDR_SERVE_MODEL_NAME"),
    ],
)
def test_errors_name_both_spellings(argv: list[str], environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse(argv, environ)
    assert message in describe_error(info.value)


def test_empty_environment_value_counts_as_unset() -> None:
    config = parse(BASE, {"MODELDR_SERVE_PORT": "", "MODELDR_SERVE_CPU_THREADS": ""})
    assert config.port == 8080
    assert config.cpu_threads is None


@pytest.mark.parametrize("value", ["", "  "])
def test_empty_expected_digest_is_refused_not_ignored(value: str) -> None:
    # The operator always sends the CRD's pattern-checked expectedDigest; an empty value
    # is a templating mistake and must not silently switch the artifact pin off.
    with pytest.raises(ValidationError) as info:
        parse(BASE, {"MODELDR_SERVE_EXPECTED_DIGEST": value})
    assert describe_error(info.value) == (
        "--expected-digest / MODELDR_SERVE_EXPECTED_DIGEST: is set but empty; give "
        "sha256:<64 hex digits>, or unset it to serve without a pinned digest"
    )
    with pytest.raises(ValidationError):
        parse([*BASE, "--expected-digest", value], {})


def test_expected_digest_from_environment() -> None:
    digest = "AB" * 32
    config = parse(BASE, {"MODELDR_SERVE_EXPECTED_DIGEST": f"sha256:{digest}"})
    assert config.expected_digest == digest.lower()
