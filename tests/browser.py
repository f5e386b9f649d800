"""The browser the web tests and the web benchmark drive: Debian's chromium, never one that
Playwright downloads, with the flags that keep it from reaching beyond the machine."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
