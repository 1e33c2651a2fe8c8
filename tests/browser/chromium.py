"""Chromium for the browser tests: the Debian binary (`apt-get install chromium`),
driven by Playwright's Python package, whose own browsers are never downloaded.
RUNNER_CHROMIUM names another Chromium binary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("RUNNER_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


def playwright_or_skip() -> Any:
    """Playwright's sync API. Where Chromium or the package is missing, the test module
    that asks (at import) is skipped, saying which."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set "
                    "RUNNER_CHROMIUM)", allow_module_level=True)
    return pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is not installed "
                                      "(pip install -e '.[test]'; never `playwright install`)")
