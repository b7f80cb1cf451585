"""The viewer's server without a browser: catalog discovery, Deep Zoom tiles from the real slide, safety."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from wsi_engine.errors import ConfigError, OutputError, StoreError
from wsi_engine.viewer import load_catalog, make_server
from wsi_engine.viewer.deepzoom import DeepZoomGeometry

from .viewer_fixture import DARK, PINK, SQUARE, square_store, square_viewer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with square_viewer(tmp_path_factory.mktemp("viewer-server")) as server:
        yield server


def _get(server, path: str) -> bytes:
    with urllib.request.urlopen(server.url + path.lstrip("/"), timeout=30) as response:
        return response.read()


def test_geometry_halves_down_to_one_pixel() -> None:
    geometry = DeepZoomGeometry(2048, 1536)
    assert geometry.max_level == 11 and geometry.level_size(11) == (2048, 1536)
    assert geometry.level_size(0) == (1, 1) and geometry.level_size(10) == (1024, 768)
    assert geometry.tile_bounds(11, 0, 0) == (0, 0, 255, 255)  # tile 254 + 1 px overlap
    assert geometry.tile_bounds(11, 1, 0) == (253, 0, 509, 255)
    assert geometry.tile_bounds(11, 9, 0) is None and geometry.tile_bounds(12, 0, 0) is None


def test_slide_tiles_are_read_from_the_slide_and_overlay_tiles_match(server) -> None:
    slides = json.loads(_get(server, "/api/slides"))
    assert slides["run_id"] == "run1" and [s["id"] for s in slides["slides"]] == ["square"]
    detail = json.loads(_get(server, "/api/slides/square"))
    assert (detail["width"], detail["height"], detail["default_class"]) == (2048, 1536, 1)
    assert detail["note"] is None  # the real slide file, not the thumbnail fallback
    # full-resolution tile (4, 2) covers level-0 x 1015..1270, y 507..762: the square starts at (1024, 512)
    tile = np.asarray(Image.open(io.BytesIO(_get(server, "/dzi/square/slide_files/11/4_2.jpeg"))))
    overlay = np.asarray(
        Image.open(io.BytesIO(_get(server, "/dzi/square/overlay-1_files/11/4_2.png")))
    )
    assert tile.shape[:2] == overlay.shape[:2] == (256, 256)
    x0, y0 = 4 * 254 - 1, 2 * 254 - 1
    inside = (SQUARE[1] - y0 + 20, SQUARE[0] - x0 + 20)
    outside = (2, 2)
    assert np.abs(tile[inside].astype(int) - DARK).max() < 25
    assert np.abs(tile[outside].astype(int) - PINK).max() < 25
    assert overlay[inside][3] == 255 and overlay[inside][0] > 200  # viridis(1): yellow
    assert overlay[outside][0] < 100  # viridis(0): dark purple


def test_unknown_paths_and_escapes_are_refused(server) -> None:
    for path in ("/static/../catalog.py", "/static/%2e%2e/server.py", "/dzi/nope/slide.dzi",
                 "/dzi/square/overlay-7.dzi", "/dzi/square/slide_files/99/0_0.jpeg"):  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as caught:
            _get(server, path)
        assert caught.value.code == 404, path
    assert b"OpenSeadragon" in _get(server, "/static/openseadragon/openseadragon.min.js")[:2000]


def test_busy_port_and_bad_folders_give_clear_errors(server, tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="--port"):
        make_server(load_catalog(server.state.catalog.root), port=server.server_address[1])
    with pytest.raises(ConfigError, match="not a folder"):
        load_catalog(tmp_path / "nothing")
    with pytest.raises(StoreError, match="no patch stores found"):
        load_catalog(tmp_path)


def test_a_heatmap_folder_gives_its_run_and_scale(tmp_path: Path) -> None:
    store = square_store(tmp_path)
    heatmaps = tmp_path / "heatmaps"
    heatmaps.mkdir()
    (heatmaps / "heatmap.yaml").write_text(
        yaml.safe_dump(
            {"heatmap": {"run_id": "run1", "scale": "percentile"}, "stores": [str(store)]}
        )
    )
    catalog = load_catalog(tmp_path)  # a run folder: heatmaps/heatmap.yaml + stores/
    assert (catalog.run_id, catalog.scale_mode, list(catalog.stores)) == (
        "run1",
        "percentile",
        ["square"],
    )
    assert load_catalog(heatmaps).stores == {"square": store}
    other = square_store(tmp_path, "square2")  # tiled later: heatmap.yaml of the last call omits it
    assert load_catalog(heatmaps).stores == {"square": store, "square2": other}
