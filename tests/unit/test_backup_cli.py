"""`modeldr backup`'s usage errors: refused with exit 3 and one clear line, before any hub or
store is asked (the stores' own behaviour is tested on the sandbox, test_model_store.py)."""

from __future__ import annotations

import pytest
import typer

from modeldr.cli import main
from modeldr.client.backup import human, parse_url


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            [
                "backup",
                "run",
                "s3://models/m",
                "--store",
                "p",
                "--to",
                "s3://b/x",
                "--backup-store",
                "b",
                "--mode",
                "weekly",
            ],
            "--mode 'weekly': use one of full, incremental, differential",
        ),
        (
            ["backup", "restore", "s3://b/x", "--backup-store", "b"],
            "give --to and --store, or --verify-only",
        ),
        (
            ["backup", "restore", "s3://b/x", "--backup-store", "b", "--to", "s3://m/x"],
            "--to and --store go together",
        ),
        (
            [
                "backup",
                "restore",
                "s3://b/x",
                "--backup-store",
                "b",
                "--verify-only",
                "--at",
                "yesterday",
            ],
            "is not an ISO 8601 time",
        ),
    ],
)
def test_usage_errors_exit_3_and_say_why(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 3
    assert said in capsys.readouterr().err


def test_urls_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert str(parse_url("s3://models/team-a/bert/")) == "s3://models/team-a/bert"
    for bad, said in (
        ("https://x/y", "is not an s3:// URL"),
        ("s3://A_B/x", "is not an S3 bucket name"),
        ("s3://models/a/../b", "'..' segment"),
    ):
        with pytest.raises(typer.Exit) as exit_:
            parse_url(bad)
        assert exit_.value.exit_code == 3
        assert said in capsys.readouterr().err


def test_sizes_for_people() -> None:
    assert [human(n) for n in (999, 408_867, 400_000_000, 5_000_000_000)] == [
        "999 B",
        "408.9 KB",
        "400.0 MB",
        "5.0 GB",
    ]
