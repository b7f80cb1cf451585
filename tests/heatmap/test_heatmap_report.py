"""The cohort HTML report: self-contained, readable by a pathologist, rendered by a real headless browser."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsi_engine.heatmap import make_heatmaps
from wsi_engine.store.patch_store import PatchStore

from .browser import chromium_page
from .conftest import build_store, plant_scores


def _mark_fit_run(store_path: Path, fit_run: Path) -> None:
    """Record in ``scores/run1`` the fit run (with splits.json) whose fold models made the scores."""
    store = PatchStore.open(store_path, mode="r+")
    arrays, attrs = store.read_scores("run1")
    attrs.update(fit_run=str(fit_run), shots=1, folds=[0, 1])
    store.write_scores("run1", arrays, attrs)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    fit_run = root / "fit"
    fit_run.mkdir()
    splits = [
        {"shots": 1, "fold": 0, "train": ["slide-1", "other"], "val": [], "test": ["slide-2"]},
        {"shots": 1, "fold": 1, "train": ["other"], "val": ["slide-1"], "test": ["slide-2"]},
    ]
    (fit_run / "splits.json").write_text(json.dumps({"format": "x", "splits": splits}))
    for slide_id, pixels in (("slide-1", True), ("slide-2", False)):
        path = build_store(root / "stores", slide_id, pixels=pixels)
        plant_scores(path, kind="bag" if slide_id == "slide-1" else "patch")
        _mark_fit_run(path, fit_run)
    labels = {"slide-1": "tumor", "slide-2": "normal"}
    make_heatmaps([root / "stores"], "run1", root / "out", formats=["html"], top_k=4, labels=labels)
    return root / "out"


def test_report_is_self_contained(report_dir: Path) -> None:
    html = (report_dir / "report.html").read_text(encoding="utf-8")
    remote = re.findall(r"""(?:src|href)\s*=\s*["']?\s*((?:https?:)?//[^"'\s>]*)""", html, re.I)
    assert remote and all(u.startswith("http://127.0.0.1:") for u in remote)  # only viewer links
    assert not re.search(r"<script[^>]*\ssrc=", html, re.I) and "@import" not in html
    for link in re.findall(r'(?:src|href)="([^"#]+)"', html):
        if not link.startswith("http://127.0.0.1:"):
            assert (report_dir / link).is_file(), link


def test_report_says_what_a_pathologist_needs(report_dir: Path) -> None:
    html = (report_dir / "report.html").read_text(encoding="utf-8")
    # true label and verdict; slide-2 is normal but predicted tumor
    assert "True label" in html and 'class="wrong"' in html
    assert html.count(">incorrect</span>") == 2 and html.count(">correct</span>") == 2
    # slide-1 trained fold 0 and selected fold 1; slide-2 was held out by both
    assert "training slide of fold 0; validation slide of fold 1" in html
    assert html.count('<td class="seen">') == 1
    # binary task: the positive class only (heatmaps, galleries, probability column)
    assert "P(tumor)" in html and "P(normal)" not in html
    assert "heatmap: tumor" in html and "heatmap: normal" not in html
    assert (
        report_dir / "slide-1" / "overlay_normal.png"
    ).is_file()  # still written, just not shown
    # plain words instead of "× uniform weight, log scale"
    assert "same colour means the same value" in html and "uniform weight" not in html
    assert (
        "compared with an average patch" in html and "probability that a patch shows tumor" in html
    )
    assert "zoom in</a>" in html and "wsi-engine view" in html


def test_headless_chromium_renders_and_sorts_the_report(report_dir: Path, tmp_path: Path) -> None:
    with chromium_page(tmp_path / "profile", 1280, 2000) as page:
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto((report_dir / "report.html").as_uri())
        page.wait_for_load_state("load")
        first = lambda: page.locator("tbody tr td:first-child").first.inner_text()  # noqa: E731
        page.locator(
            "th", has_text="P(tumor)"
        ).click()  # ascending: slide-2 (0.8) before slide-1 (0.9)
        assert first() == "slide-2"
        page.locator("th", has_text="P(tumor)").click()
        assert first() == "slide-1"
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot))
        if os.environ.get("WSI_ENGINE_SCREENSHOTS"):
            page.screenshot(path=str(Path(os.environ["WSI_ENGINE_SCREENSHOTS"]) / "report.png"))
    assert all(u.startswith("file://") for u in requests), requests
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels.std() > 20
    colours = np.unique(pixels[::4, ::4].reshape(-1, 3) // 16, axis=0)
    assert len(colours) > 50  # text, table, thumbnail and heatmap colours, not a blank page
