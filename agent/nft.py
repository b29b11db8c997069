"""Running nft: apply a script as one transaction, read a table back as JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from modeldr.agent.rules import FAMILY, TABLE

TIMEOUT_S = 10.0


class NftError(RuntimeError):
    pass


def binary() -> str:
    path = shutil.which("nft")
    if path is None:
        raise NftError("the nft command (nftables) is not installed on the agent")
    return path


def apply(script: str) -> None:
    """`nft -f -`: the whole script is one transaction (all of it or nothing)."""
    why = _run_script(script)
    if why is not None:
        raise NftError(f"nft -f failed: {why}")


def refusal(script: str) -> str | None:
    """`nft -c -f -`: checks the transaction against the kernel without applying it; None
    when the kernel would take it, else nft's reason."""
    return _run_script(script, "-c")


def _run_script(script: str, *flags: str) -> str | None:
    done = subprocess.run(
        [binary(), *flags, "-f", "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    return None if done.returncode == 0 else done.stderr.strip()[:800]


def list_table() -> dict[str, Any]:
    """`nft -j list table inet modeldr_agent`; an empty listing when the table is absent."""
    done = subprocess.run(
        [binary(), "-j", "list", "table", FAMILY, TABLE],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        if "No such file" in done.stderr:
            return {"nftables": []}
        raise NftError(f"nft list table failed: {done.stderr.strip()[:800]}")
    listing = json.loads(done.stdout or "{}")
    return listing if isinstance(listing, dict) else {"nftables": []}
