"""The cohort HTML report: self-contained, and a headless browser renders it to something visible."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsi_engine.heatmap import make_heatmaps

from .conftest import build_store, plant_scores


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    plant_scores(build_store(root / "stores", "slide-1"), kind="bag")
    plant_scores(build_store(root / "stores", "slide-2", pixels=False))
    labels = {"slide-1": "tumor", "slide-2": "normal"}
    make_heatmaps(
        [root / "stores"],
        "run1",
        root / "out",
        class_name="tumor",
        formats=["html"],
        top_k=4,
        labels=labels,
    )
    return root / "out"


def test_report_is_self_contained(report_dir: Path) -> None:
    html = (report_dir / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "<script" not in html.lower() and "@import" not in html
    for link in re.findall(r'(?:src|href)="([^"#]+)"', html):
        assert (report_dir / link).is_file(), link
    assert (
        "P(tumor)" in html and "True label" in html and 'class="wrong"' in html
    )  # slide-2: normal, predicted tumor
    assert "same colour means the same value" in html


def test_headless_chromium_renders_the_report(report_dir: Path, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium installed (Debian package `chromium`)")
    shot = tmp_path / "report.png"
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
        "--window-size=1280,2000", (report_dir / "report.html").as_uri(),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=90)
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels.std() > 20
    colours = np.unique(pixels[::4, ::4].reshape(-1, 3) // 16, axis=0)
    assert len(colours) > 50  # text, table, thumbnail and heatmap colours, not a blank page
