"""Render a batch's report.html to a PNG with headless Chromium, to look at it without a desktop.

    python -m benchmarks.render_report out/report.html shot.png
    python -m benchmarks.render_report out/report.html shot.png --width 420 --height 3000   # a phone

Needs Chromium (Debian: ``apt-get install chromium``; ``--browser PATH`` for another binary). The
page loads nothing from outside (its Content-Security-Policy forbids it), and the flags below keep
Chromium itself from reaching the network (no sync, no component updates, no background requests).
``--no-sandbox`` lets it run as root, as in containers. A fresh temporary profile is used and
removed. The screenshot is the top ``--height`` pixels of the page, ``--width`` pixels wide.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=5000",  # let the page's load event (and its script) run before the shot
)


def render(
    report: Path, png: Path, *, width: int = 1200, height: int = 2000, browser: str | None = None
) -> Path:
    """Screenshot ``report`` into ``png``; raise RuntimeError if Chromium is missing or fails."""
    browser = browser or shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise RuntimeError("chromium is not on PATH (Debian: apt-get install chromium), or pass --browser")
    png = png.resolve()
    png.unlink(missing_ok=True)  # so a stale file is never taken for this run's screenshot
    with tempfile.TemporaryDirectory(prefix="dip-chromium-") as profile:
        command = [
            browser,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            report.resolve().as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="a report.html written by a dip batch")
    parser.add_argument("png", type=Path, help="where the screenshot goes")
    parser.add_argument("--width", type=int, default=1200, help="window width in pixels (default 1200)")
    parser.add_argument("--height", type=int, default=2000, help="window height in pixels (default 2000)")
    parser.add_argument("--browser", help="the Chromium binary (default: chromium on PATH)")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        parser.error(f"{args.report} is not a file")
    try:
        path = render(args.report, args.png, width=args.width, height=args.height, browser=args.browser)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
