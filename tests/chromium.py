"""Headless Chromium (Debian's `chromium`, installed by scripts/tools.sh) for the report
tests: the DOM after scripts ran, and a screenshot. A missing browser fails the test.

Chromium is kept off the network: every host name resolves to nothing and any request would
go to a closed loopback proxy, background services (updates, metrics, safe browsing) off.
The reports are self-contained, so they must render like this.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

FLAGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--no-pings",
    "--metrics-recording-only",
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)
TIMEOUT_S = 90


def binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "chromium is missing: `make tools` installs it (apt-get install chromium)",
            pytrace=False,
        )
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [binary(), *FLAGS, *args], capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def dump_dom(page: Path) -> str:
    return _run("--dump-dom", page.resolve().as_uri()).stdout


def screenshot(page: Path, out: Path, size: tuple[int, int] = (1200, 900)) -> Path:
    _run(f"--screenshot={out}", f"--window-size={size[0]},{size[1]}", page.resolve().as_uri())
    assert out.exists() and out.stat().st_size > 0, "no screenshot written"
    return out


def distinct_colours(png: Path) -> int:
    """How many colours the picture has (a blank page has one or two)."""
    with Image.open(png) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    return len(colours or [])
