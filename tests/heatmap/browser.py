"""Headless Chromium for the page tests: Debian's ``chromium`` driven by Playwright (no browser download).

Locally a missing Chromium skips the test; under CI (``CI`` set) it fails,
because ``.ci/run`` installs the package.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]  # fmt: skip


def chromium_path() -> str:
    """The Chromium executable; skips (locally) or fails (CI) when there is none."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "no chromium installed (Debian package `chromium`; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@contextmanager
def chromium_page(profile: Path, width: int = 1280, height: int = 800) -> Iterator:
    """A Playwright page in headless Chromium with an empty profile folder ``profile``."""
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    profile.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=FLAGS,
            viewport={"width": width, "height": height},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
