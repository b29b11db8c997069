"""Render the timeline chart of a drill's HTML report to a PNG (the picture in docs/cli.md
and the README), with headless Chromium kept off the network:

    .venv/bin/python scripts/report_picture.py .sandbox/drill-report/report.html \
        docs/images/drill-timeline.png
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="an HTML report of modeldr drill")
    parser.add_argument("png", type=Path, help="where to write the picture")
    parser.add_argument("--size", default="1120,470", help="window size, W,H (default 1120,470)")
    args = parser.parse_args()
    found = re.search(
        r'<div class="chart" id="timeline-chart">(.*?)</div>', args.report.read_text(), re.S
    )
    if found is None:
        print(f"{args.report}: no timeline chart in it", file=sys.stderr)
        return 1
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("chromium is missing: make tools installs it", file=sys.stderr)
        return 1
    page = (
        '<!DOCTYPE html><html><body style="margin:8px;background:#fff">'
        f'<div style="width:1100px">{found.group(1)}</div></body></html>'
    )
    page = page.replace("<svg ", '<svg style="width:100%;height:auto" ', 1)
    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "chart.html"
        html.write_text(page)
        args.png.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                browser,
                *FLAGS,
                f"--screenshot={args.png.resolve()}",
                f"--window-size={args.size}",
                html.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=90,
        )
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
