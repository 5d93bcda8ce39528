"""Headless Chromium for viewer tests: Debian's chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import os
import shutil
import time

import numpy as np
import pytest

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_or_skip() -> str:
    """Path of the chromium binary; skips the test when it (or playwright) is missing, unless
    SPLAT_REQUIRE_BROWSER=1 (CI sets it), where a missing browser fails."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        if os.environ.get("SPLAT_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium or playwright is missing but SPLAT_REQUIRE_BROWSER=1")
        pytest.skip("needs chromium on PATH and the playwright package")
    return path


@contextlib.contextmanager
def browser():
    """A launched headless Chromium (playwright Browser)."""
    from playwright.sync_api import sync_playwright

    exe = chromium_or_skip()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def screenshot(page) -> np.ndarray:
    """[H, W, 3] uint8 of the page."""
    import io

    import imageio.v3 as iio

    return iio.imread(io.BytesIO(page.screenshot()))[..., :3]


def wait_for(predicate, timeout: float = 30.0, every: float = 0.2):
    """Poll ``predicate`` until it returns a truthy value (returned) or time runs out (None)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return None
