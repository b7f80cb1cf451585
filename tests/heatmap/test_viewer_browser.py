"""``wsi-engine view`` in headless Chromium: page loads, zoom fetches deeper tiles, overlay aligns, stays local."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .browser import chromium_page, chromium_path
from .viewer_fixture import DARK, SQUARE, square_viewer

TILE = re.compile(r"/dzi/[^/]+/(slide|overlay-\d+)_files/(\d+)/\d+_\d+\.(jpeg|png)$")
LOADED = """() => { const v = window.wsiViewer && window.wsiViewer.viewer;
  return !!v && v.world.getItemCount() === 2 && !!window.wsiViewer.state.overlay
    && [0, 1].every(i => v.world.getItemAt(i).getFullyLoaded()); }"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    chromium_path()
    with square_viewer(tmp_path_factory.mktemp("viewer")) as server:
        yield server


def _shot(page, path: Path) -> np.ndarray:
    """Screenshot of the viewer area only, as (h, w, 3) uint8."""
    page.locator("#view").screenshot(path=str(path))
    return np.asarray(Image.open(path).convert("RGB"))


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    assert len(rows) and len(cols), "region not found on the screenshot"
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _wait_loaded(page) -> None:
    page.wait_for_timeout(300)  # let a view change start its tile requests
    page.wait_for_function(LOADED, timeout=90_000)
    page.wait_for_timeout(300)  # the last tiles' fade-in


def _levels_after(page, requests: list[str], level: int, timeout_s: float = 60) -> set[int]:
    """Deep Zoom levels requested so far, waiting (up to ``timeout_s``) for one deeper than ``level``."""
    for _ in range(int(timeout_s * 5)):
        levels = {int(m[2]) for m in map(TILE.search, requests) if m}
        if max(levels, default=-1) > level:
            break
        page.wait_for_timeout(200)
    return levels


def _set_opacity(page, percent: int) -> None:
    page.locator("#opacity").fill(str(percent))
    _wait_loaded(page)


def _dark_and_hot(page, tmp_path: Path, name: str) -> tuple[tuple, tuple, np.ndarray]:
    """Bounding boxes (screen px) of the dark square (overlay hidden) and of the yellow score (overlay opaque)."""
    _set_opacity(page, 0)
    slide = _shot(page, tmp_path / f"{name}-slide.png").astype(int)
    _set_opacity(page, 100)
    over = _shot(page, tmp_path / f"{name}-overlay.png").astype(int)
    dark = np.abs(slide - np.array(DARK)).sum(axis=2) < 40
    hot = (over[..., 0] > 200) & (over[..., 1] > 180) & (over[..., 2] < 90)  # viridis at 1.0
    dark[-140:, -200:] = hot[-140:, -200:] = False  # the navigator thumbnail, bottom right
    _set_opacity(page, 50)
    _save_for_docs(page, f"viewer-{name}.png")
    return _bbox(dark), _bbox(hot), over


def test_viewer_zooms_aligns_and_stays_local(server, tmp_path: Path) -> None:
    requests: list[str] = []
    with chromium_page(tmp_path / "profile", 960, 640) as page:
        page.on("request", lambda request: requests.append(request.url))
        page.goto(server.url)
        _wait_loaded(page)
        assert page.locator("#slide option").count() == 1
        assert page.locator("#class").input_value() == "1"  # the positive class of a binary task
        assert "same on every slide" in page.locator("#explain").inner_text()
        assert page.locator("#top li").count() >= 4
        home_levels = {int(m[2]) for m in map(TILE.search, requests) if m}

        dark, hot, home_over = _dark_and_hot(page, tmp_path, "home")
        assert max(abs(a - b) for a, b in zip(dark, hot, strict=True)) <= 2, (dark, hot)
        side_home = dark[2] - dark[0]

        # zoom 4x onto the square's top-left corner
        page.evaluate(
            """([x, y]) => { const v = window.wsiViewer.viewer;
               const p = v.world.getItemAt(0).imageToViewportCoordinates(x, y);
               v.viewport.zoomBy(4, p, true); v.viewport.panTo(p, true); }""",
            [SQUARE[0] + 64, SQUARE[1] + 64],
        )
        deep_levels = _levels_after(page, requests, max(home_levels))
        assert max(deep_levels) > max(home_levels), (home_levels, deep_levels)
        _wait_loaded(page)

        dark_z, hot_z, zoom_over = _dark_and_hot(page, tmp_path, "zoom")
        assert max(abs(a - b) for a, b in zip(dark_z, hot_z, strict=True)) <= 2, (dark_z, hot_z)
        assert dark_z[2] - dark_z[0] > 2.5 * side_home  # really zoomed in

        # hovering over the square reads its patch score
        box = page.locator("#view").bounding_box()
        page.mouse.move(box["x"] + (dark_z[0] + 10), box["y"] + (dark_z[1] + 10))
        assert "probability of tumor: 1.000" in page.locator("#hover").inner_text()
        # clicking a top patch moves the view there and outlines it
        page.locator("#top button").first.click()
        page.wait_for_selector(".highlight")

    assert requests and all(u.startswith(server.url) for u in requests), [
        u for u in requests if not u.startswith(server.url)
    ]
    assert home_over.std() > 10 and zoom_over.std() > 10


def _save_for_docs(page, name: str) -> None:
    """With WSI_ENGINE_SCREENSHOTS=DIR set, keep a full-page screenshot there (for docs/images)."""
    folder = os.environ.get("WSI_ENGINE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name))
